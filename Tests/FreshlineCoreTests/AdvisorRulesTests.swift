import Testing

@testable import FreshlineCore

/// The advisor's pure parts: decision comparison, the freshness curve from samples, the rules in order, the
/// cost model, the what-if replay and the spreadsheet path.
@Suite("Advisor rules")
struct AdvisorRulesTests {
    // MARK: - Decisions

    @Test("labels flip, rankings lose overlap, scores change beyond the tolerance")
    func decisionChange() {
        #expect(DecisionValue.label("1").change(from: .label("1"), topK: 10, tolerance: 0.1).change == 0)
        #expect(DecisionValue.label("1").change(from: .label("0"), topK: 10, tolerance: 0.1).change == 1)
        let ranking = DecisionValue.ranking(["a", "b", "c", "d"])
        #expect(ranking.change(from: .ranking(["b", "a", "x", "y"]), topK: 4, tolerance: 0).change == 0.5)
        #expect(ranking.change(from: .ranking(["d", "c", "b", "a"]), topK: 4, tolerance: 0).change == 0)
        #expect(ranking.change(from: .ranking(["a", "x"]), topK: 2, tolerance: 0).change == 0.5)
        #expect(ranking.change(from: .ranking(["x", "y"]), topK: 2, tolerance: 0).change == 1)
        let small = DecisionValue.score([1.05]).change(from: .score([1.0]), topK: 1, tolerance: 0.1)
        #expect(small.change == 0)
        #expect(abs((small.relativeError ?? 0) - 0.05) < 1e-12)
        #expect(DecisionValue.score([1.5]).change(from: .score([1.0]), topK: 1, tolerance: 0.1).change == 1)
        #expect(DecisionValue.score([1, 2]).change(from: .label("1"), topK: 1, tolerance: 0.1).change == 1)
    }

    @Test("decisions survive their text form")
    func decisionEncoding() {
        for value in [
            DecisionValue.label("fraud"), .label(""), .ranking(["1", "2", "3"]), .ranking([]),
            .score([0.25, -3, 1e-9]),
        ] {
            #expect(DecisionValue(encoded: value.encoded) == value)
        }
        #expect(DecisionValue(encoded: "Snot-a-number") == nil)
        #expect(DecisionValue(encoded: "") == nil)
    }

    // MARK: - Freshness

    static func sample(
        key: String?, at: Double, decision: DecisionValue? = nil, inputs: Bool = true, rate: Double = 1,
        hashes: [String: UInt64] = [:], outcome: String = "ok", source: PredictionSource? = .realtime,
        latency: Double = 0.002
    ) -> RequestLogSample {
        RequestLogSample(
            feature: "f", keyHash: key.map(KeyHash.hex), hasRequestInputs: inputs, source: source, outcome: outcome,
            latencySeconds: latency, ageSeconds: 0, at: at, sampleRate: rate, computedAt: at, decision: decision,
            inputHashes: hashes)
    }

    @Test("answers are paired per key by age bucket; the reference age decides rule 2")
    func freshnessCurve() {
        var settings = AdvisorSettings()
        settings.minPairs = 5
        // 10 keys answered every 10 minutes for 3 hours; the label flips every hour.
        var samples: [RequestLogSample] = []
        for minute in stride(from: 0, to: 180, by: 10) {
            for k in 0..<10 {
                let label = (minute / 60) % 2 == 0 ? "a" : "b"
                samples.append(Self.sample(key: "k\(k)", at: Double(minute * 60), decision: .label(label)))
            }
        }
        samples.sort { $0.at < $1.at }
        let f = Advisor.measureFreshness(
            samples, declared: 86_400, referenceAge: 3_600, decision: DecisionSpec(), settings: settings,
            window: "test")
        let byAge = Dictionary(uniqueKeysWithValues: f.points.map { ($0.ageSeconds, $0) })
        // Gaps of 10 minutes fall in the 5m bucket: one in six crosses an hour boundary.
        #expect(abs((byAge[300]?.changeRate ?? -1) - 2.0 / 17.0) < 0.02)
        // Gaps of exactly one hour always cross a boundary.
        #expect(byAge[3_600]?.changeRate == 1)
        #expect(f.sensitive && f.basis == "measured")
        #expect(f.note?.contains("declared max_staleness 1d") == true)
        #expect(f.holdsForSeconds == nil || (f.holdsForSeconds ?? 0) < 3_600)
    }

