internal import Synchronization

/// The turn to lease and read the next range: one lane at a time reads (the source is read in order, and the
/// range that follows usually goes on with the reader the last one left), while the other lane's range still
/// computes and writes.
public final class ReadGate: Sendable {
    private let state = Mutex<(held: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    public init() {}

    /// Waits for the turn (not cancellable: a turn always ends, at the latest when its range does).
    public func take() async -> Turn {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                guard state.held else {
                    state.held = true
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
        return Turn(gate: self)
    }

    /// Takes the turn and runs `lease`: its result with the turn (to end once the range has been read), or `nil`
    /// with the turn given up when there was nothing to lease (or it threw).
    public func leasing<T>(_ lease: () async throws -> T?) async throws -> (T, Turn)? {
        let turn = await take()
        do {
            if let leased = try await lease() { return (leased, turn) }
        } catch {
            turn.end()
            throw error
        }
        turn.end()
        return nil
    }

    fileprivate func pass() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiting.isEmpty else {
                state.held = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }

    /// One lane's turn; `end()` passes it on (once, however often it is called).
    public final class Turn: Sendable {
        private let gate: ReadGate
        private let ended = Mutex(false)
        fileprivate init(gate: ReadGate) { self.gate = gate }

        public func end() {
            let first = ended.withLock { ended in
                defer { ended = true }
                return !ended
            }
            if first { gate.pass() }
        }
    }
}
