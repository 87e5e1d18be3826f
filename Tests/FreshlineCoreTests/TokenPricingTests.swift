import Testing

@testable import FreshlineCore

/// The cost axis of a feature priced by tokens (an LLM upstream with `pricing.models` prices): the tokens per
/// call measured from the request log, the cost of each pattern against hand-computed values, and the advisor
/// choosing tokens over engine time only when the model has token prices.
@Suite("Token pricing")
struct TokenPricingTests {
    /// 2.50 per 1M input tokens, 10.00 per 1M output tokens, half price through the batch API.
    static let price = TokenPrice(inputPerMillion: 2.5, outputPerMillion: 10)

    /// 800 input + 200 output tokens a call: 800 × 2.5 / 1M + 200 × 10 / 1M = 0.002 + 0.002 = 0.004 a call.
    static let measured = TokenMeasures(perCall: TokenCounts(input: 800, output: 200), answers: 240)

    /// 10,000 calls a day; 5,000 rows a run, once a day; a snapshot would answer 90% of calls.
    static func volume(perBatchRow: TokenCounts? = nil, measured: TokenMeasures? = measured) -> CostModel.Volume {
        var v = CostModel.Volume(
            callsPerDay: 10_000, peakToAverage: 3, realtimeSecondsPerPrediction: 0.01, batchSecondsPerPrediction: 0.001,
            batchRowsPerRun: 5_000, runsPerDay: 1, coverage: 0.9)
        v.tokens = CostModel.TokenVolume(model: "llm", price: price, measured: measured, perBatchRow: perBatchRow)
        return v
    }

    /// Token terms alone: no always-on instances, no pipeline operations, no storage or store writes (the other
    /// terms are checked in AdvisorCostTests).
    static func bare(models: [String: TokenPrice] = [:]) -> Pricing {
        var p = Pricing(models: models)
        p.minInstances = 0
        p.asyncMinWorkers = 0
        p.batchOverheadPerMonth = 0
        p.storageGBMonth = 0
        p.storeWritePerMillion = 0
        return p
    }

    static func byPattern(_ costs: [PatternCost]) -> [ServingPattern: PatternCost] {
        Dictionary(uniqueKeysWithValues: costs.map { ($0.pattern, $0) })
    }

    static func near(_ a: Double?, _ b: Double) -> Bool { a.map { abs($0 - b) < 1e-9 * max(1, abs(b)) } ?? false }

    @Test("a token price: full and through the batch API")
    func tokenPrice() {
        let call = TokenCounts(input: 800, output: 200)
        #expect(Self.near(Self.price.cost(call), 0.004))
        #expect(Self.near(Self.price.cost(call, batch: true), 0.002))
        let noDiscount = TokenPrice(inputPerMillion: 2.5, outputPerMillion: 10, batchDiscount: 0)
        #expect(Self.near(noDiscount.cost(call, batch: true), 0.004))
        #expect(TokenPrice(inputPerMillion: 1, outputPerMillion: 1).batchDiscount == 0.5)
    }

    @Test("tokens per call: the mean over answers that reported usage, weighted by their sampling rate")
    func measure() {
        func sample(_ input: Int?, _ output: Int?, rate: Double) -> RequestLogSample {
            RequestLogSample(
                feature: "f", keyHash: nil, hasRequestInputs: true, source: .realtime, outcome: "ok",
                latencySeconds: 0.1, ageSeconds: 0, at: 0, sampleRate: rate, inputTokens: input, outputTokens: output)
        }
        // Weights 1 and 2 (sampled at 50%); the answer without usage does not count.
        let m = TokenMeasures.measure([sample(100, 10, rate: 1), sample(400, 40, rate: 0.5), sample(nil, nil, rate: 1)])
        #expect(m?.answers == 2)
        #expect(Self.near(m?.perCall.input, (100 + 2 * 400) / 3.0))
        #expect(Self.near(m?.perCall.output, (10 + 2 * 40) / 3.0))
        #expect(TokenMeasures.measure([sample(nil, nil, rate: 1)]) == nil)
        #expect(TokenMeasures.measure([]) == nil)
    }

