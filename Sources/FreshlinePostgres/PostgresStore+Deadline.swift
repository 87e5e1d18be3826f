public import FreshlineCore
internal import PostgresNIO
internal import Synchronization

// MARK: Bounded calls

// postgres-nio (1.33) has no timeout for leasing a connection: with the server down, a lease request waits in the
// pool's queue while the pool keeps trying to connect, and only after 60 s of failed attempts (its circuit breaker,
// `circuitBreakerTripAfter`, not configurable through `PostgresClient.Configuration`) do new leases fail at once.
// Nor is a statement in flight cancelled with its task. So every call is raced against a timer here.

extension PostgresStore {
    /// The bound of a bulk call (reading or publishing a whole snapshot, which may hold millions of keys): the call
    /// timeout, but at least five minutes.
    var bulkTimeout: Duration { max(callTimeout, .seconds(300)) }

    /// Runs `call` within `timeout` and records its outcome for `unavailableReason`.
    ///
    /// The call and a timer race (`firstOf`); whichever ends first answers and the other is cancelled. The caller
    /// does not wait for the loser: a call that does not end when cancelled (a lease or a statement stuck on a
    /// connection whose peer has gone silent) must not hold its caller past the bound. A cancelled lease request
    /// leaves the pool's queue at once (`PoolStateMachine.cancelRequest`); a statement still running on the server
    /// ends by the session's `statement_timeout`, which is the call timeout too.
    func bounded<Result: Sendable>(
        _ operation: String, timeout: Duration, _ call: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        do {
            let result = try await Self.firstOf(call, timeout: timeout)
            record(nil, operation)
            return result
        } catch {
            let failure = Self.storeError(error, operation)
            switch failure {
            case let unavailable as StoreUnavailableError: record(unavailable.reason, operation)
            case is CancellationError: break
            // Anything else was answered by the server (or by the store's own checks after it answered).
            default: record(nil, operation)
            }
            throw failure
        }
    }

    /// The outcome of `call`, or `StoreUnavailableError` when `timeout` passes first, or `CancellationError` when
    /// the calling task is cancelled first. The loser is cancelled and not awaited.
    ///
    /// Not a task group: a group waits for every child, so a call that ignores cancellation would hold the caller
    /// (the previous version of this race did, and PostgreSQL-backed tests hung under load).
    static func firstOf<Result: Sendable>(
        _ call: @escaping @Sendable () async throws -> Result, timeout: Duration
    ) async throws -> Result {
        let race = Race<Result>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard race.start(continuation) else { return }
                let work = Task {
                    do { race.finish(.success(try await call())) } catch { race.finish(.failure(error)) }
                }
                let timer = Task {
                    // Cancelled when the call answers first; a cancelled sleep throws and finishes nothing.
                    guard (try? await Task.sleep(for: timeout)) != nil else { return }
                    race.finish(.failure(StoreUnavailableError(reason: "no answer within \(text(timeout))")))
                }
                race.attach([work, timer])
            }
        } onCancel: {
            race.finish(.failure(CancellationError()))
        }
    }

    /// Records a call's outcome; logs when the store becomes unavailable and when it is back (not every call:
    /// during an outage every call fails).
    private func record(_ reason: String?, _ operation: String) {
        let previous = health.record(reason)
        if let reason, previous == nil {
            logger.warning(
                "PostgreSQL store unavailable; calls fail until it answers again",
                metadata: ["url": "\(url)", "operation": "\(operation)", "reason": "\(reason)"])
        } else if reason == nil, let previous {
            logger.info("PostgreSQL store available again", metadata: ["url": "\(url)", "was": "\(previous)"])
        }
    }

    /// Leases a connection from `client` and runs `body` on it, closing the connection if the task is cancelled
    /// meanwhile (postgres-nio does not cancel a statement in flight; closing fails it at once). A lease that fails
    /// (the pool's circuit breaker is open, the pool is closed) is an outage.
    static func withCallConnection<Result: Sendable>(
        _ client: PostgresClient, _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        var leased = false
        do {
            return try await client.withConnection { connection in
                leased = true
                return try await withTaskCancellationHandler {
                    try await body(connection)
                } onCancel: {
                    // The pool's close (closes the channel, returns at once), not the one returning a future.
                    let _: Void = connection.close()
                }
            }
        } catch {
            if leased || Task.isCancelled || error is CancellationError { throw error }
            if let error = error as? PSQLError, let reason = unavailability(error) {
                throw StoreUnavailableError(reason: reason)
            }
            throw StoreUnavailableError(reason: "no connection: \(error)")
        }
    }

    /// Why `error` means the database cannot be used right now; `nil` when it is about the request.
    static func unavailability(_ error: PSQLError) -> String? {
        switch error.code {
        case .connectionError:
            return "cannot connect" + (error.underlying.map { ": \($0)" } ?? "")
        case .serverClosedConnection, .uncleanShutdown: return "the server closed the connection"
        case .clientClosedConnection: return "the connection was closed"
        case .poolClosed: return "the store is shutting down"
        case .server:
            guard let state = error.serverInfo?[.sqlState] else { return nil }
            // Class 08: connection exception; 53: insufficient resources (too many connections, disk full,
            // out of memory); 57P01–57P03: the server is shutting down, crashed or starting up; 57014: the statement
            // ran into statement_timeout (the call timeout on the server's side).
            if state.hasPrefix("08") || state.hasPrefix("53") || ["57P01", "57P02", "57P03"].contains(state) {
                return (error.serverInfo?[.message] ?? "server unavailable") + " [SQLSTATE \(state)]"
            }
            if state == "57014" { return "a statement ran out of time (statement_timeout) [SQLSTATE 57014]" }
            return nil
        default: return nil
        }
    }

    /// `duration` in whole milliseconds (at least 1), as PostgreSQL's time settings take it.
    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }

    /// `duration` for messages: "5 s", "250 ms".
    static func text(_ duration: Duration) -> String {
        let milliseconds = milliseconds(duration)
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
    }
}

