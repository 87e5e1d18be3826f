import Testing

@testable import FreshlineCore

/// The cost model in money (always-on instances, runs, storage, operations, store writes), rule 3's minimum saving,
/// model time apart from queueing, failures that feed the rules, and answers compared like with like.
@Suite("Advisor costs and evidence")
struct AdvisorCostTests {
    static func near(_ a: Double?, _ b: Double) -> Bool { a.map { abs($0 - b) < 1e-6 * max(1, abs(b)) } ?? false }

    static func term(_ cost: PatternCost?, _ name: String) -> CostTerm? { cost?.terms.first { $0.name == name } }

    @Test("every pattern's terms, against hand-computed values")
    func terms() {
        var v = CostModel.Volume(
            callsPerDay: 864_000, peakToAverage: 3, realtimeSecondsPerPrediction: 0.01,
            batchSecondsPerPrediction: 0.001, batchRowsPerRun: 100_000, runsPerDay: 1, coverage: 0.9)
        v.servingSecondsPerAnswer = 0.0001
        v.servingBasis = "measured"
        v.snapshotBytes = 1e9
        var pricing = Pricing(coreHour: 0.1, spotDiscount: 0.5)
        pricing.minInstances = 2
        pricing.instanceCores = 2
        var settings = AdvisorSettings()
        settings.targetUtilization = 0.5
        let c = Dictionary(
            uniqueKeysWithValues: CostModel.costs(v, pricing: pricing, settings: settings).map { ($0.pattern, $0) })
        // Real time: 10 calls/s × 3 × 10.1 ms ÷ 0.5 = 0.606 cores: one instance would do, the floor keeps two
        // (2 cores × 0.1 = 0.2 an hour) on all month: 292.
        let floor: Double = 2 * 0.2 * 730
        #expect(Self.near(c[.realtime]?.monthly, floor))
        #expect(c[.realtime]?.basis.contains("pricing.min_instances 2; the load needs 0.606 cores") == true)
        // Batch: lookups (90% at 0.1 ms, 10% computed at 10.1 ms) = 1.1 ms × 30 calls/s ÷ 0.5 = 0.066 cores × 730 h
        // × 0.1 = 4.818; runs 100,000 × 30.4 × 1 ms = 0.8444 core-hours at half price; 1 GB × 2 versions × 3 copies
        // × 0.08 = 0.48; operations 150.
        let runs: Double = 100_000 * 30.4 * 0.001 / 3_600 * 0.05
        let batchTotal: Double = 4.818 + runs + 0.48 + 150
        #expect(Self.near(Self.term(c[.batch], "serving lookups")?.monthly, 4.818))
        #expect(Self.near(Self.term(c[.batch], "batch runs")?.monthly, runs))
        #expect(Self.near(Self.term(c[.batch], "snapshot storage")?.monthly, 0.48))
        #expect(Self.near(Self.term(c[.batch], "pipeline operations")?.monthly, 150))
        #expect(Self.near(c[.batch]?.monthly, batchTotal))
        // Async: intake 0.2 ms × 30/s ÷ 0.5 = 0.012 cores (0.876); one worker instance (146); 864,000 × 30.4 × 4
        // writes at 1.25 per million (131.328).
        let asyncTotal: Double = 0.876 + 146 + 131.328
        #expect(Self.near(c[.async]?.monthly, asyncTotal))
        // Hybrid: real-time capacity plus the batch terms.
        let hybridTotal: Double = 292 + runs + 0.48 + 150
        #expect(Self.near(c[.hybrid]?.monthly, hybridTotal))
        // More traffic buys whole instances: 10× the calls need 6.06 cores, four instances.
        v.callsPerDay *= 10
        let busier = CostModel.costs(v, pricing: pricing, settings: settings).first { $0.pattern == .realtime }
        let four: Double = 4 * 0.2 * 730
        #expect(Self.near(busier?.monthly, four))
        #expect(busier?.basis.contains("the peak needs 6.06 cores") == true, "\(busier?.basis ?? "")")
    }

    /// A bounded feature whose decisions hold for a day, on a 40 ms model (8 ms a row in batches), 1M keys, with
    /// 80 µs of serving CPU per answer.
    static func seedVolume(callsPerDay: Double) -> CostModel.Volume {
        var v = CostModel.Volume(
            callsPerDay: callsPerDay, peakToAverage: 3, realtimeSecondsPerPrediction: 0.04,
            batchSecondsPerPrediction: 0.008, batchRowsPerRun: 1_000_000, runsPerDay: 1, coverage: 1)
        v.servingSecondsPerAnswer = 80e-6
        return v
    }

