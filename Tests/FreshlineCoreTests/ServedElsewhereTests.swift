import Testing

@testable import FreshlineCore

/// Features served elsewhere: the `--requests` file reader, and the advisor on numbers observed by another stack
/// (Prometheus) with the declarations of a feature map.
@Suite("Served elsewhere")
struct ServedElsewhereTests {
    static func parse(_ text: String, file: String = "r.jsonl", decision: DecisionSpec = DecisionSpec())
        throws(RequestsFile.ParseError) -> RequestsFile.Contents
    {
        try RequestsFile.parse(Array(text.utf8), file: file, feature: "f", decision: decision)
    }

    static func error(_ text: String, file: String = "r.jsonl") -> String {
        do {
            _ = try parse(text, file: file)
            return "accepted"
        } catch {
            return error.description
        }
    }

    // MARK: - The requests file

    @Test("RFC 3339 times with fractions and offsets, and their mistakes")
    func rfc3339() {
        #expect(RequestsFile.rfc3339("1970-01-01T00:00:00Z") == 0)
        #expect(RequestsFile.rfc3339("2026-12-08T09:30:00.250Z") == 1_796_722_200.25)
        #expect(RequestsFile.rfc3339("2026-12-08T10:30:00+01:00") == 1_796_722_200)
        #expect(RequestsFile.rfc3339("2026-12-08 09:30:00z") == 1_796_722_200)
        #expect(RequestsFile.rfc3339("2024-02-29T00:00:00-00:30") == 1_709_166_600)
        for bad in ["2026-12-08", "2026-13-08T00:00:00Z", "2026-12-08T09:30:00", "2026-12-08T09:30:00.Z", "x"] {
            #expect(RequestsFile.rfc3339(bad) == nil, "\(bad)")
        }
    }

    @Test("JSON Lines: keys hashed, decisions by type, inputs hashed, outcomes and sources")
    func jsonLines() throws {
        let contents = try Self.parse(
            """
            {"time": "2026-12-08T09:30:01Z", "key": "u1", "decision": "fraud", "latency_ms": 12.5, "inputs": {"amount": 30}}
            {"time": 1796722200, "key": 42, "decision": [3, 1, 2], "outcome": "ok", "source": "batch", "model_version": "v1"}

            {"time": 1796722202.5, "decision": 0.25, "input_hashes": {"a": "ff"}, "request_inputs": false, "model_version": "v2"}
            {"time": 1796722203, "key": "u1", "outcome": "timeout", "latency_ms": 100}
            """)
        #expect(contents.samples.count == 4)
        #expect(contents.modelVersions == ["v1", "v2"])
        #expect(contents.origin == "r.jsonl (4 requests, JSON Lines)")
        let s = contents.samples
        // Sorted by time: the Unix-seconds line first.
        #expect(s[0].keyHash == KeyHash.hex("42") && s[0].decision == .ranking(["3", "1", "2"]))
        #expect(s[0].source == .batch && s[0].latencySeconds == -1)
        #expect(s[1].keyHash == KeyHash.hex("u1") && s[1].decision == .label("fraud"))
        #expect(s[1].latencySeconds == 0.0125 && s[1].hasRequestInputs)
        #expect(s[1].inputHashes["amount"] == KeyHash.value(bytes: Array("30".utf8)))
        #expect(s[2].keyHash == nil && s[2].decision == .score([0.25]) && s[2].inputHashes == ["a": 255])
        #expect(!s[2].hasRequestInputs)
        #expect(s[3].outcome == "timeout" && s[3].decision == nil && s[3].source == nil)
        #expect(s.allSatisfy { $0.sampleRate == 1 && $0.feature == "f" })
        // No raw key anywhere.
        #expect(!"\(s)".contains("u1"))
    }

    @Test("CSV: the same fields as columns, input.NAME hashed, rankings split on ';', a threshold makes labels")
    func csv() throws {
        let contents = try Self.parse(
            """
            time,key,decision,latency_ms,input.cart,input_hash.user
            2026-12-08T09:30:00Z,u1,a;b;c,5,"x,y",0a
            2026-12-08T09:30:01Z,u2,7,,,
            2026-12-08T09:30:02Z,u3,0.5,,,
            """, file: "r.csv")
        let s = contents.samples
        #expect(s.map(\.decision) == [.ranking(["a", "b", "c"]), .label("7"), .score([0.5])])
        #expect(s[0].inputHashes == ["cart": KeyHash.value("x,y"), "user": 10] && s[0].latencySeconds == 0.005)
        #expect(!s[1].hasRequestInputs)
        let thresholded = try Self.parse(
            "time,decision\n1796722200,0.7\n1796722201,0.2\n", file: "t.csv", decision: DecisionSpec(threshold: 0.5))
        #expect(thresholded.samples.map(\.decision) == [.label("1"), .label("0")])
    }

