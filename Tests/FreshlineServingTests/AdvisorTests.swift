import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineHTTP
import FreshlineRuntime
import FreshlineStore
import FreshlineTestSupport
import FreshlineTesting
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Testing

/// The advisor end to end: real traffic through a running server (on a manual wall clock, so that hours pass in
/// a test), then the verdicts read back from `/v1/features/{name}/advice`. Every verdict here follows from the
/// measured traffic; several features declare the opposite of what their traffic shows, and the measurement wins.
@Suite("Advisor")
struct AdvisorTests {
    static let ops: HTTPFields = [.authorization: "Bearer ops-secret", .contentType: "application/json"]

    static let manifest = """
        version: 1
        models:
          gbdt: ZOO/gbc_binary.onnx
          mlp: ZOO/mlp_clf.onnx
          afe: ZOO/ml_afe_scaler_normalizer.onnx
        features:
          fraud:
            model: mlp
            key: transaction_id
            latency_budget: 30s
          churn:
            model: gbdt
            key: account_id
            max_staleness: 5m
            latency_budget: 30s
          recs:
            model: mlp
            key: user_id
            max_staleness: 24h
            latency_budget: 30s
          tight:
            model: gbdt
            key: account_id
            latency_budget: 1us
            advice:
              keys: {csv: ACCOUNTS, key_column: account_id}
          recs_hybrid:
            model: afe
            key: user_id
            latency_budget: 30s
            advice:
              decision: {output: xi_picked, kind: ranking, top_k: 2}
        tokens:
          - name: ops
            token: ops-secret
            scopes: [admin, predict]
        server:
          request_log_sample_rate: 1
        # Tests share two cores: latency here is whatever the machine gives, so the latency limits are out of
        # the way; the slow-model branches of rules 1 and 3 are unit-tested in FreshlineCoreTests.
        advisor:
          realtime_p99_limit: 60s
        # A pipeline this team operates for 20 a month: the tiny model's real-time floor (two instances, 140 a month)
        # is then worth replacing at 100k calls a day (the default 150 would not be: AdvisorCostTests).
        pricing:
          batch_overhead_per_month: 20
        """