    @Test("without enough pairs the declaration decides, and the report says it was not measured")
    func freshnessFallsBackToTheDeclaration() {
        let samples = [Self.sample(key: "a", at: 0, decision: .label("x"))]
        let declared = Advisor.measureFreshness(
            samples, declared: 60, referenceAge: 3_600, decision: DecisionSpec(), settings: AdvisorSettings(),
            window: "test")
        #expect(declared.sensitive && declared.basis == "declared")
        let none = Advisor.measureFreshness(
            samples, declared: nil, referenceAge: 3_600, decision: DecisionSpec(), settings: AdvisorSettings(),
            window: "test")
        #expect(!none.sensitive && none.basis == "none")
        #expect(none.note?.contains("not enough answer pairs") == true)
    }

    // MARK: - Cardinality and volume

    @Test("keys sampled at 10% stand for ten times as many requests and keys")
    func sampledVolume() {
        // 100 sampled requests over 1,000 s at a 10% key sampling rate: 1,000 requests, 8.64e4 a day × 10.
        var samples: [RequestLogSample] = []
        for i in 0..<100 { samples.append(Self.sample(key: "k\(i % 20)", at: Double(i * 10), rate: 0.1)) }
        let c = Advisor.measureCardinality(samples, snapshotKeys: nil, settings: AdvisorSettings(), window: "")
        #expect(abs(c.requests - 1_000) < 1e-6)
        #expect(abs(c.distinctKeys - 200) < 1e-6)
        #expect(c.predictableShare == 1)
        #expect(!c.unbounded)
        let input = AdvisorInput(
            feature: FeatureSpec(name: "f", model: "m", location: SourceLocation(file: "", line: 0, keyPath: "")),
            samples: samples, now: 1_000,
            compute: ComputeCost(
                realtimeSecondsPerPrediction: 1e-3, batchSecondsPerPrediction: 1e-4, batchSize: 64, basis: ""),
            latency: [])
        let cost = Advisor.measureCost(
            samples, cardinality: c, input: input, settings: AdvisorSettings(), pricing: Pricing(), window: "")
        #expect(abs(cost.callsPerDay - 86_400) < 1)
        #expect(cost.peakToAverage >= 1 && cost.peakToAverage < 1.5)
    }

    // MARK: - Rules

    static func axes(
        unbounded: Bool = false, sensitive: Bool = false, calls: Double = 1_000, p99: Double = 0.01,
        budget: Double = 0.1, stable: [String] = [], changing: [String] = []
    ) -> FeatureAxes {
        // A 50 ms model: real time needs more than the two always-on instances from about 2.1M calls a day.
        let volume = CostModel.Volume(
            callsPerDay: calls, peakToAverage: 2, realtimeSecondsPerPrediction: 0.05,
            batchSecondsPerPrediction: 0.005, batchRowsPerRun: 10_000, runsPerDay: 1, coverage: 1)
        let costs = CostModel.costs(volume, pricing: Pricing(), settings: AdvisorSettings())
        var cost = CostAxis(
            callsPerDay: calls, peakToAverage: 2, peakBucketSeconds: 3_600, realtimeSecondsPerPrediction: 0.05,
            batchSecondsPerPrediction: 0.005, batchSize: 64, batchRowsPerRun: 10_000, runsPerDay: 1, costs: costs,
            evidence: "")
        cost.batchPaysAtCallsPerDay = CostModel.batchPaysAt(volume, pricing: Pricing(), settings: AdvisorSettings())
            .map { $0 * calls }
        let stability =
            stable.map { InputStability(input: $0, unchangedShare: 1, pairs: 50) }
            + changing.map { InputStability(input: $0, unchangedShare: 0.1, pairs: 50) }
        return FeatureAxes(
            freshness: FreshnessAxis(
                points: [
                    FreshnessPoint(
                        ageSeconds: 3_600, pairs: 50, changeRate: sensitive ? 0.3 : 0, meanRelativeError: nil)
                ],
                referenceAgeSeconds: 3_600, declaredMaxStalenessSeconds: nil, sensitive: sensitive, basis: "measured",
                holdsForSeconds: sensitive ? nil : 3_600, inputStability: stability, note: nil, evidence: ""),
            cardinality: CardinalityAxis(
                requests: calls, distinctKeys: 100, distinctKeysPerDay: 100, requestInputsShare: unbounded ? 1 : 0,
                predictableShare: unbounded ? 0 : 1, predictableBasis: "", unbounded: unbounded, evidence: ""),
            cost: cost,
            latency: latency(p99: p99, budget: budget),
            failure: FailureAxis(
                declared: "", errorRate: 0, timeoutRate: 0, shedRate: 0, fallbackRate: 0, evidence: ""))
    }

