import FreshlineCore
import Testing

/// The advisor's load-test rows and headroom finding (LoadTest.swift).
@Suite("Load-test headroom")
struct LoadHeadroomTests {
    static func run(
        speed: Double, realtimeP99: Double?, batchP99: Double? = nil, shed: Int = 0, answered: Int = 100,
        at: Double = 1_765_152_000
    ) -> LoadTestResult {
        var sources: [SourceLatency] = []
        if let batchP99 {
            sources.append(
                SourceLatency(source: "batch", count: 50, p50: 0.001, p95: 0.002, p99: batchP99, p999: batchP99))
        }
        if let realtimeP99 {
            sources.append(
                SourceLatency(
                    source: "realtime", count: 50, p50: 0.002, p95: 0.004, p99: realtimeP99, p999: realtimeP99))
        }
        return LoadTestResult(
            id: "load_\(Int(speed * 10))", feature: "f", startedAt: at, endedAt: at + 5, speed: speed,
            durationSeconds: 5, sent: answered + shed, answered: answered, sources: sources, shed: shed, fallback: 0,
            errors: 0, achievedRate: 20 * speed, server: "http://127.0.0.1:8080")
    }

    @Test("the headroom is the highest speed whose p99 stayed within the budget with nothing shed")
    func highestPassingSpeed() throws {
        let tests = [
            Self.run(speed: 1, realtimeP99: 0.010), Self.run(speed: 2, realtimeP99: 0.020),
            Self.run(speed: 4, realtimeP99: 0.030, shed: 3), Self.run(speed: 8, realtimeP99: 0.200),
        ]
        let h = try #require(LoadHeadroom.judge(tests, budgetSeconds: 0.050))
        #expect(h.speed == 2)
        #expect(h.runs == 4)
        #expect(h.finding.contains("holds 2× the recorded traffic"), "\(h.finding)")
        #expect(h.finding.contains("at 4× it did not (3 shed)"), "\(h.finding)")
    }

    @Test("no passing run: no headroom, and the finding says why at the lowest speed")
    func nothingPasses() throws {
        let h = try #require(
            LoadHeadroom.judge(
                [Self.run(speed: 2, realtimeP99: 0.2), Self.run(speed: 1, realtimeP99: 0.1)], budgetSeconds: 0.05))
        #expect(h.speed == nil)
        #expect(h.finding.contains("at 1×: p99 100 ms"), "\(h.finding)")
        #expect(LoadHeadroom.judge([], budgetSeconds: 0.05) == nil)
        // Nothing answered never passes.
        #expect(LoadHeadroom.judge([Self.run(speed: 1, realtimeP99: nil, answered: 0)], budgetSeconds: 1)?.speed == nil)
    }

    @Test("the p99 judged is the real-time answers' when there are any, else the slowest source's")
    func servedP99() {
        #expect(Self.run(speed: 1, realtimeP99: 0.01, batchP99: 0.5).servedP99 == 0.01)
        #expect(Self.run(speed: 1, realtimeP99: nil, batchP99: 0.5).servedP99 == 0.5)
        #expect(Self.run(speed: 1, realtimeP99: nil).servedP99 == nil)
    }

    @Test("load tests are their own rows on the latency axis: the production percentiles are untouched")
    func keptApartFromProduction() throws {
        let feature = FeatureSpec(name: "f", model: "m", location: SourceLocation(file: "", line: 0, keyPath: ""))
        let production = [SourceLatency(source: "realtime", count: 40, p50: 0.001, p95: 0.002, p99: 0.003, p999: 0.004)]
        var input = AdvisorInput(
            feature: feature, samples: [], now: 1_765_152_100,
            compute: ComputeCost(
                realtimeSecondsPerPrediction: 0.001, batchSecondsPerPrediction: 0.0001, batchSize: 64, basis: "test"),
            latency: production)
        input.loadTests = [
            Self.run(speed: 1, realtimeP99: 0.010), Self.run(speed: 4, realtimeP99: 0.020, at: 1_765_152_050),
        ]
        let axes = Advisor.measure(input, settings: AdvisorSettings(), pricing: Pricing())
        #expect(axes.latency.sources == production)
        #expect(axes.latency.realtimeP99Seconds == 0.003)
        #expect(axes.latency.loadTests.map(\.speed) == [4, 1])
        #expect(axes.latency.loadTests.first?.label == "load test at 4× (2025-12-08)")
        #expect(axes.latency.loadHeadroom?.speed == 4)
    }
}