    @Test("the specification's ends: 500 calls a day are not worth a pipeline, 5M a day are the margin")
    func seedEnds() {
        let settings = AdvisorSettings()
        let pricing = Pricing()
        // 500 calls a day: real time is the floor (2 instances, 140.16); batch is its operations and more.
        let quiet = CostModel.costs(Self.seedVolume(callsPerDay: 500), pricing: pricing, settings: settings)
        let quietRealtime = quiet.first { $0.pattern == .realtime }!.monthly
        let quietBatch = quiet.first { $0.pattern == .batch }!.monthly
        let twoInstances: Double = 2 * 2 * 0.048 * 730
        #expect(Self.near(quietRealtime, twoInstances))
        #expect(quietBatch > quietRealtime)
        #expect(!CostModel.batchPays(quiet, callsPerDay: 500, settings: settings))
        // 5M calls a day: 57.9 calls/s × 3 × 40.08 ms ÷ 0.6 = 11.6 cores, six instances (420.48); batch is its
        // operations (150) and a few for runs, lookups and storage.
        let busy = CostModel.costs(Self.seedVolume(callsPerDay: 5e6), pricing: pricing, settings: settings)
        let realtime = busy.first { $0.pattern == .realtime }!.monthly
        let batch = busy.first { $0.pattern == .batch }!.monthly
        let sixInstances: Double = 6 * 2 * 0.048 * 730
        #expect(Self.near(realtime, sixInstances))
        #expect(batch > 150 && batch < 155, "\(batch)")
        #expect(CostModel.batchPays(busy, callsPerDay: 5e6, settings: settings))
        // The same through the rules, with the saving in currency.
        let axes = { (calls: Double) -> FeatureAxes in
            var a = AdvisorRulesTests.axes(calls: calls)
            let v = Self.seedVolume(callsPerDay: calls)
            a.cost.costs = CostModel.costs(v, pricing: pricing, settings: settings)
            a.cost.batchPaysAtCallsPerDay = CostModel.batchPaysAt(v, pricing: pricing, settings: settings).map {
                $0 * calls
            }
            return a
        }
        let low = Advisor.decide(axes(500), settings: settings)
        #expect(low.rule == 4 && low.recommended == .realtime)
        #expect(low.reason.contains("not worth a pipeline"), "\(low.reason)")
        #expect(low.reason.contains("batch would cost"), "\(low.reason)")
        let high = Advisor.decide(axes(5e6), settings: settings)
        #expect(high.rule == 3 && high.recommended == .batch)
        #expect(high.reason.contains("batch saves 2"), "\(high.reason)")
        // Where it turns: the volume at which batch would pay, printed for the quiet one.
        #expect(low.wouldChange.contains { $0.contains("rule 3 applies (batch)") }, "\(low.wouldChange)")
        // A minimum saving above what batch saves keeps real time.
        var strict = settings
        strict.minMonthlySaving = 1_000
        #expect(Advisor.decide(axes(5e6), settings: strict).rule == 4)
    }

    @Test("costs are range-checked: NaN, infinite and negative figures price as zero, never trap")
    func implausible() {
        for bad in [Double.nan, .infinity, -5, 1e300] {
            var v = Self.seedVolume(callsPerDay: bad)
            v.servingSecondsPerAnswer = bad
            v.peakToAverage = bad
            let costs = CostModel.costs(v, pricing: Pricing(), settings: AdvisorSettings())
            #expect(costs.allSatisfy { $0.monthly.isFinite && $0.monthly >= 0 }, "\(bad)")
        }
    }

    // MARK: - The ledger

