/// Where a prediction came from, when it was computed and by which model version.
public struct Provenance: Sendable, Equatable, Codable {
    /// The path that produced the answer.
    public var source: PredictionSource
    /// When the answer was computed, in seconds since 1970 (for batch: the run's input time).
    public var computedAt: Double
    /// Age of the answer when it was served, in seconds.
    public var ageSeconds: Double
    /// The model's version (content hash prefix), or `nil` for a configured default.
    public var modelVersion: String?
    /// The snapshot id, for batch answers.
    public var snapshot: String?
    /// Set when the answer is older than the caller's freshness contract (a stale fallback).
    public var stale: Bool

    /// Makes a provenance record.
    public init(
        source: PredictionSource, computedAt: Double, ageSeconds: Double, modelVersion: String?,
        snapshot: String? = nil, stale: Bool = false
    ) {
        self.source = source
        self.computedAt = computedAt
        self.ageSeconds = ageSeconds
        self.modelVersion = modelVersion
        self.snapshot = snapshot
        self.stale = stale
    }

    enum CodingKeys: String, CodingKey {
        case source, stale, snapshot
        case computedAt = "computed_at"
        case ageSeconds = "age_seconds"
        case modelVersion = "model_version"
    }
}