    @Test("each pattern's monthly cost by tokens, against hand-computed values")
    func costs() {
        let costs = CostModel.costs(Self.volume(), pricing: Self.bare(), settings: AdvisorSettings())
        #expect(costs.map(\.pattern) == [.realtime, .async, .batch, .hybrid])
        let c = Self.byPattern(costs)
        // 10,000 calls/day × 30.4 days = 304,000 calls × 0.004 = 1,216 a month, real time and async alike.
        #expect(Self.near(c[.realtime]?.monthly, 1_216))
        #expect(Self.near(c[.async]?.monthly, 1_216))
        // 5,000 rows × 1 run × 30.4 days = 152,000 rows × 0.002 (half price) = 304; plus 10% of calls missed at
        // full price: 121.6.
        #expect(Self.near(c[.batch]?.monthly, 304 + 121.6))
        // Batch precompute of every key plus every call in real time.
        #expect(Self.near(c[.hybrid]?.monthly, 304 + 1_216))
        // No engine time is bought.
        #expect(costs.allSatisfy { $0.coreHoursPerMonth == 0 })
    }

    @Test("every term is printed with its evidence")
    func bases() {
        let c = Self.byPattern(CostModel.costs(Self.volume(), pricing: Self.bare(), settings: AdvisorSettings()))
        let realtime = c[.realtime]?.basis ?? ""
        #expect(realtime.contains("priced by tokens (llm)"), "\(realtime)")
        #expect(realtime.contains("10k calls/day × 30.4 days × 0.0040/call"), "\(realtime)")
        #expect(realtime.contains("800 input + 200 output tokens per call"), "\(realtime)")
        #expect(realtime.contains("mean of 240 sampled answers"), "\(realtime)")
        #expect(realtime.contains("2.50 input / 10.00 output per 1M tokens"), "\(realtime)")
        let batch = c[.batch]?.basis ?? ""
        #expect(batch.contains("5000 rows/run × 1 runs/day × 30.4 days × 0.0020/row"), "\(batch)")
        #expect(batch.contains("the request log's mean per call standing in"), "\(batch)")
        #expect(batch.contains("batch API at 50% off"), "\(batch)")
        #expect(batch.contains("10% of calls missed"), "\(batch)")
        #expect(batch.contains("missed-call tokens 122 ("), "\(batch)")
        let hybrid = c[.hybrid]?.basis ?? ""
        #expect(
            hybrid.contains("upper bound") && hybrid.contains("batch tokens 304 (")
                && hybrid.contains("; tokens 1216 ("),
            "\(hybrid)")
    }

    @Test("tokens per batch row, when batch runs recorded them, price the runs instead of the mean per call")
    func batchRowTokens() {
        // 400 + 100 tokens a row: 0.002 at full price, 0.001 through the batch API; 152,000 rows = 152.
        let costs = CostModel.costs(
            Self.volume(perBatchRow: TokenCounts(input: 400, output: 100)), pricing: Self.bare(),
            settings: AdvisorSettings())
        let c = Self.byPattern(costs)
        #expect(Self.near(c[.batch]?.monthly, 152 + 121.6))
        #expect(Self.near(c[.hybrid]?.monthly, 152 + 1_216))
        #expect(Self.near(c[.realtime]?.monthly, 1_216))
        #expect(c[.batch]?.basis.contains("400 input + 100 output tokens per row, recorded by batch runs") == true)
    }

    @Test("nothing measured: every pattern costs nothing, and the basis says why")
    func nothingMeasured() {
        let c = Self.byPattern(
            CostModel.costs(Self.volume(measured: nil), pricing: Self.bare(), settings: AdvisorSettings()))
        #expect(c.values.allSatisfy { $0.monthly == 0 })
        #expect(c[.realtime]?.basis.contains("no answer in the window reported token usage") == true)
    }

    // MARK: - The advisor

    /// One call a minute for a day, each reporting 800 + 200 tokens: 1,440 calls a day.
    static func input(model: String, tokens: Bool) -> AdvisorInput {
        let samples = (0..<1_440).map { i in
            RequestLogSample(
                feature: "summary", keyHash: "k\(i % 50)", hasRequestInputs: true, source: .realtime, outcome: "ok",
                latencySeconds: 0.8, ageSeconds: 0, at: Double(i * 60), inputTokens: tokens ? 800 : nil,
                outputTokens: tokens ? 200 : nil)
        }
        var input = AdvisorInput(
            feature: FeatureSpec(
                name: "summary", model: model, location: SourceLocation(file: "", line: 0, keyPath: "")),
            samples: samples, now: 86_400,
            compute: ComputeCost(
                realtimeSecondsPerPrediction: 0.01, batchSecondsPerPrediction: 0.001, batchSize: 64, basis: "engine"),
            latency: [])
        input.tokens = TokenMeasures.measure(samples)
        return input
    }

    @Test("a feature whose model has token prices is priced by tokens; the others by engine time")
    func advisorChoosesTokens() throws {
        let pricing = Self.bare(models: ["llm": Self.price])
        let llm = Advisor.measure(Self.input(model: "llm", tokens: true), settings: AdvisorSettings(), pricing: pricing)
        let tokens = try #require(llm.cost.tokens)
        #expect(tokens.model == "llm" && tokens.measured?.answers == 1_440 && tokens.perBatchRow == nil)
        #expect(abs(llm.cost.callsPerDay - 1_440) < 1e-6)
        // 1,440 calls/day × 30.4 days × 0.004 = 175.104 a month.
        #expect(Self.near(llm.cost.monthly(.realtime), 1_440 * 30.4 * 0.004))
        #expect(llm.cost.evidence.contains("priced by tokens: model llm at 2.50 input / 10.00 output per 1M tokens"))
        #expect(llm.cost.evidence.contains("800 input + 200 output tokens per call, the mean of 1440 sampled answers"))
        #expect(!llm.cost.evidence.contains("compute: engine"))

        let local = Advisor.measure(
            Self.input(model: "gbdt", tokens: false), settings: AdvisorSettings(), pricing: pricing)
        #expect(local.cost.tokens == nil)
        #expect(local.cost.evidence.contains("compute: engine"))
        #expect(local.cost.costs.allSatisfy { $0.coreHoursPerMonth > 0 })
    }

    @Test("an upstream model without real-time answers: async answers bound its latency, never a zero engine time")
    func upstreamLatency() {
        var input = Self.input(model: "llm", tokens: true)
        input.compute = .upstream(model: "llm", batchSize: 64)
        let async = SourceLatency(source: "async", count: 40, p50: 2, p95: 6, p99: 9, p999: 12)
        input.latency = [async]
        let pricing = Pricing(models: ["llm": Self.price])
        let bounded = Advisor.measure(input, settings: AdvisorSettings(), pricing: pricing).latency
        #expect(bounded.realtimeP99Seconds == 9)
        #expect(bounded.realtimeP99Basis.contains("the p99 of 40 async answers"), "\(bounded.realtimeP99Basis)")
        // The what-if replay of real time says the same.
        let axes = Advisor.measure(input, settings: AdvisorSettings(), pricing: pricing)
        let replay = WhatIf.replay(
            input, axes: axes, scenario: WhatIfScenario(pattern: .realtime), settings: AdvisorSettings(),
            pricing: pricing)
        #expect(replay.latencyP99 == 9 && replay.latencyP50 == 9)
        #expect(replay.notes.contains { $0.contains("the p99 of 40 async answers") }, "\(replay.notes)")
        input.latency = []
        let none = Advisor.measure(input, settings: AdvisorSettings(), pricing: pricing).latency
        #expect(none.realtimeP99Basis.hasPrefix("not measured"), "\(none.realtimeP99Basis)")
        // Real-time answers, when there are some, are measured end to end as for any model.
        input.latency = [async, SourceLatency(source: "realtime", count: 30, p50: 1, p95: 2, p99: 3, p999: 4)]
        let measured = Advisor.measure(input, settings: AdvisorSettings(), pricing: pricing).latency
        #expect(measured.realtimeP99Seconds == 3)
        #expect(measured.realtimeP99Basis.hasPrefix("measured end to end over 30 real-time answers"))
        // A local model without real-time answers keeps its engine time.
        var local = Self.input(model: "gbdt", tokens: false)
        local.latency = [async]
        let engine = Advisor.measure(local, settings: AdvisorSettings(), pricing: pricing).latency
        #expect(engine.realtimeP99Seconds == 0.01 && engine.realtimeP99Basis.hasPrefix("engine time at batch 1"))
    }

    @Test("the what-if replay prices its scenarios by tokens too")
    func whatIfByTokens() {
        let pricing = Self.bare(models: ["llm": Self.price])
        let input = Self.input(model: "llm", tokens: true)
        let axes = Advisor.measure(input, settings: AdvisorSettings(), pricing: pricing)
        let realtime = WhatIf.replay(
            input, axes: axes, scenario: WhatIfScenario(pattern: .realtime), settings: AdvisorSettings(),
            pricing: pricing)
        #expect(Self.near(realtime.monthlyCost, 1_440 * 30.4 * 0.004))
        let batch = WhatIf.replay(
            input, axes: axes, scenario: WhatIfScenario(pattern: .batch, everySeconds: 21_600),
            settings: AdvisorSettings(), pricing: pricing)
        // Four runs a day over the rows a run computes, at half price, plus the share of calls missed at full price.
        let rows = axes.cost.batchRowsPerRun
        let missed = 1 - (batch.hitRate ?? 0)
        #expect(Self.near(batch.monthlyCost, rows * 4 * 30.4 * 0.002 + missed * 1_440 * 30.4 * 0.004))
    }
}
