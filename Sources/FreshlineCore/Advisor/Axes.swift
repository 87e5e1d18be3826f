/// The five axes of one feature as the advisor measured (or was told) them. Every figure carries the evidence
/// behind it: the window, the sample size and how it was computed.

/// Axis 1: does a stale answer change the decision?
public struct FreshnessAxis: Sendable, Equatable, Codable {
    /// The decision-change rate per age (only ages with enough pairs).
    public var points: [FreshnessPoint]
    /// The age rule 2 asks about: the batch interval, or the configured reference age.
    public var referenceAgeSeconds: Double
    /// The feature's declared `max_staleness`, if any.
    public var declaredMaxStalenessSeconds: Double?
    /// Whether staleness at the reference age changes decisions: measured when the points decide it, else
    /// from the declaration, else `false`.
    public var sensitive: Bool
    /// `measured`, `declared` or `none`.
    public var basis: String
    /// The oldest age whose decisions still held (change rate under the limit, and every younger age too).
    public var holdsForSeconds: Double?
    /// Per request input: how often it was unchanged for the same key at the reference age.
    public var inputStability: [InputStability]
    /// Where measurement and declaration disagree, what the report says about it.
    public var note: String?
    /// How it was computed.
    public var evidence: String

    public init(
        points: [FreshnessPoint], referenceAgeSeconds: Double, declaredMaxStalenessSeconds: Double?, sensitive: Bool,
        basis: String, holdsForSeconds: Double?, inputStability: [InputStability], note: String?, evidence: String
    ) {
        self.points = points
        self.referenceAgeSeconds = referenceAgeSeconds
        self.declaredMaxStalenessSeconds = declaredMaxStalenessSeconds
        self.sensitive = sensitive
        self.basis = basis
        self.holdsForSeconds = holdsForSeconds
        self.inputStability = inputStability
        self.note = note
        self.evidence = evidence
    }
}

/// The decision-change rate at one age.
public struct FreshnessPoint: Sendable, Equatable, Codable {
    /// The age bucket's lower bound (pairs whose ages fall between it and the next bucket).
    public var ageSeconds: Double
    /// Answer pairs compared.
    public var pairs: Int
    /// Mean change: label flips, 1 − top-k overlap, or share of scores beyond the tolerance.
    public var changeRate: Double
    /// Mean relative error, for scores.
    public var meanRelativeError: Double?

    public init(ageSeconds: Double, pairs: Int, changeRate: Double, meanRelativeError: Double?) {
        self.ageSeconds = ageSeconds
        self.pairs = pairs
        self.changeRate = changeRate
        self.meanRelativeError = meanRelativeError
    }
}

/// How stable one request input is per key.
public struct InputStability: Sendable, Equatable, Codable {
    public var input: String
    /// Share of pairs at the reference age in which the input's value was unchanged.
    public var unchangedShare: Double
    public var pairs: Int

    public init(input: String, unchangedShare: Double, pairs: Int) {
        self.input = input
        self.unchangedShare = unchangedShare
        self.pairs = pairs
    }
}

/// Axis 2: can the inputs be enumerated in advance?
public struct CardinalityAxis: Sendable, Equatable, Codable {
    /// Requests the figures stand for (sampled requests weighted by their sampling rate).
    public var requests: Double
    /// Distinct keys among the sampled requests, scaled by the key sampling rate.
    public var distinctKeys: Double
    /// Distinct keys per day.
    public var distinctKeysPerDay: Double
    /// Share of requests carrying inputs beyond the key (free text, novel transactions, session signals).
    public var requestInputsShare: Double
    /// Share of requested keys a batch would have covered; `nil` when not measurable.
    public var predictableShare: Double?
    /// What "covered" was measured against: the published snapshot's keys, or keys seen before.
    public var predictableBasis: String
    /// Rule 1's test: many requests carry their own inputs and few keys were known in advance.
    public var unbounded: Bool
    /// Whether the keys a batch would cover are known (a published snapshot or a declared entity set).
    public var keySetKnown = false
    public var evidence: String