extension PostgresStore: StoreHealthReporting {
    public var unavailableReason: String? { health.reason }
}

/// The state of one `firstOf` race: the caller's continuation until the first outcome, and the racing tasks to
/// cancel then.
private final class Race<Result: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Result, any Error>?
        var outcome: Swift.Result<Result, any Error>?
        var tasks: [Task<Void, Never>] = []
    }
    private let state = Mutex(State())

    /// Keeps the continuation; resumes it at once (and returns `false`) when an outcome came first (the caller was
    /// cancelled before the race started).
    func start(_ continuation: CheckedContinuation<Result, any Error>) -> Bool {
        let early: Swift.Result<Result, any Error>? = state.withLock { state in
            if let outcome = state.outcome { return outcome }
            state.continuation = continuation
            return nil
        }
        guard let early else { return true }
        continuation.resume(with: early)
        return false
    }

    /// Records the racing tasks; cancels them at once when the race is already over.
    func attach(_ tasks: [Task<Void, Never>]) {
        let over = state.withLock { state in
            state.tasks = tasks
            return state.outcome != nil
        }
        if over { for task in tasks { task.cancel() } }
    }

    /// The first outcome resumes the caller and cancels the racing tasks; later ones are dropped.
    func finish(_ outcome: Swift.Result<Result, any Error>) {
        let won: (CheckedContinuation<Result, any Error>?, [Task<Void, Never>])? = state.withLock { state in
            guard state.outcome == nil else { return nil }
            state.outcome = outcome
            defer { state.continuation = nil }
            return (state.continuation, state.tasks)
        }
        guard let (continuation, tasks) = won else { return }
        continuation?.resume(with: outcome)
        for task in tasks { task.cancel() }
    }
}

/// The outcome of the store's last call that reached a verdict: the unavailability reason of the last failure
/// while no call has succeeded since. Recorded by every call, read by readiness (no probing of its own).
final class CallOutcomes: Sendable {
    private let last = Mutex<String?>(nil)

    /// The reason the last call failed for unavailability; `nil` after a call that succeeded.
    var reason: String? { last.withLock { $0 } }

    /// Records an outcome and returns the previous one.
    @discardableResult
    func record(_ reason: String?) -> String? {
        last.withLock { value in
            defer { value = reason }
            return value
        }
    }
}
