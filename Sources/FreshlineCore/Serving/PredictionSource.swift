/// Where an answer came from. Every prediction Freshline returns carries one.
public enum PredictionSource: String, Sendable, Codable, CaseIterable {
    /// Computed now by the feature's model.
    case realtime
    /// Looked up in a published batch snapshot.
    case batch
    /// Computed by an async job.
    case async
    /// A rung of the fallback ladder (e.g. a stale snapshot value), flagged as such.
    case fallback
    /// The feature's configured default value.
    case `default`
}