    @Test("serving CPU per request: process CPU less model time, batch runs and the idle rate, over every request")
    func ledger() {
        var busy = FeatureUsage()
        busy.answers = ["realtime": 1_000, "batch": 3_000, "refused": 50]
        busy.modelSeconds = 0.5
        busy.batchRows = 10_000
        busy.batchCPUSeconds = 2
        let records = [
            // Idle minute: 0.6 s of CPU in 60 s (0.01 per second).
            ProcessUsage(process: "a", at: 60, seconds: 60, cpuSeconds: 0.6, features: [:]),
            // Busy minute: 3.4 s = 0.6 idle + 0.5 model + 2 batch + 0.3 serving over 4,050 requests (refused ones too).
            ProcessUsage(process: "a", at: 120, seconds: 60, cpuSeconds: 3.4, features: ["f": busy]),
        ]
        let usage = ServingUsage.measure(records, feature: "f")
        #expect(Self.near(usage.servingSecondsPerAnswer, 0.3 / 4_050))
        #expect(Self.near(usage.batchCPUSecondsPerRow, 2.0 / 10_000))
        #expect(usage.servingBasis.contains("4050 requests"), "\(usage.servingBasis)")
        let other = ServingUsage.measure(records, feature: "g")
        #expect(other.batchCPUSecondsPerRow == nil && other.batchBasis.hasPrefix("not measured"))
        #expect(ServingUsage.measure([], feature: "f").servingSecondsPerAnswer == nil)
    }

    // MARK: - Latency, failures, versions

    static func feature(budgetMilliseconds: Int64 = 100, blocking: Bool = true) -> FeatureSpec {
        var f = FeatureSpec(name: "f", model: "m", location: SourceLocation(file: "", line: 0, keyPath: ""))
        f.latencyBudget = .milliseconds(budgetMilliseconds)
        f.userBlocking = blocking
        return f
    }

    static func input(_ samples: [RequestLogSample], engine: Double, budgetMilliseconds: Int64 = 100) -> AdvisorInput {
        AdvisorInput(
            feature: feature(budgetMilliseconds: budgetMilliseconds), samples: samples, now: 8_000,
            compute: ComputeCost(
                realtimeSecondsPerPrediction: engine, batchSecondsPerPrediction: engine / 5, batchSize: 64,
                basis: "engine, 5 timed calls"),
            latency: [])
    }

    @Test("a model too slow for its budget whose every request is refused is a latency case, with or without keys")
    func failingPath() {
        // Two hours of requests over 20 repeating keys, every one timed out: no answers to pair.
        func refused(keys: (Int) -> String, inputs: Bool) -> [RequestLogSample] {
            (0..<240).map { i in
                RequestLogSample(
                    feature: "f", keyHash: KeyHash.hex(keys(i)), hasRequestInputs: inputs, source: nil,
                    outcome: "timeout", latencySeconds: 0.1, ageSeconds: 0, at: Double(i * 30))
            }
        }
        let settings = AdvisorSettings()
        let repeating = Advisor.advise(
            Self.input(refused(keys: { "k\($0 % 20)" }, inputs: false), engine: 0.6), settings: settings,
            pricing: Pricing())
        #expect(repeating.verdict.rule == 3 && repeating.verdict.recommended == .batch, "\(repeating.verdict)")
        #expect(repeating.verdict.reason.contains("100% of requests timed out or were shed"))
        #expect(repeating.verdict.reason.contains("how long decisions hold was not measured"))
        #expect(repeating.verdict.notMeasured.contains { $0.hasPrefix("how long decisions hold") })
        #expect(repeating.axes.latency.failsBudget && repeating.axes.latency.modelP99Seconds == 0.6)
        // Keys never seen before and nothing but the key: nothing to precompute, so async.
        let novel = Advisor.advise(
            Self.input(refused(keys: { "n\($0)" }, inputs: false), engine: 0.6), settings: settings, pricing: Pricing())
        #expect(novel.verdict.rule == 3 && novel.verdict.recommended == .async, "\(novel.verdict)")
        // Novel keys carrying their own inputs: rule 1, and the model is over its limit: async.
        let unbounded = Advisor.advise(
            Self.input(refused(keys: { "n\($0)" }, inputs: true), engine: 0.6), settings: settings, pricing: Pricing())
        #expect(unbounded.verdict.rule == 1 && unbounded.verdict.recommended == .async, "\(unbounded.verdict)")
        // Refused before their body was read: no keys at all. A declared entity set says the keys are enumerable;
        // without one nothing does.
        let keyless = (0..<240).map { i in
            RequestLogSample(
                feature: "f", keyHash: nil, hasRequestInputs: false, source: nil, outcome: "shed",
                latencySeconds: 0, ageSeconds: 0, at: Double(i * 30))
        }
        var declared = Self.input(keyless, engine: 0.6)
        declared.snapshotKeyHashes = [KeyHash.hex("k0")]
        let withKeys = Advisor.advise(declared, settings: settings, pricing: Pricing())
        #expect(withKeys.verdict.rule == 3 && withKeys.verdict.recommended == .batch, "\(withKeys.verdict)")
        #expect(withKeys.verdict.reason.contains("the keys are enumerable"), "\(withKeys.verdict.reason)")
        #expect(withKeys.axes.cost.callsPerDay > 0)
        let withoutKeys = Advisor.advise(Self.input(keyless, engine: 0.6), settings: settings, pricing: Pricing())
        #expect(withoutKeys.verdict.rule == 3 && withoutKeys.verdict.recommended == .async, "\(withoutKeys.verdict)")
        // The same refusals with a model that fits the budget are a capacity finding, not a pattern.
        let capacity = Advisor.advise(
            Self.input(refused(keys: { "k\($0 % 20)" }, inputs: false), engine: 0.01), settings: settings,
            pricing: Pricing())
        #expect(!capacity.axes.latency.failsBudget && capacity.verdict.rule != 3)
        #expect(capacity.findings.contains { $0.hasPrefix("capacity: 100% of requests timed out") })
    }