    public init(
        requests: Double, distinctKeys: Double, distinctKeysPerDay: Double, requestInputsShare: Double,
        predictableShare: Double?, predictableBasis: String, unbounded: Bool, evidence: String
    ) {
        self.requests = requests
        self.distinctKeys = distinctKeys
        self.distinctKeysPerDay = distinctKeysPerDay
        self.requestInputsShare = requestInputsShare
        self.predictableShare = predictableShare
        self.predictableBasis = predictableBasis
        self.unbounded = unbounded
        self.evidence = evidence
    }
}

/// Axis 3: cost per inference × volume.
public struct CostAxis: Sendable, Equatable, Codable {
    public var callsPerDay: Double
    /// Busiest interval over the mean interval.
    public var peakToAverage: Double
    /// The interval used for the peak.
    public var peakBucketSeconds: Double
    /// Compute seconds per prediction at batch 1 (real time).
    public var realtimeSecondsPerPrediction: Double
    /// Compute seconds per prediction at the batch runner's batch size.
    public var batchSecondsPerPrediction: Double
    public var batchSize: Int
    /// Rows a batch run computes (the entity source, or the distinct keys of a day), read or not.
    public var batchRowsPerRun: Double
    public var runsPerDay: Double
    /// Monthly cost of each pattern.
    public var costs: [PatternCost]
    public var evidence: String
    /// For a feature priced by tokens (its model has `pricing.models` prices): the tokens and prices the costs
    /// come from; `nil` when they come from engine time.
    public var tokens: CostModel.TokenVolume?
    /// The calls a day at which rule 3's cost branch would hold (batch cheaper by the ratio and the saving), when
    /// it does within 10⁶× today's.
    public var batchPaysAtCallsPerDay: Double?
    /// The monthly saving of batch over real time (negative: batch costs more).
    public var batchSaving: Double { (monthly(.realtime) ?? 0) - (monthly(.batch) ?? 0) }

    public init(
        callsPerDay: Double, peakToAverage: Double, peakBucketSeconds: Double, realtimeSecondsPerPrediction: Double,
        batchSecondsPerPrediction: Double, batchSize: Int, batchRowsPerRun: Double, runsPerDay: Double,
        costs: [PatternCost], evidence: String
    ) {
        self.callsPerDay = callsPerDay
        self.peakToAverage = peakToAverage
        self.peakBucketSeconds = peakBucketSeconds
        self.realtimeSecondsPerPrediction = realtimeSecondsPerPrediction
        self.batchSecondsPerPrediction = batchSecondsPerPrediction
        self.batchSize = batchSize
        self.batchRowsPerRun = batchRowsPerRun
        self.runsPerDay = runsPerDay
        self.costs = costs
        self.evidence = evidence
    }

    /// The monthly cost of one pattern.
    public func monthly(_ pattern: ServingPattern) -> Double? { costs.first { $0.pattern == pattern }?.monthly }
}

/// What one pattern would cost a month: the sum of its terms.
public struct PatternCost: Sendable, Equatable, Codable {
    public var pattern: ServingPattern
    public var monthly: Double
    /// Core-hours a month the pattern keeps on or consumes (0 for tokens).
    public var coreHoursPerMonth: Double
    /// How it was computed: the terms in one sentence.
    public var basis: String
    /// The terms, each with its evidence.
    public var terms: [CostTerm] = []

    public init(pattern: ServingPattern, monthly: Double, coreHoursPerMonth: Double, basis: String) {
        self.pattern = pattern
        self.monthly = monthly
        self.coreHoursPerMonth = coreHoursPerMonth
        self.basis = basis
    }

    /// The sum of `terms`; `note` leads the basis.
    public init(pattern: ServingPattern, terms: [CostTerm], note: String? = nil) {
        let listed = terms.map { "\($0.name) \(CostModel.money($0.monthly)) (\($0.basis))" }.joined(separator: "; ")
        self.init(
            pattern: pattern, monthly: terms.reduce(0) { $0 + $1.monthly },
            coreHoursPerMonth: terms.reduce(0) { $0 + $1.coreHours },
            basis: note.map { "\($0): \(listed)" } ?? listed)
        self.terms = terms
    }

