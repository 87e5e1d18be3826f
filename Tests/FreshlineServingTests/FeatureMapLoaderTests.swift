import FreshlineCore
import FreshlineJSON
import Testing

@testable import FreshlineRuntime

/// The feature map of `freshline advise --feature-map` (YAML) and the Prometheus answers' reading; the command
/// against a real Prometheus is `PrometheusAdviceTests` (integration).
@Suite("Feature map and Prometheus answers")
struct FeatureMapLoaderTests {
    static func error(_ text: String) -> String {
        do {
            _ = try FeatureMapLoader.parse(text, path: "map.yaml")
            return "accepted"
        } catch {
            return error.description
        }
    }

    @Test("a full map reads every key")
    func fullMap() throws {
        let map = try FeatureMapLoader.parse(
            """
            window: 3d
            step: 5m
            features:
              risk:
                prometheus:
                  requests: 'http_requests_total{job="risk",handler="/score"}'
                  errors: 'http_requests_total{job="risk",status=~"5.."}'
                  timeouts: risk_timeouts_total
                  shed: risk_shed_total
                  latency: 'http_request_duration_seconds_bucket{job="risk"}'
                  latency_unit: ms
                  cpu_seconds: 'process_cpu_seconds_total{job="risk"}'
                requests_file: risk.jsonl
                pattern: batch
                latency_budget: 250ms
                user_blocking: false
                max_staleness: 1h
                refresh: 6h
                ms_per_prediction: 4
                batch_ms_per_prediction: 0.5
                entities: 50000
                unbounded_input: false
                failure_mode: fail closed
                decision: {kind: label, threshold: 0.5, top_k: 5, tolerance: 0.2}
              logs_only:
                requests_file: /data/logs.csv
            """, path: "map.yaml")
        #expect(map.windowSeconds == 3 * 86_400 && map.stepSeconds == 300)
        #expect(map.features.map(\.name) == ["risk", "logs_only"])
        let risk = map.features[0]
        #expect(risk.line == 4)
        #expect(risk.metrics?.requests == "http_requests_total{job=\"risk\",handler=\"/score\"}")
        #expect(risk.metrics?.errors == "http_requests_total{job=\"risk\",status=~\"5..\"}")
        #expect(risk.metrics?.timeouts == "risk_timeouts_total" && risk.metrics?.shed == "risk_shed_total")
        #expect(risk.metrics?.latencyBuckets == "http_request_duration_seconds_bucket{job=\"risk\"}")
        #expect(risk.metrics?.latencyUnitSeconds == 0.001)
        #expect(risk.metrics?.cpuSeconds == "process_cpu_seconds_total{job=\"risk\"}")
        #expect(risk.requestsFile == "risk.jsonl" && risk.pattern == .batch)
        #expect(risk.latencyBudgetSeconds == 0.25 && !risk.userBlocking)
        #expect(risk.maxStalenessSeconds == 3_600 && risk.refreshSeconds == 21_600)
        #expect(risk.msPerPrediction == 4 && risk.batchMsPerPrediction == 0.5 && risk.entities == 50_000)
        #expect(risk.unboundedInput == false && risk.failureMode == "fail closed")
        #expect(risk.decision == DecisionSpec(kind: .label, threshold: 0.5, topK: 5, tolerance: 0.2))
        #expect(map.features[1].metrics == nil && map.features[1].requestsFile == "/data/logs.csv")
    }

