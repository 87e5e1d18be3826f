internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineUpstream

/// Why a prediction could not be given. The HTTP layer maps each code to a status; messages name what the
/// caller sent wrong and never include model internals.
public struct PredictionError: Error, Sendable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case badRequest = "bad_request"
            case notFound = "not_found"
            case overloaded, timeout
            case modelFailed = "model_failed"
            case unavailable
            case unknownKey = "unknown_key"
            case stale
            case storeUnavailable = "store_unavailable"
            case internalError = "internal_error"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// The caller's input does not fit the feature (400).
        public static let badRequest = Code(.badRequest)
        /// No such feature or model (404).
        public static let notFound = Code(.notFound)
        /// The queue is full or the deadline cannot be met, and no fallback rung absorbs it (503 + Retry-After).
        public static let overloaded = Code(.overloaded)
        /// The answer did not arrive within the caller's deadline (504).
        public static let timeout = Code(.timeout)
        /// The model failed on valid input (500).
        public static let modelFailed = Code(.modelFailed)
        /// The server is shutting down or not ready (503).
        public static let unavailable = Code(.unavailable)
        /// The snapshot lacks the key and the feature's cold-start policy is `error`, or the request carries no
        /// inputs to compute it from (404).
        public static let unknownKey = Code(.unknownKey)
        /// The snapshot is older than the caller's contract and the feature may not answer otherwise (503).
        public static let stale = Code(.stale)
        /// The store cannot be reached right now (503 + Retry-After).
        public static let storeUnavailable = Code(.storeUnavailable)
        /// A bug in the server, reported instead of crashing it (500).
        public static let internalError = Code(.internalError)
        public var description: String { base.rawValue }
    }
    public var code: Code
    public var message: String
    /// Seconds a client should wait before retrying, for overload.
    public var retryAfter: Int?

    public init(_ code: Code, _ message: String, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(code): \(message)" }
}

extension PredictionError {
    /// A model call's failure. Once the inputs have passed the model's checks (types, ranks, declared dimensions),
    /// an argument, input, shape or size error during the call comes from the values the caller sent (an id outside
    /// an embedding table, a shape tensor that does not fit): a 400 naming what the model could not use. Anything
    /// else is the model's or the engine's fault.
    public init(modelCall error: any Error) {
        if let error = error as? PredictionError {
            self = error
        } else if let error = error as? StoreUnavailableError {
            self.init(
                .storeUnavailable, "the store is unavailable; try again later",
                retryAfter: StoreUnavailableError.retryAfterSeconds(error))
        } else if let error = error as? UpstreamError {
            self.init(upstream: error)
        } else if let error = error as? EngineError,
            [.invalidArgument, .invalidInput, .invalidShape, .tooLarge].contains(error.code)
        {
            self.init(.badRequest, "the model cannot use this input: \(error.message)")
        } else {
            self.init(.modelFailed, "the model failed: \(error)")
        }
    }
}

extension PredictionError {
    /// An upstream model's failure: the caller's row (400), the upstream down or its circuit open (503), its
    /// budget or its 429 with no room before the deadline (503 overloaded), or the deadline passed (504). The
    /// message is the upstream module's, which names no credential and quotes no upstream body.
    init(upstream error: UpstreamError) {
        let retryAfter = error.retryAfter.map { Int(min(3600, max(1, $0.seconds)).rounded(.up)) }
        switch error.kind {
        case .badRequest: self.init(.badRequest, error.message)
        case .timeout: self.init(.timeout, error.message)
        case .rateLimited: self.init(.overloaded, error.message, retryAfter: retryAfter ?? 1)
        case .unavailable, .circuitOpen: self.init(.unavailable, error.message, retryAfter: retryAfter ?? 1)
        }
    }
}
