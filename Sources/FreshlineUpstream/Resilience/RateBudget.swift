/// The rate-limit budget of one upstream (`limits.requestsPerMinute`, `limits.tokensPerMinute`), as a pure state
/// machine over two token buckets and a queue of waiting callers; the time is passed in, so the arithmetic and the
/// ordering are tested with an injected clock. `RateLimiter` runs it for real callers.
///
/// Callers are served in `CallPriority` order, first come first served within a priority: a caller is granted at
/// once only when nobody of its priority or higher waits and both buckets hold its cost. `.batch` callers may only
/// take from a bucket while it stays above `batchReserve` of its capacity, so a batch run never drains the budget
/// that real-time requests need. A caller whose expected wait would pass its deadline is refused at once, with the
/// expected wait as `retryAfter`, rather than queued to fail later.
///
/// The budget is per server process. With a PostgreSQL store, `SharedBudget` comes after it: the queue and the
/// priorities stay here, and the servers of a cluster share the allowance in slices taken from the store.
struct RateBudget: Sendable {
    /// The share of each bucket that batch callers may not take.
    static let batchReserve = 0.2
    /// The least a waiter sleeps before it checks again, so that waiters behind a late head do not spin.
    static let minimumWait = Duration.milliseconds(1)

    /// A caller waiting for room.
    struct Waiter: Sendable, Equatable {
        var id: UInt64
        var priority: CallPriority
        var tokens: Double
        var deadline: ContinuousClock.Instant

        /// Whether this waiter is served before a caller of `priority` that came with `id`.
        func isAhead(of priority: CallPriority, id: UInt64) -> Bool {
            self.priority < priority || (self.priority == priority && self.id < id)
        }
    }

    /// The answer to a caller.
    enum Decision: Sendable, Equatable {
        /// Go ahead: the cost has been taken from the buckets.
        case granted
        /// Queued as `id`: sleep until `until`, then `poll`.
        case wait(id: UInt64, until: ContinuousClock.Instant)
        /// No room before the deadline: the expected wait.
        case refused(retryAfter: Duration)
    }

    private(set) var requests: TokenBucket?
    private(set) var tokens: TokenBucket?
    /// Waiting callers in service order.
    private(set) var waiters: [Waiter] = []
    private var nextID: UInt64 = 0

    /// A budget of `requestsPerMinute` calls and `tokensPerMinute` tokens (`nil`: that bucket is unlimited).
    init(requestsPerMinute: Int?, tokensPerMinute: Int?, now: ContinuousClock.Instant) {
        requests = requestsPerMinute.map { TokenBucket(perMinute: $0, now: now) }
        tokens = tokensPerMinute.map { TokenBucket(perMinute: $0, now: now) }
    }

    /// Whether the budget limits anything at all (no buckets: every call is granted without bookkeeping).
    var isUnlimited: Bool { requests == nil && tokens == nil }

    /// A new caller of `priority` asks for one call costing `tokens` tokens, by `deadline`.
    mutating func request(
        priority: CallPriority, tokens cost: Int, deadline: ContinuousClock.Instant, now: ContinuousClock.Instant
    ) -> Decision {
        nextID += 1
        let waiter = Waiter(id: nextID, priority: priority, tokens: Double(max(0, cost)), deadline: deadline)
        refill(now: now)
        let (grantable, wait) = evaluate(waiter)
        if grantable {
            take(waiter)
            return .granted
        }
        guard now + wait <= deadline else { return .refused(retryAfter: wait) }
        let index = waiters.firstIndex { !$0.isAhead(of: waiter.priority, id: waiter.id) } ?? waiters.endIndex
        waiters.insert(waiter, at: index)
        return .wait(id: waiter.id, until: now + max(wait, Self.minimumWait))
    }

    /// A queued caller checks again after its sleep.
    mutating func poll(id: UInt64, now: ContinuousClock.Instant) -> Decision {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return .refused(retryAfter: .zero) }
        let waiter = waiters[index]
        refill(now: now)
        let (grantable, wait) = evaluate(waiter)
        if grantable {
            waiters.remove(at: index)
            take(waiter)
            return .granted
        }
        guard now + wait <= waiter.deadline else {
            waiters.remove(at: index)
            return .refused(retryAfter: wait)
        }
        return .wait(id: id, until: now + max(wait, Self.minimumWait))
    }

    /// A queued caller gives up (cancelled).
    mutating func withdraw(id: UInt64) {
        waiters.removeAll { $0.id == id }
    }

    /// Corrects the token bucket once a call's real usage is known: gives back what was over-estimated, or takes
    /// the shortfall (which may leave the bucket in debt).
    mutating func settle(estimatedTokens: Int, actualTokens: Int, now: ContinuousClock.Instant) {
        guard var bucket = tokens else { return }
        bucket.refill(now: now)
        let difference = Double(estimatedTokens) - Double(max(0, actualTokens))
        if difference > 0 { bucket.give(difference) } else { bucket.take(-difference) }
        tokens = bucket
    }

    private mutating func refill(now: ContinuousClock.Instant) {
        requests?.refill(now: now)
        tokens?.refill(now: now)
    }

    private mutating func take(_ waiter: Waiter) {
        if let bucket = requests { requests?.take(Self.cost(1, of: waiter, in: bucket)) }
        if let bucket = tokens { tokens?.take(Self.cost(waiter.tokens, of: waiter, in: bucket)) }
    }

    /// A waiter's cost of `units` in a bucket, clamped so that it fits at all: a call estimated above the whole
    /// budget (or, for batch, above what the reserve leaves) waits for a full bucket instead of forever.
    private static func cost(_ units: Double, of waiter: Waiter, in bucket: TokenBucket) -> Double {
        let usable = waiter.priority == .batch ? bucket.capacity * (1 - batchReserve) : bucket.capacity
        return min(units, usable)
    }

    /// Whether `waiter` can be granted now, and otherwise how long until the buckets hold its cost on top of the
    /// cost of everyone served before it (and, for batch, on top of the reserve).
    private func evaluate(_ waiter: Waiter) -> (grantable: Bool, wait: Duration) {
        let ahead = waiters.filter { $0.id != waiter.id && $0.isAhead(of: waiter.priority, id: waiter.id) }
        var wait = Duration.zero
        var enough = true
        for (bucket, units) in [(requests, { (_: Waiter) in 1.0 }), (tokens, { (w: Waiter) in w.tokens })] {
            guard let bucket else { continue }
            let before = ahead.reduce(0.0) { $0 + Self.cost(units($1), of: $1, in: bucket) }
            let reserve = waiter.priority == .batch ? bucket.capacity * Self.batchReserve : 0
            let target = before + Self.cost(units(waiter), of: waiter, in: bucket) + reserve
            if bucket.level < target { enough = false }
            wait = max(wait, bucket.time(toReach: target))
        }
        return (ahead.isEmpty && enough, wait)
    }
}