    @Test("mistakes name FILE:LINE: key and what is wrong")
    func mistakes() {
        #expect(Self.error("") == "map.yaml:1: (document): the map is empty")
        #expect(Self.error("features: [\n").hasPrefix("map.yaml:"))
        #expect(Self.error("window: 7d\n").hasPrefix("map.yaml:1: features: is required"))
        #expect(Self.error("colour: red\n").hasPrefix("map.yaml:1: colour: unknown key (expected one of: features"))
        #expect(
            Self.error("window: soon\nfeatures: {a: {requests_file: x}}\n").hasPrefix(
                "map.yaml:1: window: must be a duration"))
        #expect(
            Self.error("features:\n  a:\n    pattern: sometimes\n    requests_file: x\n")
                == "map.yaml:3: features.a.pattern: 'sometimes' is not one of realtime, async, batch, hybrid")
        #expect(
            Self.error("features:\n  a:\n    pattern: batch\n")
                == "map.yaml:3: features.a: needs prometheus (where its traffic is) or requests_file, or both")
        #expect(
            Self.error("features:\n  a:\n    prometheus:\n      errors: e_total\n")
                == "map.yaml:4: features.a.prometheus.requests: is required: the counter of every request")
        #expect(
            Self.error("features:\n  a:\n    prometheus:\n      requests: 'rate(x[5m])'\n").hasPrefix(
                "map.yaml:4: features.a.prometheus.requests: 'rate(x[5m])' is not a selector"))
        #expect(
            Self.error("features:\n  a:\n    prometheus:\n      requests: x_total\n      latency: x_seconds\n")
                == "map.yaml:5: features.a.prometheus.latency: 'x_seconds' is not a histogram's _bucket series")
        #expect(
            Self.error("features:\n  a:\n    requests_file: x\n    ms_per_prediction: -1\n").hasPrefix(
                "map.yaml:4: features.a.ms_per_prediction: must be a number from 0"))
        #expect(
            Self.error("features:\n  a:\n    requests_file: x\n    latency_budget: 100\n").hasPrefix(
                "map.yaml:4: features.a.latency_budget: must be a duration"))
        #expect(
            Self.error("features:\n  a:\n    requests_file: x\n    decision: {kind: vibes}\n")
                == "map.yaml:4: features.a.decision.kind: 'vibes' is not one of label, ranking, score")
        #expect(
            Self.error("features:\n  a:\n    requests_file: x\n    requests_fiel: y\n").hasPrefix(
                "map.yaml:4: features.a.requests_fiel: unknown key"))
    }

    @Test("selectors: a metric name with label matchers, nothing else")
    func selectors() {
        for good in ["up", "a:b_total", "x{job=\"a\"}", "x{le=~\"0.5|1\",a!=\"}\"}", "x{a=\"\\\"\"}"] {
            #expect(FeatureMapLoader.isSelector(good), "\(good)")
        }
        for bad in ["", "{job=\"a\"}", "rate(x[5m])", "x + y", "x[5m]", "x{a=\"b\"", "x{a=\"b\"} or y", "9x"] {
            #expect(!FeatureMapLoader.isSelector(bad), "\(bad)")
        }
    }

    @Test("Prometheus answers: vectors, matrices, NaN and infinities as read, malformed answers refused")
    func answers() throws {
        let vector = try JSONValue.parse(
            Array(
                """
                {"resultType":"vector","result":[{"metric":{"le":"0.5"},"value":[1700000000.5,"12.5"]},
                {"metric":{},"value":[1700000000,"NaN"]},{"metric":{},"value":[1700000000,"+Inf"]}]}
                """.utf8))
        let series = try PrometheusClient.series(vector, where: "test")
        #expect(series.count == 3 && series[0].labels == ["le": "0.5"])
        #expect(series[0].points == [.init(time: 1_700_000_000.5, value: 12.5)])
        #expect(series[1].points[0].value.isNaN && series[2].points[0].value == .infinity)
        let matrix = try JSONValue.parse(
            Array(#"{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"1"],[2,"3"]]}]}"#.utf8))
        #expect(try PrometheusClient.series(matrix, where: "test")[0].points.map(\.value) == [1, 3])
        for bad in [
            #"{"resultType":"vector","result":[{"value":[1,2]}]}"#, #"{"resultType":"string","result":[1,"a"]}"#,
            #"{"result":[]}"#, #"{"resultType":"vector","result":[{"value":[1,"twelve"]}]}"#,
        ] {
            #expect(throws: PrometheusError.self) {
                try PrometheusClient.series(JSONValue.parse(Array(bad.utf8)), where: "t")
            }
        }
        #expect(PrometheusClient.escape("a+b{c=\"d\"} / 2") == "a%2Bb%7Bc%3D%22d%22%7D%20%2F%202")
        #expect(throws: PrometheusError.self) { try PrometheusClient(baseURL: "prom:9090") }
        #expect(try PrometheusClient(baseURL: "http://prom:9090/").baseURL == "http://prom:9090")
    }
}