    private enum CodingKeys: String, CodingKey { case pattern, monthly, coreHoursPerMonth, basis, terms }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        pattern = try c.decode(ServingPattern.self, forKey: .pattern)
        monthly = try c.decode(Double.self, forKey: .monthly)
        coreHoursPerMonth = try c.decode(Double.self, forKey: .coreHoursPerMonth)
        basis = try c.decode(String.self, forKey: .basis)
        terms = try c.decodeIfPresent([CostTerm].self, forKey: .terms) ?? []
    }
}

/// One term of a pattern's monthly cost: always-on instances, batch runs, storage, operations, tokens.
public struct CostTerm: Sendable, Equatable, Codable {
    public var name: String
    public var monthly: Double
    public var coreHours: Double
    /// The numbers it comes from, and where each was measured.
    public var basis: String

    public init(name: String, monthly: Double, coreHours: Double, basis: String) {
        self.name = name
        self.monthly = monthly
        self.coreHours = coreHours
        self.basis = basis
    }
}

/// Axis 4: tail latency against the budget.
public struct LatencyAxis: Sendable, Equatable, Codable {
    public var sources: [SourceLatency]
    public var budgetSeconds: Double
    public var userBlocking: Bool
    /// The real-time path's p99: measured end to end when real-time traffic exists, else the engine's batch-1
    /// time.
    public var realtimeP99Seconds: Double
    public var realtimeP99Basis: String
    /// The model's own p99: the calls behind real-time answers (queueing excluded) when recorded, else the engine's
    /// batch-1 time, else the end-to-end p99 as an upper bound. Rules 1 and 3 use this.
    public var modelP99Seconds: Double = 0
    public var modelP99Basis = ""
    /// Share of requests the real-time path timed out or shed.
    public var refusedShare: Double = 0
    /// A material share refused with a model too slow for the budget: a latency case even without answers.
    public var failsBudget = false
    /// Over the budget on a user-blocking path by model time, or failing it (`failsBudget`).
    public var overBudget: Bool
    public var evidence: String
    /// Load tests of the window (`freshline load`), newest first: their own rows, never in `sources`.
    public var loadTests: [LoadTestResult] = []
    /// The highest replay speed that held the budget without shedding (LoadTest.swift); `nil` without load tests.
    public var loadHeadroom: LoadHeadroom?

    public init(
        sources: [SourceLatency], budgetSeconds: Double, userBlocking: Bool, realtimeP99Seconds: Double,
        realtimeP99Basis: String, overBudget: Bool, evidence: String
    ) {
        self.sources = sources
        self.budgetSeconds = budgetSeconds
        self.userBlocking = userBlocking
        self.realtimeP99Seconds = realtimeP99Seconds
        self.realtimeP99Basis = realtimeP99Basis
        self.overBudget = overBudget
        self.evidence = evidence
    }
}

/// Latency percentiles of the answers from one source (seconds).
public struct SourceLatency: Sendable, Equatable, Codable {
    public var source: String
    public var count: Int
    public var p50: Double
    public var p95: Double
    public var p99: Double
    public var p999: Double

    public init(source: String, count: Int, p50: Double, p95: Double, p99: Double, p999: Double) {
        self.source = source
        self.count = count
        self.p50 = p50
        self.p95 = p95
        self.p99 = p99
        self.p999 = p999
    }
}

/// Axis 5: what happens when it fails.
public struct FailureAxis: Sendable, Equatable, Codable {
    /// The declared policy in words (`fail closed`, `default value`, `stale acceptable`, …).
    public var declared: String
    public var errorRate: Double
    public var timeoutRate: Double
    public var shedRate: Double
    /// Answers from a fallback rung or the default.
    public var fallbackRate: Double
    /// Requests refused as the caller's mistake (400).
    public var rejectedRate: Double = 0
    /// Keys a snapshot lacked (404 `unknown_key`) or held too old (503 `stale`).
    public var missRate: Double = 0
    public var evidence: String