    /// A server over `manifest` on a manual clock; `body` drives it.
    func withServer(
        _ body: @Sendable @escaping (any TestClientProtocol, ServingRuntime, ManualWallClock) async throws -> Void
    ) async throws {
        // The declared entity set of `tight`: 20 accounts.
        let accounts = FileManager.default.temporaryDirectory.appendingPathComponent(
            "freshline-advisor-accounts-\(UUID().uuidString).csv"
        ).path
        try ("account_id\n" + (0..<20).map { "acct-\($0)\n" }.joined()).write(
            toFile: accounts, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: accounts) }
        try await ClockedServer.run(
            manifest: try TestManifest.write(Self.manifest.replacingOccurrences(of: "ACCOUNTS", with: accounts)), body)
    }

    /// Sends rows (`{"key":…, "inputs":…}` objects) in one multi-row request; every row must be answered.
    static func send(_ client: any TestClientProtocol, _ feature: String, _ rows: [String]) async throws {
        let body = #"{"rows": [\#(rows.joined(separator: ","))]}"#
        try await client.execute(
            uri: "/v1/features/\(feature)/predict", method: .post, headers: ops, body: ByteBuffer(string: body)
        ) { response in
            #expect(response.status == .ok)
            #expect(!String(buffer: response.body).contains(#""error""#))
        }
    }

    /// The advice for one feature, after the request log is flushed.
    static func advice(
        _ client: any TestClientProtocol, _ runtime: ServingRuntime, _ feature: String, query: String = ""
    )
        async throws -> FeatureAdvice
    {
        await runtime.requestLogger?.flush()
        var result: FeatureAdvice?
        try await client.execute(uri: "/v1/features/\(feature)/advice\(query)", method: .get, headers: ops) {
            response in
            #expect(response.status == .ok)
            result = try AdviceText.decode(FeatureAdvice.self, from: Data(response.body.readableBytesView))
        }
        return try #require(result)
    }

    static func vector(_ n: Int, _ rng: inout SplitMix) -> String {
        "[" + (0..<n).map { _ in String(format: "%.3f", rng.uniform() * 4 - 2) }.joined(separator: ",") + "]"
    }

    @Test("unbounded input (a new transaction per request) → real time by rule 1")
    func fraudIsRealtimeByRule1() async throws {
        try await withServer { client, runtime, clock in
            var rng = SplitMix(seed: 1)
            for batch in 0..<20 {
                let rows = (0..<20).map { i in
                    #"{"key": "tx-\#(batch)-\#(i)", "inputs": {"X": \#(Self.vector(16, &rng))}}"#
                }
                try await Self.send(client, "fraud", rows)
                clock.advance(by: 30)
            }
            let advice = try await Self.advice(client, runtime, "fraud")
            #expect(advice.verdict.rule == 1)
            #expect(advice.verdict.recommended == .realtime)
            #expect(advice.axes.cardinality.unbounded)
            #expect(advice.axes.cardinality.predictableShare == 0)
            #expect(advice.axes.cardinality.requestInputsShare == 1)
            #expect(advice.axes.latency.realtimeP99Seconds < 60)
            #expect(advice.verdict.reason.contains("unbounded input"))
            #expect(advice.verdict.wouldChange.contains { $0.contains("known in advance") })
        }
    }

    /// Accounts with fixed inputs, requested over three simulated hours, `perMinute` rows a minute.
    static func accountTraffic(
        _ client: any TestClientProtocol, _ clock: ManualWallClock, accounts: Int, minutes: Int, every: Int,
        perBatch: Int
    ) async throws {
        var rng = SplitMix(seed: 7)
        let inputs = (0..<accounts).map { _ in Self.vector(16, &rng) }
        var next = 0
        for _ in stride(from: 0, to: minutes, by: every) {
            let rows = (0..<perBatch).map { _ -> String in
                let a = next % accounts
                next += 1
                return #"{"key": "acct-\#(a)", "inputs": {"X": \#(inputs[a])}}"#
            }
            try await Self.send(client, "churn", rows)
            clock.advance(by: Double(every * 60))
        }
    }

    @Test("a fixed account list whose answers hold for hours → batch by rule 3 at high volume")
    func accountsAreBatchAtHighVolume() async throws {
        try await withServer { client, runtime, clock in
            // 180 minutes × 100 rows = 18,000 requests in 3 h: 144,000 calls a day over 200 accounts.
            await runtime.requestLogger?.writeUsage()  // opens the ledger's interval if the logger has not yet
            try await Self.accountTraffic(client, clock, accounts: 200, minutes: 180, every: 1, perBatch: 100)
            await runtime.requestLogger?.writeUsage()
            let advice = try await Self.advice(client, runtime, "churn", query: "?what_if=batch:1h")
            // Model time from the calls behind the answers; serving CPU from the process-usage ledger.
            #expect(advice.axes.latency.modelP99Basis.hasPrefix("model time of the calls behind"))
            let realtimeCost = try #require(advice.axes.cost.costs.first { $0.pattern == .realtime })
            #expect(realtimeCost.basis.contains("serving, process CPU"), "\(realtimeCost.basis)")
            #expect(realtimeCost.basis.contains("model, mean of the model calls behind"), "\(realtimeCost.basis)")
            #expect(advice.verdict.rule == 3, "\(advice.verdict.reason)")
            #expect(advice.verdict.recommended == .batch)
            let f = advice.axes.freshness
            #expect(f.basis == "measured")
            #expect(!f.sensitive)
            #expect(f.points.contains { $0.ageSeconds == 3_600 && $0.changeRate == 0 && $0.pairs >= 20 })
            // The feature declares max_staleness 5m; the measurement wins and the report says so.
            #expect(f.note?.contains("measurement wins") == true)
            #expect(advice.axes.cost.callsPerDay > 100_000 && advice.axes.cost.callsPerDay < 200_000)
            #expect(advice.axes.cardinality.predictableShare == 1)
            #expect(!advice.axes.cardinality.unbounded)
            #expect(advice.verdict.wouldChange.contains { $0.contains("below 100k calls/day") })
            // The replay: a run every hour covers every account after the first hour; no decision changes.
            let hourly = try #require(advice.whatIf.first { $0.scenario.everySeconds == 3_600 })
            #expect(hourly.hitRate == 1)
            #expect(hourly.decisionChangeRate == 0)
            #expect((hourly.servedAgeMax ?? 0) < 3_600)
            let costs = advice.axes.cost
            #expect((costs.monthly(.batch) ?? 1) * 2 <= (costs.monthly(.realtime) ?? 0))
        }
    }

    @Test("a model that cannot meet its budget: every request refused, and rule 3 decides from the failures")
    func failingPathIsALatencyCase() async throws {
        try await withServer { client, runtime, clock in
            var rng = SplitMix(seed: 11)
            let inputs = (0..<20).map { _ in Self.vector(16, &rng) }
            // 20 accounts every 10 minutes for two hours; a 1 µs budget no model call meets: nothing is answered.
            for _ in 0..<12 {
                for a in 0..<20 {
                    let body = #"{"rows": [{"key": "acct-\#(a)", "inputs": {"X": \#(inputs[a])}}]}"#
                    try await client.execute(
                        uri: "/v1/features/tight/predict", method: .post, headers: Self.ops,
                        body: ByteBuffer(string: body)
                    ) { response in
                        #expect(String(buffer: response.body).contains("error"))
                    }
                }
                clock.advance(by: 600)
            }
            let advice = try await Self.advice(client, runtime, "tight")
            #expect(advice.verdict.rule == 3 && advice.verdict.recommended == .batch, "\(advice.verdict.reason)")
            #expect(advice.axes.latency.failsBudget && advice.axes.latency.refusedShare == 1)
            #expect(
                advice.verdict.reason.contains("100% of requests timed out or were shed"), "\(advice.verdict.reason)")
            #expect(advice.axes.freshness.basis == "none")
            #expect(advice.verdict.notMeasured.contains { $0.hasPrefix("how long decisions hold") })
            #expect(advice.verdict.reason.contains("the keys are enumerable"), "\(advice.verdict.reason)")
        }
    }

    @Test("the same accounts at low volume → real time by rule 4, with the volume at which rule 3 would apply")
    func accountsAreRealtimeAtLowVolume() async throws {
        try await withServer { client, runtime, clock in
            // 40 accounts, each requested once an hour for four hours: 160 requests, under 1,000 a day.
            try await Self.accountTraffic(client, clock, accounts: 40, minutes: 240, every: 60, perBatch: 40)
            let advice = try await Self.advice(client, runtime, "churn")
            #expect(advice.verdict.rule == 4, "\(advice.verdict.reason)")
            #expect(advice.verdict.recommended == .realtime)
            #expect(advice.axes.freshness.basis == "measured")
            #expect(!advice.axes.freshness.sensitive)
            #expect(advice.axes.cost.callsPerDay < 2_000)
            #expect(advice.verdict.wouldChange.contains { $0.contains("× volume") && $0.contains("rule 3 applies") })
        }
    }

    @Test("a session-dependent recommendation whose answers change within minutes → real time by rule 2")
    func sessionRecommendationIsRealtimeByRule2() async throws {
        try await withServer { client, runtime, clock in
            var rng = SplitMix(seed: 3)
            // 30 users, a request every two minutes each, with new session signals every time.
            for _ in 0..<12 {
                let rows = (0..<30).map { u in #"{"key": "user-\#(u)", "inputs": {"X": \#(Self.vector(16, &rng))}}"# }
                try await Self.send(client, "recs", rows)
                clock.advance(by: 120)
            }
            let advice = try await Self.advice(client, runtime, "recs")
            #expect(advice.verdict.rule == 2, "\(advice.verdict.reason)")
            #expect(advice.verdict.recommended == .realtime)
            let f = advice.axes.freshness
            #expect(f.sensitive && f.basis == "measured")
            #expect((f.points.first { $0.ageSeconds == 60 }?.changeRate ?? 0) >= 0.05)
            // Declared max_staleness 24h, but decisions change within minutes: the measurement wins.
            #expect(f.note?.contains("measurement wins") == true)
            #expect(f.inputStability.first { $0.input == "X" }?.unchangedShare == 0)
        }
    }

    @Test("a recommendation whose candidate inputs are stable per user → hybrid by rule 2")
    func stableCandidatesMakeAHybrid() async throws {
        try await withServer { client, runtime, clock in
            var rng = SplitMix(seed: 5)
            let candidates = (0..<30).map { _ in Self.vector(12, &rng) }
            for _ in 0..<12 {
                let rows = (0..<30).map { u -> String in
                    let session = (0..<3).map { _ in String(Int(rng.uniform() * 1000)) }.joined(separator: ",")
                    return #"{"key": "user-\#(u)", "inputs": {"X": \#(candidates[u]), "Xi": [\#(session)]}}"#
                }
                try await Self.send(client, "recs_hybrid", rows)
                clock.advance(by: 120)
            }
            let advice = try await Self.advice(client, runtime, "recs_hybrid")
            #expect(advice.verdict.rule == 2, "\(advice.verdict.reason)")
            #expect(advice.verdict.recommended == .hybrid)
            #expect(advice.verdict.precompute == ["X"])
            #expect(advice.verdict.requestTime == ["Xi"])
        }
    }

    @Test("a batch feature's retained snapshot versions are compared as answers of their age")
    func snapshotVersionsAreShadowAnswers() async throws {
        let (fixture, _) = try BatchFixture.write(features: "")
        let yaml = """
            version: 1
            models:
              gbdt: \(TestManifest.zoo.path)/gbc_binary.onnx
            features:
            \(BatchServingTests.batchFeature("scores", staleness: "24h"))
            tokens:
              - {name: ops, token: ops-secret, scopes: [admin, predict]}
            server:
              request_log_sample_rate: 1
            """
        try yaml.write(toFile: fixture, atomically: true, encoding: .utf8)
        try await ClockedServer.run(manifest: fixture) { client, runtime, clock in
            let batch = try #require(runtime.batch)
            for _ in 0..<2 {
                let run = try await batch.trigger(feature: "scores")
                try await Wait.until("the snapshot of \(run.id)") {
                    runtime.features["scores"]?.snapshot?.info.runID == run.id
                }
                let rows = (0..<36).map { #"{"key": "u\#($0)"}"# }
                try await Self.send(client, "scores", rows)
                clock.advance(by: 6 * 3_600)
            }
            let advice = try await Self.advice(client, runtime, "scores")
            let f = advice.axes.freshness
            #expect(f.basis == "measured")
            #expect(!f.sensitive)
            #expect(f.points.contains { $0.ageSeconds == 21_600 && $0.changeRate == 0 && $0.pairs >= 36 })
            #expect(f.evidence.contains("retained snapshots"))
            #expect(advice.axes.cardinality.predictableShare == 1)
            #expect(advice.axes.cardinality.predictableBasis.contains("published snapshot"))
            #expect(advice.axes.latency.sources.contains { $0.source == "batch" && $0.count == 72 })
            // 72 lookups over 6 h is low volume: a batch pipeline is not needed yet.
            #expect(advice.verdict.rule == 4, "\(advice.verdict.reason)")
        }
    }

    @Test("every format renders; the HTML report is one self-contained page with its charts")
    func formats() async throws {
        try await withServer { client, runtime, clock in
            try await Self.accountTraffic(client, clock, accounts: 20, minutes: 120, every: 10, perBatch: 20)
            await runtime.requestLogger?.flush()
            for (format, marker) in [
                ("html", "<svg"), ("markdown", "| feature |"), ("table", "rule "), ("json", "\"features\""),
            ] {
                try await client.execute(uri: "/v1/advice?format=\(format)", method: .get, headers: Self.ops) {
                    response in
                    #expect(response.status == .ok)
                    let text = String(buffer: response.body)
                    #expect(text.contains(marker), "\(format)")
                    #expect(text.contains("churn"), "\(format)")
                    if format == "html" {
                        // Nothing fetched from elsewhere: no sources, links to the network, imports or URLs in CSS.
                        for external in ["src=", "href=\"http", "@import", "url("] {
                            #expect(!text.contains(external), "\(external)")
                        }
                    }
                }
            }
            try await client.execute(uri: "/v1/advice?format=pdf", method: .get, headers: Self.ops) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(
                uri: "/v1/features/churn/advice?what_if=batch:soon", method: .get, headers: Self.ops
            ) {
                response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("what_if"))
            }
            try await client.execute(uri: "/v1/features/nope/advice", method: .get, headers: Self.ops) { response in
                #expect(response.status == .notFound)
            }
        }
    }
}

/// The engine's deterministic generator, for test traffic.
typealias SplitMix = SplitMix64

extension SplitMix64 {
    /// Uniform in [0, 1).
    mutating func uniform() -> Double { Double(next() >> 11) / Double(UInt64(1) << 53) }
}
