public import FreshlineCore
public import FreshlineEngine

/// Who is calling an upstream, in the order its rate-limit budget serves them: live requests first, then async
/// jobs, then batch runs, which only take what is left.
public enum CallPriority: Int, Sendable, Comparable, CaseIterable {
    case realtime = 0
    case async = 1
    case batch = 2

    public static func < (a: CallPriority, b: CallPriority) -> Bool { a.rawValue < b.rawValue }
}

/// Tokens one row's call used (an `openai` upstream's `usage`).
public struct TokenUsage: Sendable, Equatable {
    public var input: Int
    public var output: Int
    public init(input: Int, output: Int) {
        self.input = input
        self.output = output
    }
}

/// What an upstream answered for a batch of rows.
public struct RemoteAnswer: Sendable {
    /// Every output of the model's metadata, as the engine would give it: tensors whose first dimension is the row
    /// count, in the rows' order.
    public var outputs: [String: Value]
    /// The upstream model and version that answered (OIP `model_version`; OpenAI `model` and
    /// `system_fingerprint`), for the answer's provenance.
    public var modelVersion: String
    /// Tokens per row (`openai`); empty for upstreams that do not count tokens.
    public var usage: [TokenUsage]

    public init(outputs: [String: Value], modelVersion: String, usage: [TokenUsage] = []) {
        self.outputs = outputs
        self.modelVersion = modelVersion
        self.usage = usage
    }
}

/// A model served by another server. Implementations hold the connection pool, the retry policy, the circuit
/// breaker and the rate-limit budget of their upstream.
public protocol RemoteModel: Sendable {
    /// The manifest entry.
    var spec: ModelSpec { get }
    /// Inputs and outputs in the engine's terms: per-row shapes with a leading `-1` (batch) dimension, so every
    /// part of Freshline that checks and stacks rows for a local model does the same for this one.
    var metadata: ModelMetadata { get }
    /// Answers `rows` rows (each feed's first dimension is `rows`) by `deadline` (or within the upstream's
    /// `limits.timeout` when `nil`), retrying retryable failures while the deadline allows.
    func infer(
        _ feeds: [String: Tensor], rows: Int, priority: CallPriority, deadline: ContinuousClock.Instant?
    ) async throws(UpstreamError) -> RemoteAnswer
    /// Whether the model streams its answers (an `openai` chat model with `stream: true`): `infer(…, partial:)`
    /// then reports each row's text as it is generated.
    var streams: Bool { get }
    /// `infer`, reporting each row's answer text so far to `partial` as it grows (a streaming model; others answer
    /// as `infer` does and never call it). The answer is the same as `infer`'s.
    func infer(
        _ feeds: [String: Tensor], rows: Int, priority: CallPriority, deadline: ContinuousClock.Instant?,
        partial: PartialText?
    ) async throws(UpstreamError) -> RemoteAnswer
    /// Closes the model's connections (its HTTP client); called once at server stop, after the last `infer`.
    func shutdown() async
}

/// Receives a streamed row's text so far: the row's index in the call, and the text. Called from the task reading
/// the stream, at each chunk that adds text: it should only record the text (a job writes it out on its own beat).
public typealias PartialText = @Sendable (_ row: Int, _ text: String) -> Void

extension RemoteModel {
    /// Nothing to close (test doubles, models without connections of their own).
    public func shutdown() async {}

    /// Not streaming.
    public var streams: Bool { false }

    /// A model that does not stream answers as `infer` does.
    public func infer(
        _ feeds: [String: Tensor], rows: Int, priority: CallPriority, deadline: ContinuousClock.Instant?,
        partial: PartialText?
    ) async throws(UpstreamError) -> RemoteAnswer {
        try await infer(feeds, rows: rows, priority: priority, deadline: deadline)
    }
}

/// Why an upstream call failed, in words safe for the caller: never a credential, never the upstream's body.
public struct UpstreamError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The row cannot be sent as it is (a missing input, a value the template cannot take): the client's fault.
        case badRequest
        /// The upstream refused or failed (5xx, connection refused or reset, malformed answer) and retries ran out.
        case unavailable
        /// The deadline passed before an answer.
        case timeout
        /// The circuit breaker is open: the call was not made.
        case circuitOpen
        /// The rate-limit budget (ours, or the upstream's 429) has no room before the deadline.
        case rateLimited
    }
    public var kind: Kind
    public var message: String
    /// When to try again, when the upstream or the budget says.
    public var retryAfter: Duration?

    public init(_ kind: Kind, _ message: String, retryAfter: Duration? = nil) {
        self.kind = kind
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { message }
}
