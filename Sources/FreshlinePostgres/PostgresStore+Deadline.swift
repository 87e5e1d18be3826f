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
    /// The call and a timer race in a task group; whichever ends first wins and the other is cancelled. A cancelled
    /// call ends promptly: waiting for a connection, because the pool removes a cancelled lease request from its
    /// queue (`ConnectionRequest.leaseConnection` cancels with `cancelLeaseConnection(requestID)`, and
    /// `PoolStateMachine.cancelRequest` takes it out of the request dictionary at once and fails it with
    /// `requestCancelled`; its id stays in the deque until popped, where `RequestQueue.pop` skips ids no longer in
    /// the dictionary, so a request that gave up is never handed a connection); running a statement, because
    /// `withCallConnection` closes the connection on cancellation (the statement fails, the server rolls the
    /// transaction back, the pool drops the connection). The group waits for the loser, so that nothing outlives
    /// the call.
    func bounded<Result: Sendable>(
        _ operation: String, timeout: Duration, _ call: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        do {
            let result = try await withThrowingTaskGroup(of: CallOutcome<Result>.self) { group in
                group.addTask { .finished(try await call()) }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return .timedOut
                }
                defer { group.cancelAll() }
                guard case .finished(let result) = try await group.next() else {
                    throw StoreUnavailableError(reason: "no answer within \(Self.text(timeout))")
                }
                return result
            }
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

/// How a bounded call ended: with the call's result, or with the timer.
private enum CallOutcome<Result: Sendable>: Sendable {
    case finished(Result)
    case timedOut
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
