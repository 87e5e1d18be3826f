internal import Hummingbird
internal import Synchronization

/// Holds back the overload refusals (503 with `Retry-After`) of a connection that asks again before its
/// `Retry-After` has passed, until it has: a connection's first refusal is answered at once (a load balancer can
/// try another replica straight away), and a client that ignores `Retry-After` gets at most one refusal per
/// `Retry-After` on each connection.
///
/// Why: answering a refusal costs about as much as answering a prediction (reading the request, writing the
/// response, the syscalls, and the client's own work on the same machine), so closed-loop clients that retry at
/// once turn overload into a storm of refusals that takes the CPU from the requests that were admitted. Measured
/// with 640 connections against a server that saturates at 64 (bench/RESULTS.md, overload): without pacing, 0.10×
/// of the saturating throughput was admitted.
struct RefusalPacing: RouterMiddleware {
    typealias Context = FreshlineRequestContext
    let pacer: RefusalPacer

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch let error where Self.isOverloadRefusal(error) {
            let hold = pacer.hold(context.connection, now: .now)
            // A graceful shutdown cancels the wait: the refusal is answered at once.
            if hold > .zero { try? await Task.sleep(for: hold) }
            throw error
        }
    }

    /// A refusal for overload (`/v1` 503 `overloaded`, `/v2` 503 with `Retry-After`); not a store outage or a
    /// timeout.
    static func isOverloadRefusal(_ error: any Error) -> Bool {
        switch error {
        case let error as APIError: error.status == .serviceUnavailable && error.code == "overloaded"
        case let error as V2Error: error.status == .serviceUnavailable && error.retryAfter != nil
        default: false
        }
    }
}

/// When each connection's last refusal told it to come back (`spacing` after the refusal was answered).
final class RefusalPacer: Sendable {
    /// The `Retry-After` the refusals carry.
    let spacing: Duration
    private struct Table {
        var until: [ObjectIdentifier: ContinuousClock.Instant] = [:]
        /// Entries past their instant are dropped when the table reaches this size (then twice what is left, at
        /// least 1,024: amortised O(1) per refusal, and at most twice the connections refused within `spacing`).
        var purgeAt = 1024
    }
    private let table = Mutex(Table())

    init(spacing: Duration = .seconds(1)) { self.spacing = spacing }

    /// How long to hold a refusal of `connection` now: zero for its first refusal or when it waited its
    /// `Retry-After`, otherwise the rest of that wait.
    func hold(_ connection: ObjectIdentifier, now: ContinuousClock.Instant) -> Duration {
        table.withLock { table in
            let hold = table.until[connection].map { max(.zero, $0 - now) } ?? .zero
            table.until[connection] = now + hold + spacing
            if table.until.count >= table.purgeAt {
                table.until = table.until.filter { $0.value > now }
                table.purgeAt = max(1024, 2 * table.until.count)
            }
            return hold
        }
    }
}
