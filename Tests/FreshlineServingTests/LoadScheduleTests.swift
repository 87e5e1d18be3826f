import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineStore
import FreshlineTestSupport
import Testing

@testable import FreshlineRuntime

/// `freshline load`'s plan, without a server: the schedule (speed, bound, repetition), keys from hashes, synthetic
/// inputs, the requests file, and the summary of the answers.
@Suite("Load-test schedule")
struct LoadScheduleTests {
    static func arrivals(_ times: [Double]) -> [RecordedArrival] {
        times.enumerated().map { RecordedArrival(at: $0.element, key: "k\($0.offset)") }
    }

    @Test("recorded offsets are divided by the speed, and nothing is scheduled at or after the bound")
    func speedScaling() {
        let recorded = Self.arrivals([1_000, 1_001, 1_003, 1_004])
        let once = LoadSchedule(arrivals: recorded, speed: 1, durationSeconds: 4)
        #expect(once.requests.map(\.offset) == [0, 1, 3])
        let fast = LoadSchedule(arrivals: recorded, speed: 4, durationSeconds: 1)
        #expect(fast.requests.map(\.offset) == [0, 0.25, 0.75])
        #expect(fast.requests.map(\.key) == ["k0", "k1", "k2"])
        // Out of order in, ordered out.
        let shuffled = LoadSchedule(arrivals: recorded.reversed(), speed: 2, durationSeconds: 10)
        #expect(shuffled.requests.prefix(4).map(\.key) == ["k0", "k1", "k2", "k3"])
    }

    @Test("a recorded shape shorter than the bound repeats, one mean gap after its end, until the bound")
    func repetition() {
        // Span 4 s over 5 requests: a pass is 5 s (span plus one mean gap of 1 s).
        let recorded = Self.arrivals([0, 1, 2, 3, 4])
        let s = LoadSchedule(arrivals: recorded, speed: 2, durationSeconds: 6)
        #expect(s.passSeconds == 5)
        #expect(s.passes == 3)
        #expect(s.requests.count == 12)
        #expect(s.requests.map(\.offset).allSatisfy { $0 < 6 })
        #expect(s.requests[5].offset == 2.5 && s.requests[5].key == "k0")
        let offsets = s.requests.map(\.offset)
        #expect(offsets == offsets.sorted())
        #expect(abs(s.targetRate - 2) < 0.01, "\(s.targetRate)")
        #expect(LoadSchedule(arrivals: [], speed: 1, durationSeconds: 5).requests.isEmpty)
    }

    @Test("hashes resolve to the real keys that have them; others get stable stand-ins")
    func keyResolution() {
        let known = ["u1", "u2", "u3", "u4"].reduce(into: [String: String]()) { $0[KeyHash.hex($1)] = $1 }
        let logged = [KeyHash.hex("u1"), KeyHash.hex("u2"), "00000000000000ff"]
        var resolver = LoadKeyResolver(known: known, seen: Set(logged))
        #expect(resolver.key(hash: KeyHash.hex("u1")) == "u1")
        #expect(resolver.key(hash: "00000000000000ff") == "load-00000000000000ff")
        #expect(resolver.key(hash: "00000000000000ff") == "load-00000000000000ff")
        #expect(resolver.resolved.count == 1 && resolver.synthesized.count == 1)
        // Copies for keys the sampling left out: known keys the log never saw, then stand-ins; the same copy of
        // the same hash keeps its key.
        let first = resolver.key(hash: KeyHash.hex("u1"), copy: 1)
        let second = resolver.key(hash: KeyHash.hex("u2"), copy: 1)
        #expect(Set([first, second]) == ["u3", "u4"])
        #expect(resolver.key(hash: KeyHash.hex("u1"), copy: 1) == first)
        #expect(resolver.key(hash: KeyHash.hex("u1"), copy: 2) == "load-\(KeyHash.hex("u1"))-2")
        #expect(resolver.summary.contains("1 resolved to real keys, 1 synthesized"), "\(resolver.summary)")
    }