    /// Requests that got no answer on the server's side: errors, timeouts, shed, missing or stale keys.
    public var unansweredRate: Double { errorRate + timeoutRate + shedRate + missRate }

    public init(
        declared: String, errorRate: Double, timeoutRate: Double, shedRate: Double, fallbackRate: Double,
        evidence: String
    ) {
        self.declared = declared
        self.errorRate = errorRate
        self.timeoutRate = timeoutRate
        self.shedRate = shedRate
        self.fallbackRate = fallbackRate
        self.evidence = evidence
    }
}

/// The five axes of one feature.
public struct FeatureAxes: Sendable, Equatable, Codable {
    public var freshness: FreshnessAxis
    public var cardinality: CardinalityAxis
    public var cost: CostAxis
    public var latency: LatencyAxis
    public var failure: FailureAxis

    public init(
        freshness: FreshnessAxis, cardinality: CardinalityAxis, cost: CostAxis, latency: LatencyAxis,
        failure: FailureAxis
    ) {
        self.freshness = freshness
        self.cardinality = cardinality
        self.cost = cost
        self.latency = latency
        self.failure = failure
    }
}

/// The advisor's answer for one feature.
public struct Verdict: Sendable, Equatable, Codable {
    /// The first rule that matched (1–4).
    public var rule: Int
    public var recommended: ServingPattern
    /// The numbers that decided it, in a sentence.
    public var reason: String
    /// What would change the verdict ("at 3.2× volume, rule 3 applies").
    public var wouldChange: [String]
    /// For a hybrid: the inputs to precompute per key, and those that stay request-time.
    public var precompute: [String]
    public var requestTime: [String]
    /// What the rules could not measure, and what stood in for it.
    public var notMeasured: [String] = []

    /// `rule 3 → batch`, or `no traffic` (rule 0: nothing measured, the pattern stays).
    public var label: String { rule == 0 ? "no traffic" : "rule \(rule) → \(recommended.rawValue)" }

    public init(
        rule: Int, recommended: ServingPattern, reason: String, wouldChange: [String], precompute: [String] = [],
        requestTime: [String] = []
    ) {
        self.rule = rule
        self.recommended = recommended
        self.reason = reason
        self.wouldChange = wouldChange
        self.precompute = precompute
        self.requestTime = requestTime
    }
}

/// One feature's advice: what it is, the axes, the verdict and the what-if replays.
public struct FeatureAdvice: Sendable, Equatable, Codable {
    public var feature: String
    public var current: ServingPattern
    public var axes: FeatureAxes
    public var verdict: Verdict
    public var whatIf: [WhatIfResult]
    /// Where the axes came from: `live traffic` or the sheet's file and line.
    public var origin: String
    /// Inputs the feature already takes from other features' snapshots (`risk ← user_risk.probabilities`).
    public var composes: [String] = []
    /// Features that take inputs from this one's snapshot.
    public var feeds: [String] = []
    /// What the report found besides the verdict: queueing (a capacity problem), a model change inside the window.
    public var findings: [String] = []

    public init(
        feature: String, current: ServingPattern, axes: FeatureAxes, verdict: Verdict, whatIf: [WhatIfResult],
        origin: String
    ) {
        self.feature = feature
        self.current = current
        self.axes = axes
        self.verdict = verdict
        self.whatIf = whatIf
        self.origin = origin
    }
}

/// The advisor's report: every feature, the thresholds and prices used.
public struct AdviceReport: Sendable, Equatable, Codable {
    public var generatedAt: Double
    public var settings: AdvisorSettings
    public var pricing: Pricing
    public var features: [FeatureAdvice]

    public init(generatedAt: Double, settings: AdvisorSettings, pricing: Pricing, features: [FeatureAdvice]) {
        self.generatedAt = generatedAt
        self.settings = settings
        self.pricing = pricing
        self.features = features
    }
}
