/// One sampled request, as the advisor needs it: which feature, a hash of the entity key (never the key),
/// whether the request carried inputs beyond the key, where the answer came from, how long it took and how old
/// the answer was.
public struct RequestLogSample: Sendable, Equatable {
    public var feature: String
    /// A 64-bit hash of the entity key, hex; `nil` when the request carried no key.
    public var keyHash: String?
    /// Whether the request carried inputs beyond an enumerable key (free text, novel transactions).
    public var hasRequestInputs: Bool
    public var source: PredictionSource?
    /// `ok`, `shed`, `timeout`, `error`, `bad_request`.
    public var outcome: String
    public var latencySeconds: Double
    public var ageSeconds: Double
    /// When the request arrived, seconds since 1970.
    public var at: Double

    public init(
        feature: String, keyHash: String?, hasRequestInputs: Bool, source: PredictionSource?, outcome: String,
        latencySeconds: Double, ageSeconds: Double, at: Double
    ) {
        self.feature = feature
        self.keyHash = keyHash
        self.hasRequestInputs = hasRequestInputs
        self.source = source
        self.outcome = outcome
        self.latencySeconds = latencySeconds
        self.ageSeconds = ageSeconds
        self.at = at
    }
}

/// Where request-log samples are kept. SQLite now; PostgreSQL implements the same protocol later.
public protocol RequestLogStore: Sendable {
    /// Appends samples (one transaction).
    func append(_ samples: [RequestLogSample]) async throws
    /// Samples of one feature at or after `since`, oldest first, at most `limit`.
    func samples(feature: String, since: Double, limit: Int) async throws -> [RequestLogSample]
    /// Deletes samples older than `before`; returns how many were deleted.
    func deleteSamples(before: Double) async throws -> Int
}
