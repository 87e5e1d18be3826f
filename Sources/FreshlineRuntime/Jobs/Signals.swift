internal import Foundation
internal import Synchronization

/// In-process wake-ups by name. A waiter registers first, then checks the condition it waits for, then waits —
/// so a `fire` between the check and the wait is not lost — until `fire(name)` or its timeout. Used so that a job
/// finished (or submitted) in this process wakes its waiters (or idle workers) at once; the timeout is the polling
/// fallback for work done by other processes on the same store.
final class Signals: Sendable {
    /// A registration: wait on it once.
    struct Ticket: Sendable {
        let name: String
        let token: UUID
    }

    private enum Slot {
        case registered
        case fired
        case waiting(CheckedContinuation<Void, Never>)
    }

    private let slots = Mutex<[String: [UUID: Slot]]>([:])

    /// Registers interest in `name`; a `fire` from now on wakes the ticket's wait.
    func register(_ name: String) -> Ticket {
        let ticket = Ticket(name: name, token: UUID())
        slots.withLock { $0[name, default: [:]][ticket.token] = .registered }
        return ticket
    }

    /// Waits until the ticket's name is fired (or was, since `register`) or `timeout` passes.
    func wait(_ ticket: Ticket, timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: timeout)
                self.wake(ticket)
            }
            group.addTask {
                await withCheckedContinuation { continuation in
                    let resumeNow = self.slots.withLock { table -> Bool in
                        guard case .registered? = table[ticket.name]?[ticket.token] else { return true }
                        table[ticket.name]?[ticket.token] = .waiting(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            await group.next()
            group.cancelAll()
        }
        slots.withLock { table in
            table[ticket.name]?[ticket.token] = nil
            if table[ticket.name]?.isEmpty == true { table[ticket.name] = nil }
        }
    }

    /// Forgets a ticket that will not be waited on.
    func discard(_ ticket: Ticket) {
        slots.withLock { table in
            table[ticket.name]?[ticket.token] = nil
            if table[ticket.name]?.isEmpty == true { table[ticket.name] = nil }
        }
    }

    /// Wakes every ticket registered on `name`.
    func fire(_ name: String) {
        var continuations: [CheckedContinuation<Void, Never>] = []
        slots.withLock { table in
            guard var entries = table[name] else { return }
            for (token, slot) in entries {
                switch slot {
                case .registered: entries[token] = .fired
                case .waiting(let c):
                    continuations.append(c)
                    entries[token] = .fired
                case .fired: break
                }
            }
            table[name] = entries
        }
        for continuation in continuations { continuation.resume() }
    }

    private func wake(_ ticket: Ticket) {
        let continuation = slots.withLock { table -> CheckedContinuation<Void, Never>? in
            guard case .waiting(let c)? = table[ticket.name]?[ticket.token] else {
                if table[ticket.name]?[ticket.token] != nil { table[ticket.name]?[ticket.token] = .fired }
                return nil
            }
            table[ticket.name]?[ticket.token] = .fired
            return c
        }
        continuation?.resume()
    }
}