    @Test("mistakes name FILE:LINE: column")
    func mistakes() {
        #expect(Self.error("{\"key\": \"a\"}") == "r.jsonl:1: time: is required")
        #expect(
            Self.error("{\"time\": 1796722200}\n{\"time\": 1796722200, \"kee\": 1}").hasPrefix(
                "r.jsonl:2: kee: unknown field"))
        #expect(Self.error("{\"time\": 1796722200000}").hasPrefix("r.jsonl:1: time: "))
        #expect(Self.error("{\"time\": 1796722200, \"latency_ms\": -3}").hasPrefix("r.jsonl:1: latency_ms:"))
        #expect(
            Self.error("{\"time\": 1796722200, \"outcome\": \"meh\"}").hasPrefix(
                "r.jsonl:1: outcome: 'meh' is not one of"))
        #expect(Self.error("{\"time\": 1796722200, \"source\": \"cache\"}").hasPrefix("r.jsonl:1: source:"))
        #expect(Self.error("{\"time\": 1796722200, \"decision\": [1, \"a\", 0.5]}").hasPrefix("r.jsonl:1: decision:"))
        #expect(Self.error("\n\n{\"time\": ").hasPrefix("r.jsonl:3: (line): "))
        #expect(Self.error("[1]").hasPrefix("r.jsonl:1: (line): not a JSON object"))
        #expect(
            Self.error("time,key\nsoon,a\n", file: "r.csv")
                == "r.csv:2: time: 'soon' is neither RFC 3339 nor Unix seconds")
        #expect(Self.error("time,colour\n", file: "r.csv").hasPrefix("r.csv:1: colour: unknown column"))
        #expect(Self.error("key\na\n", file: "r.csv") == "r.csv:1: time: the column is required")
        #expect(Self.error("time,key\n1796722200,a,b\n", file: "r.csv") == "r.csv:2: (line): 3 cells for 2 columns")
        #expect(Self.error("time,input_hash.a\n1796722200,zz\n", file: "r.csv").hasPrefix("r.csv:2: input_hash.a:"))
    }

    // MARK: - The advisor on observed numbers

    static let settings = AdvisorSettings()

    static func observed(
        calls: Double, peak: Double = 2, errors: Double = 0.01, p99: Double, cpu: Double? = nil
    ) -> ObservedTraffic {
        var o = ObservedTraffic(source: "Prometheus http://prom:9090, 7d ending 2026-12-08T00:00:00.000Z")
        o.requests = calls * 7
        o.spanSeconds = 7 * 86_400
        o.callsPerDay = calls
        o.peakToAverage = peak
        o.peakBucketSeconds = 3_600
        o.errorRate = errors
        o.timeoutRate = 0.002
        o.cpuSecondsPerAnswer = cpu
        o.latency = SourceLatency(
            source: "realtime", count: Int(calls * 7), p50: p99 / 4, p95: p99 / 2, p99: p99, p999: p99 * 2)
        o.queries = [
            "calls": "http_requests_total{job=\"risk\"} every 1h, differenced",
            "errors": "http_requests_total{job=\"risk\",status=~\"5..\"}, differenced",
            "latency": "histogram_quantile(q, sum by (le) (increase(http_request_duration_seconds_bucket[604800s])))",
        ]
        return o
    }

    static func advise(_ entry: FeatureMap.Entry, _ observed: ObservedTraffic?, samples: [RequestLogSample] = [])
        -> FeatureAdvice
    {
        entry.advise(
            mapPath: "map.yaml", samples: samples, latency: [], observed: observed, requestsOrigin: nil,
            now: 1_796_688_000, settings: settings, pricing: Pricing())
    }

    @Test("rule 3: too slow on a user-blocking path, the numbers and their evidence from Prometheus")
    func ruleThreeFromPrometheus() {
        var entry = FeatureMap.Entry(name: "risk", line: 3)
        entry.maxStalenessSeconds = 86_400
        entry.msPerPrediction = 4
        let advice = Self.advise(entry, Self.observed(calls: 2_000_000, p99: 0.45))
        #expect(advice.verdict.rule == 3 && advice.verdict.recommended == .batch, "\(advice.verdict)")
        #expect(advice.axes.cost.callsPerDay == 2_000_000 && advice.axes.cost.peakToAverage == 2)
        #expect(advice.axes.cost.evidence.hasPrefix("Prometheus http://prom:9090, 7d ending"))
        #expect(advice.axes.cost.evidence.contains("http_requests_total{job=\"risk\"} every 1h"))
        #expect(advice.axes.cost.evidence.contains("declared ms_per_prediction 4 ms (map.yaml:3)"))
        #expect(advice.axes.latency.realtimeP99Seconds == 0.45 && advice.axes.latency.overBudget)
        #expect(advice.axes.latency.realtimeP99Basis.contains("Prometheus http://prom:9090"))
        #expect(advice.axes.latency.evidence.contains("serving stack's histogram"))
        #expect(advice.axes.failure.errorRate == 0.01 && advice.axes.failure.timeoutRate == 0.002)
        #expect(advice.axes.failure.evidence.contains("status=~\"5..\""))
        #expect(advice.axes.failure.declared == "not declared (map.yaml:3)")
        #expect(
            advice.origin == "Prometheus http://prom:9090, 7d ending 2026-12-08T00:00:00.000Z; declarations map.yaml:3")
        #expect(advice.whatIf.isEmpty)
        #expect(
            advice.axes.freshness.evidence
                == "no requests file to compare answers: the declared max_staleness 1d (map.yaml:3)")
    }

    @Test("rule 1: unbounded input declared; rule 4: fast and cheap; rule 2: a declared max_staleness under 1 h")
    func otherRules() {
        var unbounded = FeatureMap.Entry(name: "search", line: 9)
        unbounded.unboundedInput = true
        let one = Self.advise(unbounded, Self.observed(calls: 500_000, p99: 0.03, cpu: 0.002))
        #expect(one.verdict.rule == 1 && one.verdict.recommended == .realtime, "\(one.verdict)")
        #expect(one.axes.cost.realtimeSecondsPerPrediction == 0.002)
        #expect(one.axes.cost.evidence.contains("process CPU per answer"))

        var small = FeatureMap.Entry(name: "small", line: 1)
        small.msPerPrediction = 2
        small.maxStalenessSeconds = 86_400
        let four = Self.advise(small, Self.observed(calls: 5_000, p99: 0.02))
        #expect(four.verdict.rule == 4 && four.verdict.recommended == .realtime, "\(four.verdict)")

        var fresh = FeatureMap.Entry(name: "fresh", line: 1)
        fresh.maxStalenessSeconds = 60
        let two = Self.advise(fresh, Self.observed(calls: 5_000_000, p99: 0.02))
        #expect(two.verdict.rule == 2 && two.axes.freshness.basis == "declared", "\(two.verdict)")
    }

    @Test("no traffic in Prometheus and no requests: nothing to decide from")
    func noTraffic() {
        var o = Self.observed(calls: 0, p99: 0.01)
        o.requests = 0
        let advice = Self.advise(FeatureMap.Entry(name: "idle", line: 1), o)
        #expect(advice.verdict.rule == 0)
    }

    @Test("with a requests file the freshness and cardinality come from it, volume and failures from Prometheus")
    func requestsAndPrometheus() {
        var samples: [RequestLogSample] = []
        // 20 keys answered every 10 minutes for 3 hours; the label flips every 20 minutes.
        for minute in stride(from: 0, to: 180, by: 10) {
            for k in 0..<20 {
                let at = 1_796_688_000 - 10_800 + Double(minute * 60 + k)
                samples.append(
                    RequestLogSample(
                        feature: "f", keyHash: KeyHash.hex("k\(k)"), hasRequestInputs: false, source: .realtime,
                        outcome: "ok", latencySeconds: 0.01, ageSeconds: 0, at: at, computedAt: at,
                        decision: .label((minute / 20) % 2 == 0 ? "a" : "b")))
            }
        }
        var entry = FeatureMap.Entry(name: "live", line: 1)
        entry.msPerPrediction = 1
        let advice = Self.advise(entry, Self.observed(calls: 3_000_000, errors: 0.2, p99: 0.02), samples: samples)
        #expect(advice.axes.freshness.basis == "measured" && advice.axes.freshness.sensitive)
        #expect(advice.verdict.rule == 2, "\(advice.verdict)")
        #expect(advice.axes.cardinality.distinctKeys == 20)
        #expect(advice.axes.cost.callsPerDay == 3_000_000)
        #expect(advice.axes.failure.errorRate == 0.2)
        #expect(!advice.whatIf.isEmpty)
    }

    @Test("the default peak interval over a window")
    func defaultStep() {
        #expect(FeatureMap.defaultStep(windowSeconds: 7 * 86_400) == 3_600)
        #expect(FeatureMap.defaultStep(windowSeconds: 3_600) == 300)
        #expect(FeatureMap.defaultStep(windowSeconds: 60) == 10)
    }
}