    @Test("a sample at rate r stands for 1/r requests, spread over the mean gap; refused requests are left out")
    func samplesToArrivals() {
        func sample(_ at: Double, _ key: String, rate: Double, outcome: String = "ok") -> RequestLogSample {
            RequestLogSample(
                feature: "f", keyHash: KeyHash.hex(key), hasRequestInputs: true, source: .realtime, outcome: outcome,
                latencySeconds: 0.001, ageSeconds: 0, at: at, sampleRate: rate, inputHashes: ["x": 7])
        }
        var resolver = LoadKeyResolver(known: [KeyHash.hex("a"): "a"], seen: [KeyHash.hex("a")])
        let arrivals = RecordedArrival.replaying(
            [
                sample(10, "a", rate: 0.25), sample(12, "a", rate: 0.25),
                sample(11, "b", rate: 1, outcome: "bad_request"),
            ],
            keys: &resolver
        ) { s, copy in ["x": .integer(Int64(copy))] }
        #expect(arrivals.count == 8)
        #expect(arrivals.filter { $0.key == "a" }.count == 2)
        #expect(arrivals.map(\.at).prefix(4) == [10, 10.5, 11, 11.5])
        #expect(arrivals[1].inputs == ["x": .integer(1)])
    }

    @Test("synthetic inputs have the declared or model shape, and the same recorded hash gives the same value")
    func syntheticInputs() {
        let inputs = SyntheticInputs(slots: [
            .init(name: "tx", elementType: .float, shape: [7]), .init(name: "n", elementType: .int64, shape: []),
            .init(name: "m", elementType: .string, shape: [2, 3]),
        ])
        func sample(_ hash: UInt64) -> RequestLogSample {
            RequestLogSample(
                feature: "f", keyHash: "01", hasRequestInputs: true, source: .realtime, outcome: "ok",
                latencySeconds: 0, ageSeconds: 0, at: 0, inputHashes: ["tx": hash, "n": hash, "m": hash])
        }
        let a = inputs.values(for: sample(1))
        guard case .array(let tx)? = a["tx"], tx.count == 7, case .integer? = a["n"],
            case .array(let m)? = a["m"], m.count == 2, case .array(let row)? = m.first, row.count == 3
        else {
            Issue.record("wrong shapes: \(a)")
            return
        }
        for case .number(let v) in tx { #expect(v >= -1 && v <= 1) }
        #expect(inputs.values(for: sample(1)) == a)
        #expect(inputs.values(for: sample(2))["tx"] != a["tx"])
        #expect(inputs.values(for: sample(1), copy: 1)["tx"] != a["tx"])
    }

    @Test("a requests file gives times, real keys and inputs; mistakes name the file and line")
    func requestsFile() throws {
        let arrivals = try LoadScript.parse(
            """
            # a comment
            {"time": 12.5, "key": "u2", "inputs": {"X": [1, 2]}}
            {"time": "2026-12-08T10:00:00Z", "key": 42}

            {"time": 10}
            """, file: "r.jsonl")
        #expect(arrivals.map(\.key) == [nil, "u2", "42"])
        #expect(arrivals[1].inputs == ["X": .array([.integer(1), .integer(2)])])
        #expect(arrivals[2].at == 1_796_724_000)
        #expect(throws: LoadScriptError.self) { try LoadScript.parse("{\"key\": \"u\"}", file: "r.jsonl") }
        do {
            _ = try LoadScript.parse("{\"time\": 1}\n{\"time\": 2, \"inputs\": [1]}", file: "r.jsonl")
            Issue.record("accepted inputs that are not an object")
        } catch let error as LoadScriptError {
            #expect(error.description == "r.jsonl:2: inputs: expected an object of named inputs")
        }
    }

    @Test("answers are classified by status and error code; percentiles per source over the answered ones")
    func summary() {
        #expect(
            LoadRunner.classify(status: 200, body: Array(#"{"source":"batch"}"#.utf8), seconds: 1).source == "batch")
        let shed = LoadRunner.classify(
            status: 503, body: Array(#"{"error":{"code":"overloaded","message":"m"}}"#.utf8), seconds: 1)
        #expect(shed.outcome == "overloaded" && LoadRunner.isShed(shed.outcome))
        #expect(LoadRunner.classify(status: 429, body: [], seconds: 1).outcome == "too_many_requests")
        #expect(LoadRunner.classify(status: 500, body: [], seconds: 1).outcome == "http_500")
        let observations = (1...1_000).map { ("realtime", Double($0) / 1_000) } + [("batch", 0.5)]
        let latency = AdviceService.latency(observations: observations)
        #expect(latency.map(\.source) == ["batch", "realtime"])
        let realtime = latency[1]
        #expect(realtime.count == 1_000)
        #expect(
            abs(realtime.p50 - 0.5) < 0.001 && abs(realtime.p99 - 0.99) < 0.001 && abs(realtime.p999 - 0.999) < 0.001)
    }
}

/// Where a load test's keys come from, and how the advice reports show load tests.
@Suite("Load tests: keys and reports")
struct LoadTestReportTests {
    @Test("a feature's declared entity set (advice.keys) resolves the logged hashes to its real keys")
    func entitySetKeys() async throws {
        let path = try TestManifest.write(
            """
            version: 1
            models:
              gbdt: ZOO/gbc_binary.onnx
            features:
              churn:
                model: gbdt
                key: account_id
                advice:
                  keys: {csv: accounts.csv}
            """)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        try "account_id,region\nacct-1,eu\nacct-2,us\n42,eu\n".write(
            to: folder.appendingPathComponent("accounts.csv"), atomically: true, encoding: .utf8)
        let manifest = try ManifestLoader.load(path: path)
        let feature = try #require(manifest.features["churn"])
        let known = try await LoadKeys.known(
            feature, manifest: manifest, batchStore: try SQLiteStore(), snapshotDirectory: nil)
        #expect(known.keys[KeyHash.hex("acct-2")] == "acct-2")
        #expect(known.keys[KeyHash.hex("42")] == "42")
        #expect(known.keys.count == 3)
        #expect(known.basis?.contains("advice.keys") == true)
    }

    @Test("every report format shows load tests as their own rows and the headroom")
    func reports() throws {
        let feature = FeatureSpec(name: "f", model: "m", location: SourceLocation(file: "", line: 0, keyPath: ""))
        var input = AdvisorInput(
            feature: feature, samples: [], now: 1_765_152_100,
            compute: ComputeCost(
                realtimeSecondsPerPrediction: 0.001, batchSecondsPerPrediction: 0.0001, batchSize: 64, basis: "test"),
            latency: [])
        input.loadTests = [
            LoadTestResult(
                id: "load_00000000000000aa", feature: "f", startedAt: 1_765_152_000, endedAt: 1_765_152_005,
                speed: 4, durationSeconds: 5, sent: 200, answered: 198,
                sources: [
                    SourceLatency(source: "realtime", count: 198, p50: 0.003, p95: 0.005, p99: 0.012, p999: 0.02)
                ],
                shed: 0, fallback: 1, errors: 2, achievedRate: 40, server: "http://127.0.0.1:8080")
        ]
        let report = AdviceReport(
            generatedAt: 1_765_152_100, settings: AdvisorSettings(), pricing: Pricing(),
            features: [Advisor.advise(input, settings: AdvisorSettings(), pricing: Pricing())])
        let table = try AdviceText.render(report, format: .table)
        #expect(table.contains("load test at 4× (2025-12-08): realtime p50 3 ms"), "\(table)")
        #expect(table.contains("headroom: holds 4× the recorded traffic"), "\(table)")
        let markdown = try AdviceText.render(report, format: .markdown)
        #expect(markdown.contains("| load test at 4× (2025-12-08) |"), "\(markdown)")
        #expect(markdown.contains("shed 0, fallback 1, errors 2 of 200 sent"))
        let html = try AdviceText.render(report, format: .html)
        #expect(html.contains("load test at 4× (2025-12-08)") && html.contains("load-test headroom"))
        let json = try AdviceText.render(report, format: .json)
        #expect(json.contains("\"load_tests\"") && json.contains("\"load_headroom\""))
        let decoded = try AdviceText.decode(AdviceReport.self, from: Data(json.utf8))
        #expect(decoded.features.first?.axes.latency.loadTests == input.loadTests)
    }
}
