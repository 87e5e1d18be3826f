/// The advisor's thresholds (manifest `advisor:` section). Every verdict shows the ones it used.
public struct AdvisorSettings: Sendable, Equatable, Codable {
    /// How far back the request log is read (default 7 days).
    public var windowSeconds: Double = 7 * 86_400
    /// Rule 1: the input is unbounded when at least this share of requests carries inputs beyond the key
    /// (default 0.5)…
    public var unboundedInputShare: Double = 0.5
    /// …and fewer than this share of requested keys could have been enumerated in advance (default 0.5).
    public var predictableShare: Double = 0.5
    /// Rule 1: unbounded input is served in real time when the model's p99 is under this, else async
    /// (default 500 ms).
    public var realtimeP99Limit: Double = 0.5
    /// Rule 2: staleness changes decisions when at least this share of decisions changes at the reference age
    /// (default 0.05).
    public var decisionChangeLimit: Double = 0.05
    /// Rule 2's question — "if the prediction was made this long ago" — for features without a schedule
    /// (default 1 h); a feature with a batch schedule uses its interval.
    public var referenceAgeSeconds: Double = 3_600
    /// Rule 3: batch pays for its pipeline from this many calls a day (default 100,000).
    public var minCallsPerDay: Double = 100_000
    /// Rule 3: … when real time costs at least this many times what batch does (default 2).
    public var minCostRatio: Double = 2
    /// Rule 3: … and batch saves at least this much a month, in the pricing's currency (default 100): a smaller
    /// saving does not pay for the attention moving a feature takes.
    public var minMonthlySaving: Double = 100
    /// Rule 3: a real-time path that times out or sheds at least this share of its requests, with a model too slow
    /// for the budget, is a latency case whether or not answers exist (default 0.05).
    public var failureShareLimit: Double = 0.05
    /// Real-time capacity is provisioned for the peak at this utilisation (default 0.6).
    public var targetUtilization: Double = 0.6
    /// A shadow-comparison age is reported when it has at least this many pairs (default 20).
    public var minPairs: Int = 20
    /// An input counts as stable per key (precomputable) when it is unchanged in at least this share of pairs at
    /// the reference age (default 0.95).
    public var stableInputShare: Double = 0.95
    /// The ages at which decisions are compared (default 1 m, 5 m, 15 m, 1 h, 6 h, 24 h, 7 d).
    public var ages: [Double] = [60, 300, 900, 3_600, 21_600, 86_400, 604_800]

    public init() {}

    private enum CodingKeys: String, CodingKey {
        case windowSeconds, unboundedInputShare, predictableShare, realtimeP99Limit, decisionChangeLimit
        case referenceAgeSeconds, minCallsPerDay, minCostRatio, minMonthlySaving, failureShareLimit
        case targetUtilization, minPairs, stableInputShare, ages
    }

    /// Reads what `encode(to:)` wrote; reports written before a threshold existed get its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func read<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        windowSeconds = try read(.windowSeconds, windowSeconds)
        unboundedInputShare = try read(.unboundedInputShare, unboundedInputShare)
        predictableShare = try read(.predictableShare, predictableShare)
        realtimeP99Limit = try read(.realtimeP99Limit, realtimeP99Limit)
        decisionChangeLimit = try read(.decisionChangeLimit, decisionChangeLimit)
        referenceAgeSeconds = try read(.referenceAgeSeconds, referenceAgeSeconds)
        minCallsPerDay = try read(.minCallsPerDay, minCallsPerDay)
        minCostRatio = try read(.minCostRatio, minCostRatio)
        minMonthlySaving = try read(.minMonthlySaving, minMonthlySaving)
        failureShareLimit = try read(.failureShareLimit, failureShareLimit)
        targetUtilization = try read(.targetUtilization, targetUtilization)
        minPairs = try read(.minPairs, minPairs)
        stableInputShare = try read(.stableInputShare, stableInputShare)
        ages = try read(.ages, ages)
    }
}
