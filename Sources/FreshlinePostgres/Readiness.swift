internal import Synchronization

/// A one-shot gate: callers wait until the store is ready (migrations applied), or learn why it will not be.
final class Readiness: Sendable {
    private enum State {
        case waiting([Int: CheckedContinuation<Void, any Error>])
        case ready
        case failed(any Error)
    }

    private let state = Mutex<(state: State, nextWaiter: Int)>((.waiting([:]), 0))

    /// Returns once the store is ready; throws why it is not (or `CancellationError` when the task is cancelled
    /// while waiting).
    func wait() async throws {
        // Every store call passes here: once settled, answer without suspending.
        let (settled, id): (Result<Void, any Error>?, Int) = state.withLock { value in
            switch value.state {
            case .ready: return (.success(()), 0)
            case .failed(let error): return (.failure(error), 0)
            case .waiting:
                defer { value.nextWaiter += 1 }
                return (nil, value.nextWaiter)
            }
        }
        if let settled { return try settled.get() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = state.withLock { value in
                    switch value.state {
                    case .ready: return .success(())
                    case .failed(let error): return .failure(error)
                    case .waiting(var waiters):
                        if Task.isCancelled { return .failure(CancellationError()) }
                        waiters[id] = continuation
                        value.state = .waiting(waiters)
                        return nil
                    }
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let continuation: CheckedContinuation<Void, any Error>? = state.withLock { value in
                guard case .waiting(var waiters) = value.state, let continuation = waiters.removeValue(forKey: id)
                else { return nil }
                value.state = .waiting(waiters)
                return continuation
            }
            continuation?.resume(throwing: CancellationError())
        }
    }

    /// Settles the gate if it is still waiting: ready, or failed with an error every caller gets.
    func resolve(_ outcome: Result<Void, any Error>) {
        let waiters: [CheckedContinuation<Void, any Error>] = state.withLock { value in
            guard case .waiting(let waiters) = value.state else { return [] }
            switch outcome {
            case .success: value.state = .ready
            case .failure(let error): value.state = .failed(error)
            }
            return Array(waiters.values)
        }
        for waiter in waiters { waiter.resume(with: outcome) }
    }

    /// Closes the gate for good (the store stopped): later callers get `error`, unless it had already failed.
    func close(_ error: any Error) {
        resolve(.failure(error))
        state.withLock { value in
            if case .ready = value.state { value.state = .failed(error) }
        }
    }
}
