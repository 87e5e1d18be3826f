public import FreshlineCore
internal import Synchronization

/// Shares one store poll per job among every stream that follows it (`GET /v1/jobs/{id}/events`), and bounds how
/// many streams may be open: per caller and per server. Before it, each stream polled the store every 50 ms on
/// its own for up to an hour: 200 streams cost 38% of a core.
///
/// `run()` polls each followed job once per `interval` and hands the job to its followers; a follower's stream keeps
/// only the newest state (a slow reader skips states, never falls behind). Streams end when their job reaches a
/// final state, when the follower stops iterating (its entry is removed at once), or when `run()` ends.
public final class JobFollowers: Sendable {
    /// Why a stream was refused.
    public enum Refusal: Error, Sendable, Equatable {
        case callerLimit(Int)
        case serverLimit(Int)
    }

    private struct Follower {
        var caller: String
        var continuation: AsyncStream<Job>.Continuation
    }

    private struct State {
        var followers: [String: [Int: Follower]] = [:]
        var perCaller: [String: Int] = [:]
        var open = 0
        var nextID = 0
        var stopped = false
    }

    private let store: any JobStore
    private let interval: Duration
    /// The most streams one caller (token) may hold open.
    public let perCallerLimit: Int
    /// The most streams the server holds open.
    public let serverLimit: Int
    private let state = Mutex(State())

    public init(store: any JobStore, interval: Duration = .milliseconds(100), perCaller: Int, server: Int) {
        self.store = store
        self.interval = interval
        perCallerLimit = perCaller
        serverLimit = server
    }

    /// Streams open now.
    public var openCount: Int { state.withLock { $0.open } }

    /// Follows job `id` for `caller`: the job's state each poll while it changes hands, ending after a final state.
    /// Throws `Refusal` when the caller or the server holds its limit of streams.
    public func follow(id: String, caller: String) throws(Refusal) -> AsyncStream<Job> {
        let (stream, continuation) = AsyncStream.makeStream(of: Job.self, bufferingPolicy: .bufferingNewest(1))
        let token: Int = try state.withLock { (s: inout State) throws(Refusal) -> Int in
            guard s.open < serverLimit else { throw .serverLimit(serverLimit) }
            guard s.perCaller[caller, default: 0] < perCallerLimit else { throw .callerLimit(perCallerLimit) }
            if s.stopped {
                continuation.finish()
                return -1
            }
            s.nextID += 1
            s.followers[id, default: [:]][s.nextID] = Follower(caller: caller, continuation: continuation)
            s.perCaller[caller, default: 0] += 1
            s.open += 1
            return s.nextID
        }
        if token >= 0 {
            continuation.onTermination = { [weak self] _ in self?.remove(id: id, token: token) }
        }
        return stream
    }

    private func remove(id: String, token: Int) {
        state.withLock { s in
            guard let follower = s.followers[id]?.removeValue(forKey: token) else { return }
            if s.followers[id]?.isEmpty == true { s.followers[id] = nil }
            s.perCaller[follower.caller, default: 1] -= 1
            if s.perCaller[follower.caller] == 0 { s.perCaller[follower.caller] = nil }
            s.open -= 1
        }
    }

    /// Polls the followed jobs until cancelled, then ends every stream.
    public func run() async {
        while !Task.isCancelled {
            let ids = state.withLock { Array($0.followers.keys) }
            for id in ids {
                // A store error skips this round for the job; its followers keep their last state.
                guard let job = try? await store.job(id: id) else { continue }
                let continuations = state.withLock { s in s.followers[id].map { Array($0.values) } ?? [] }
                for follower in continuations {
                    follower.continuation.yield(job)
                    if job.state.isFinal { follower.continuation.finish() }
                }
            }
            try? await Task.sleep(for: interval)
        }
        let all = state.withLock { s in
            s.stopped = true
            return s.followers.values.flatMap(\.values)
        }
        for follower in all { follower.continuation.finish() }
    }
}