    static func latency(p99: Double, budget: Double) -> LatencyAxis {
        var axis = LatencyAxis(
            sources: [], budgetSeconds: budget, userBlocking: true, realtimeP99Seconds: p99, realtimeP99Basis: "",
            overBudget: p99 > budget, evidence: "")
        axis.modelP99Seconds = p99
        axis.modelP99Basis = "model time of the calls behind 100 sampled real-time answers (queueing excluded)"
        return axis
    }

    @Test("the rules apply in order and the first match wins")
    func rulesInOrder() {
        let s = AdvisorSettings()
        // Unbounded input wins over everything else; a slow model goes async.
        #expect(Advisor.decide(Self.axes(unbounded: true, sensitive: true, calls: 1e7), settings: s).rule == 1)
        let slow = Advisor.decide(Self.axes(unbounded: true, p99: 2), settings: s)
        #expect(slow.rule == 1 && slow.recommended == .async)
        // Staleness beats volume.
        let fresh = Advisor.decide(Self.axes(sensitive: true, calls: 1e7), settings: s)
        #expect(fresh.rule == 2 && fresh.recommended == .realtime)
        #expect(fresh.wouldChange.contains { $0.contains("rule 3 applies (batch)") })
        let hybrid = Advisor.decide(Self.axes(sensitive: true, stable: ["embedding"], changing: ["cart"]), settings: s)
        #expect(hybrid.recommended == .hybrid && hybrid.precompute == ["embedding"] && hybrid.requestTime == ["cart"])
        // Volume or slowness → batch; otherwise real time, with the volume that would change it.
        #expect(Advisor.decide(Self.axes(calls: 1e7), settings: s).recommended == .batch)
        #expect(Advisor.decide(Self.axes(calls: 10, p99: 0.5, budget: 0.1), settings: s).rule == 3)
        let quiet = Advisor.decide(Self.axes(calls: 1_000), settings: s)
        #expect(quiet.rule == 4 && quiet.recommended == .realtime)
        // Batch pays once real time needs five instances (2× the 150 a month of batch): about 4.2M calls a day.
        #expect(
            quiet.wouldChange.contains { $0.contains("× volume (4.") && $0.contains("rule 3 applies (batch)") },
            "\(quiet.wouldChange)")
    }

    @Test("thresholds are configurable and change the verdict")
    func thresholds() {
        var s = AdvisorSettings()
        // 3M calls a day: three instances (210 a month) against batch's 150: 1.4×, 60 saved.
        #expect(Advisor.decide(Self.axes(calls: 3e6), settings: s).rule == 4)
        s.minCostRatio = 1.2
        #expect(Advisor.decide(Self.axes(calls: 3e6), settings: s).rule == 4)
        s.minMonthlySaving = 50
        #expect(Advisor.decide(Self.axes(calls: 3e6), settings: s).rule == 3)
        s.minCallsPerDay = 5e6
        #expect(Advisor.decide(Self.axes(calls: 3e6), settings: s).rule == 4)
    }

    // MARK: - What-if

    @Test("the change rate at an age interpolates the measured curve")
    func interpolation() {
        let points = [
            FreshnessPoint(ageSeconds: 60, pairs: 10, changeRate: 0.1, meanRelativeError: nil),
            FreshnessPoint(ageSeconds: 3_600, pairs: 10, changeRate: 0.5, meanRelativeError: nil),
        ]
        #expect(WhatIf.changeRate(at: 30, points) == 0.05)
        #expect(abs(WhatIf.changeRate(at: 1_830, points) - 0.3) < 1e-9)
        #expect(WhatIf.changeRate(at: 86_400, points) == 0.5)
        #expect(WhatIf.changeRate(at: 100, []) == 0)
    }

    @Test("scenarios parse from text")
    func scenarios() {
        #expect(WhatIfScenario(parsing: "batch:6h") == WhatIfScenario(pattern: .batch, everySeconds: 21_600))
        #expect(WhatIfScenario(parsing: "batch") == WhatIfScenario(pattern: .batch, everySeconds: 86_400))
        #expect(WhatIfScenario(parsing: "async") == WhatIfScenario(pattern: .async))
        #expect(WhatIfScenario(parsing: "batch:soon") == nil)
        #expect(WhatIfScenario(parsing: "nightly") == nil)
    }

    // MARK: - The spreadsheet

    static let seedSheet = """
        feature,pattern,unbounded_input,decision_change,max_staleness,refresh,calls_per_day,ms_per_prediction,p99_ms,latency_budget_ms,user_blocking,failure_mode,stable_inputs,request_inputs
        fraud_check,realtime,yes,,1m,,2000000,4,12,50,yes,fail closed,,
        nightly_report,realtime,no,0%,,24h,5000000,200,600,1000,no,stale acceptable,,
        live_recommendation,realtime,no,35%,,1h,800000,8,25,100,yes,default value,candidates;user_embedding,cart;last_clicks
        settings_page_tips,realtime,no,1%,,24h,500,3,9,200,yes,default value,,
        """

    @Test("the seed's spreadsheet gets the seed's verdicts")
    func seedSheetVerdicts() throws {
        let report = try AdviceSheet.advise(
            csv: Self.seedSheet, file: "features.csv", settings: AdvisorSettings(), pricing: Pricing(), now: 0)
        let verdicts = Dictionary(uniqueKeysWithValues: report.features.map { ($0.feature, $0.verdict) })
        #expect(verdicts["fraud_check"]?.rule == 1 && verdicts["fraud_check"]?.recommended == .realtime)
        #expect(verdicts["nightly_report"]?.rule == 3 && verdicts["nightly_report"]?.recommended == .batch)
        #expect(verdicts["live_recommendation"]?.recommended == .hybrid)
        #expect(verdicts["live_recommendation"]?.precompute == ["candidates", "user_embedding"])
        #expect(verdicts["settings_page_tips"]?.rule == 4)
        #expect(report.features.first?.origin == "features.csv:2")
    }

    @Test("a bad sheet is refused with its file and line")
    func sheetErrors() {
        func problem(_ csv: String) -> String? {
            do {
                _ = try AdviceSheet.advise(
                    csv: csv, file: "s.csv", settings: AdvisorSettings(), pricing: Pricing(), now: 0)
                return nil
            } catch { return error.description }
        }
        #expect(
            problem("feature,calls_per_day,ms_per_prediction\nx,lots,3\n")
                == "s.csv:2: calls_per_day: 'lots' is not a number ≥ 0")
        #expect(problem("feature,ms_per_prediction\nx,3\n") == "s.csv:1: the column 'calls_per_day' is required")
        #expect(
            problem("feature,calls_per_day,ms_per_prediction,colour\nx,1,1,red\n")?.hasPrefix(
                "s.csv:1: unknown column 'colour'") == true)
        #expect(
            problem("feature,calls_per_day,ms_per_prediction,pattern\n\nx,1,1,nightly\n")
                == "s.csv:3: pattern: 'nightly' is not one of realtime, async, batch, hybrid")
        #expect(
            problem("feature,calls_per_day,ms_per_prediction,decision_change\nx,1,1,140%\n")
                == "s.csv:2: decision_change: '140%' is more than 100%")
        #expect(
            problem("feature,calls_per_day,ms_per_prediction\n\"x,1,1\n") == "s.csv:2: a quoted field is not closed")
        #expect(problem("") == "s.csv:1: the sheet is empty")
        #expect(problem("feature,calls_per_day,ms_per_prediction\n\"a,b\",\"1_000\",2\n") == nil)
    }

    // MARK: - Regressions from the review of unseen traffic

    @Test("hot keys keep answers at every age: the curve reaches an hour, not just the last 64 answers")
    func hotKeysKeepOldAnswers() {
        var settings = AdvisorSettings()
        settings.minPairs = 5
        var samples: [RequestLogSample] = []
        // 5 keys answered every 6 s for 3 h; the label flips every hour.
        for t in stride(from: 0, to: 3 * 3_600, by: 6) {
            for k in 0..<5 {
                samples.append(Self.sample(key: "k\(k)", at: Double(t), decision: .label("\((t / 3_600) % 2)")))
            }
        }
        let f = Advisor.measureFreshness(
            samples, declared: nil, referenceAge: 3_600, decision: DecisionSpec(), settings: settings, window: "")
        let hour = f.points.first { $0.ageSeconds == 3_600 }
        #expect((hour?.changeRate ?? 0) > 0.9, "\(f.points)")
        #expect(f.sensitive && f.basis == "measured")
    }

    @Test("configured defaults and fallbacks are not the model's decisions")
    func defaultsAreNotDecisions() {
        var samples: [RequestLogSample] = []
        for t in 0..<100 {
            let source: PredictionSource = t % 2 == 0 ? .default : .realtime
            let label = t % 2 == 0 ? "0" : "1"
            samples.append(Self.sample(key: "k", at: Double(t * 120), decision: .label(label), source: source))
        }
        let f = Advisor.measureFreshness(
            samples, declared: nil, referenceAge: 3_600, decision: DecisionSpec(), settings: AdvisorSettings(),
            window: "")
        #expect(f.points.allSatisfy { $0.changeRate == 0 }, "\(f.points)")
    }

    @Test("without freshness evidence, high volume does not make a batch verdict")
    func noEvidenceNoBatch() {
        var axes = Self.axes(calls: 1e7)
        axes.freshness.basis = "none"
        axes.freshness.points = []
        axes.freshness.holdsForSeconds = nil
        let verdict = Advisor.decide(axes, settings: AdvisorSettings())
        #expect(verdict.rule == 4 && verdict.recommended == .realtime)
        #expect(verdict.reason.contains("not measured"))
    }

    @Test("a batch feature whose callers send only keys is told to refresh more often, not to go real time")
    func keyOnlyCallersStayBatch() {
        var axes = Self.axes(sensitive: true)
        axes.freshness.holdsForSeconds = 900
        let verdict = Advisor.decide(axes, settings: AdvisorSettings(), current: .batch)
        #expect(verdict.rule == 2 && verdict.recommended == .batch)
        #expect(verdict.reason.contains("every 15m"))
    }

    @Test("a handful of requests gives no verdict")
    func tooLittleTraffic() {
        let feature = FeatureSpec(name: "f", model: "m", location: SourceLocation(file: "", line: 0, keyPath: ""))
        let input = AdvisorInput(
            feature: feature, samples: [Self.sample(key: "a", at: 0, decision: .label("1"))], now: 10,
            compute: ComputeCost(
                realtimeSecondsPerPrediction: 1e-4, batchSecondsPerPrediction: 1e-5, batchSize: 8, basis: ""),
            latency: [])
        let advice = Advisor.advise(input, settings: AdvisorSettings(), pricing: Pricing())
        #expect(advice.verdict.rule == 0 && advice.verdict.label == "no traffic")
        #expect(advice.verdict.reason.contains("only 1 sampled requests"))
    }

    @Test("scores near zero are compared against the typical magnitude")
    func scoresNearZero() {
        let near = DecisionValue.score([0.02]).change(from: .score([0.01]), topK: 1, tolerance: 0.1, scale: 1)
        #expect(near.change == 0)
        #expect(DecisionValue.score([0.02]).change(from: .score([0.01]), topK: 1, tolerance: 0.1).change == 1)
    }

    @Test("huge figures format without overflowing")
    func hugeFigures() {
        #expect(CostModel.money(1e22).isEmpty == false)
        #expect(CostModel.format(1e13) == "10T")
        #expect(CostModel.money(2.5e9) == "2.5G")
    }

    @Test("the sheet refuses decimal commas and duplicate features")
    func sheetAmbiguities() {
        func problem(_ csv: String) -> String? {
            do {
                _ = try AdviceSheet.advise(
                    csv: csv, file: "s.csv", settings: AdvisorSettings(), pricing: Pricing(), now: 0)
                return nil
            } catch { return error.description }
        }
        #expect(
            problem("feature,calls_per_day,ms_per_prediction\nx,100,\"2,5\"\n")?.contains("'2,5' is not a number")
                == true)
        #expect(
            problem("feature,calls_per_day,ms_per_prediction\nx,1,1\nx,2,2\n")
                == "s.csv:3: feature 'x' is already on line 2")
    }
}