    @Test("model time apart from queueing: rule 1 uses the model's p99, queueing is a capacity finding")
    func queueing() {
        // A 300 ms model behind a busy queue: 1.9 s end to end. Every request novel, with its own inputs.
        let samples = (0..<200).map { i in
            RequestLogSample(
                feature: "f", keyHash: KeyHash.hex("n\(i)"), hasRequestInputs: true, source: .realtime, outcome: "ok",
                latencySeconds: 1.9, ageSeconds: 0, at: Double(i * 30), computedAt: Double(i * 30),
                decision: .label("a"))
        }.map { s -> RequestLogSample in
            var s = s
            s.computeSeconds = 0.3
            s.computeRows = 4
            return s
        }
        var input = Self.input(samples, engine: 0.2, budgetMilliseconds: 500)
        input.latency = [SourceLatency(source: "realtime", count: 200, p50: 1.9, p95: 1.9, p99: 1.9, p999: 1.9)]
        let advice = Advisor.advise(input, settings: AdvisorSettings(), pricing: Pricing())
        #expect(advice.axes.latency.modelP99Seconds == 0.3 && advice.axes.latency.realtimeP99Seconds == 1.9)
        #expect(advice.axes.latency.modelP99Basis.contains("200 sampled real-time answers (queueing excluded)"))
        #expect(advice.verdict.rule == 1 && advice.verdict.recommended == .realtime, "\(advice.verdict)")
        #expect(advice.findings.contains { $0.hasPrefix("capacity: the real-time p99 is 1.9 s end to end") })
        // The cost prices the model's time per row of its calls (300 ms over 4 rows), not the engine's.
        #expect(advice.axes.cost.costs[0].basis.contains("75 ms model, mean of the model calls behind 200"))
    }

    @Test("answers of different model versions are not paired; the change of version is its own finding")
    func versions() {
        // 10 keys answered every 10 minutes for 4 hours; version B (from 2 h) answers "b" where A answered "a".
        var samples: [RequestLogSample] = []
        for minute in stride(from: 0, to: 240, by: 10) {
            for k in 0..<10 {
                var s = RequestLogSample(
                    feature: "f", keyHash: KeyHash.hex("k\(k)"), hasRequestInputs: false, source: .realtime,
                    outcome: "ok", latencySeconds: 0.002, ageSeconds: 0, at: Double(minute * 60),
                    computedAt: Double(minute * 60), decision: .label(minute < 120 ? "a" : "b"))
                s.modelVersion = minute < 120 ? "version-a" : "version-b"
                samples.append(s)
            }
        }
        var settings = AdvisorSettings()
        settings.minPairs = 5
        let advice = Advisor.advise(Self.input(samples, engine: 0.001), settings: settings, pricing: Pricing())
        #expect(advice.axes.freshness.points.allSatisfy { $0.changeRate == 0 }, "\(advice.axes.freshness.points)")
        #expect(
            advice.findings.contains {
                $0.contains("version-b replaced version-a") && $0.contains("changed 100% of decisions (10 keys")
            }, "\(advice.findings)")
        // Without versions the same log reads as decisions changing with age.
        let unversioned = samples.map { s -> RequestLogSample in
            var s = s
            s.modelVersion = nil
            return s
        }
        let mixed = Advisor.advise(Self.input(unversioned, engine: 0.001), settings: settings, pricing: Pricing())
        #expect(mixed.axes.freshness.points.contains { $0.changeRate > 0 })
        #expect(mixed.findings.isEmpty)
    }
}
