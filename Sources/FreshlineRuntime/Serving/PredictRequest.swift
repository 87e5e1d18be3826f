public import FreshlineCore
internal import FreshlineEngine
public import FreshlineJSON
public import FreshlineUpstream

/// One row to predict: an entity key and/or named inputs, with an optional freshness contract and deadline.
public struct PredictRequest: Sendable {
    /// The entity key (e.g. a user id), if the feature has one.
    public var key: String?
    /// Named model inputs for this row (values without the batch dimension).
    public var inputs: [String: JSONValue]
    /// The caller's `max_staleness` override.
    public var maxStaleness: Duration?
    /// The caller's deadline override (defaults to the feature's latency budget).
    public var timeout: Duration?
    /// When the request reached the server (the HTTP layer's arrival); the deadline counts from here. `nil`:
    /// from when `FeatureServer.predict` is called.
    public var arrival: ContinuousClock.Instant?
    /// A load test's request (`X-Freshline-Load-Test` from an authenticated caller): answered as any other, never
    /// sampled into the request log, so load tests do not mix with production traffic.
    public var loadTest = false

    public init(
        key: String? = nil, inputs: [String: JSONValue], maxStaleness: Duration? = nil, timeout: Duration? = nil,
        arrival: ContinuousClock.Instant? = nil
    ) {
        self.key = key
        self.inputs = inputs
        self.maxStaleness = maxStaleness
        self.timeout = timeout
        self.arrival = arrival
    }
}

/// An answer with its provenance.
public struct Prediction: Sendable {
    /// The entity key the answer is for.
    public var key: String?
    /// Named outputs for this row.
    public var outputs: [String: JSONValue]
    /// Where it came from and how old it is.
    public var provenance: Provenance
    /// For composed inputs: where each value came from and how old it was.
    public var inputs: [String: InputProvenance] = [:]
    /// The composed inputs' values (for the request log's input hashes).
    var composedValues: [String: JSONValue] = [:]
    /// Tokens the upstream model used for this answer (LLM upstreams), as its `usage` reported them.
    public var usage: TokenUsage?
    /// The model call behind a computed answer: its wall time and rows (for the request log).
    var computeSeconds: Double?
    var computeRows: Int?

    /// Makes an answer.
    public init(key: String?, outputs: [String: JSONValue], provenance: Provenance) {
        self.key = key
        self.outputs = outputs
        self.provenance = provenance
    }
}
