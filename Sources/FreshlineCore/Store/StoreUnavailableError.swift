/// A store call failed because the store cannot be reached or did not answer in time (the database is down,
/// restarting, unreachable, or out of connections), not because of what was asked: trying again later may work.
///
/// Stores throw it so that callers can tell an outage from other failures without knowing the database: the HTTP
/// layer answers it with `503 Service Unavailable` and `Retry-After`, and readiness reports it.
public struct StoreUnavailableError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Why the store is unavailable, for logs and readiness (no SQL, no request data): "no answer within 5 s",
    /// "the server closed the connection".
    public var reason: String
    /// How long a caller should wait before trying again.
    public var retryAfter: Duration

    public init(reason: String, retryAfter: Duration = .seconds(1)) {
        self.reason = reason
        self.retryAfter = retryAfter
    }

    public var description: String { "the store is unavailable: \(reason)" }

    /// `retryAfter` in whole seconds, at least 1, for a `Retry-After` header.
    public static func retryAfterSeconds(_ error: StoreUnavailableError) -> Int {
        max(1, Int(error.retryAfter.components.seconds) + (error.retryAfter.components.attoseconds > 0 ? 1 : 0))
    }
}

/// A store that knows whether it can currently be reached, from the outcomes of its own calls (no probing): the
/// server's readiness reports it.
public protocol StoreHealthReporting: Sendable {
    /// Why the store is unavailable: the reason of the last call that failed for unavailability, when no call has
    /// succeeded since; `nil` while calls succeed (or none has been made).
    var unavailableReason: String? { get }
}
