internal import FreshlineCore
internal import Logging
internal import Synchronization

/// An upstream's rate-limit budget shared by the servers of a cluster through the store (PostgreSQL): the budget's
/// buckets live in the store, and each server takes a *slice* of them at a time — one refill interval's worth
/// (`refillInterval` of the per-minute limits, at least one call and the cost of the call asking) — then spends it
/// locally without asking the store per call. It comes after the server's own `RateLimiter`, which still orders
/// callers by priority (real-time, async, batch) and holds the batch reserve; the slice a batch caller leases is
/// taken only above the shared buckets' reserve.
///
/// The bound. A server holds at most one slice (one lease in flight at a time; a new slice replaces what is left of
/// the old, whose unused part is lost, not returned), and a slice lasts one refill interval. Every slice is taken
/// from the shared buckets before it is spent, so the cluster spends no more than the shared buckets grant: a
/// server's over-use is bounded by what it spends without the store's grant, which is:
/// - when the store cannot be reached: one slice (one refill interval's worth), then calls are refused as
///   rate-limited until the store answers again;
/// - a call that used more tokens than estimated: the difference is carried as a debt into the next slice it leases;
/// - a batch caller that spends a slice leased by a real-time caller: at most that slice below the reserve.
final class SharedBudget: Sendable {
    /// How long a slice lasts, and how much of the budget it holds (this share of a minute's allowance).
    static let refillInterval = Duration.seconds(1)

    private struct Slice {
        var requests: Double = 0
        var tokens: Double = 0
        var expires = ContinuousClock.now
        /// A lease is being taken: other callers wait for it rather than take a second slice.
        var leasing = false
        /// Whether the slice was granted without the store (it could not be reached): only one such per outage.
        var unaccounted = false
    }

    private enum Step {
        case taken
        case waitForLease
        case lease(requests: Double, tokens: Double)
    }

    let upstream: String
    let requestsPerMinute: Int?
    let tokensPerMinute: Int?
    private let store: any UpstreamBudgetStore
    private let logger: Logger
    private let slice = Mutex(Slice())

    init(
        store: any UpstreamBudgetStore, upstream: String, requestsPerMinute: Int?, tokensPerMinute: Int?,
        logger: Logger
    ) {
        self.store = store
        self.upstream = upstream
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.logger = logger
    }

    /// Whether there is a budget to share at all.
    var isUnlimited: Bool { requestsPerMinute == nil && tokensPerMinute == nil }

    /// Takes one call of `tokens` estimated tokens from the slice, leasing a new slice when it lacks room; waits for
    /// the shared buckets to refill while the deadline allows, else fails with `.rateLimited` and the expected wait.
    /// `prefix` names the upstream in messages.
    func acquire(priority: CallPriority, tokens: Int, deadline: ContinuousClock.Instant, prefix: String)
        async throws(UpstreamError)
    {
        guard !isUnlimited else { return }
        let cost = Double(max(0, tokens))
        while true {
            let step = slice.withLock { s -> Step in
                let now = ContinuousClock.now
                let fits =
                    (requestsPerMinute == nil || s.requests >= 1) && (tokensPerMinute == nil || s.tokens >= cost)
                if now < s.expires, fits {
                    s.requests -= 1
                    s.tokens -= cost
                    return .taken
                }
                if s.leasing { return .waitForLease }
                s.leasing = true
                let interval = Self.refillInterval / .seconds(60)
                // A debt (a call that used more tokens than estimated) is leased on top.
                let debt = max(0, -s.tokens)
                return .lease(
                    requests: max(1, Double(requestsPerMinute ?? 0) * interval),
                    tokens: max(cost, Double(tokensPerMinute ?? 0) * interval) + debt)
            }
            switch step {
            case .taken:
                return
            case .waitForLease:
                guard ContinuousClock.now < deadline else {
                    throw UpstreamError(
                        .rateLimited, "\(prefix): the shared rate limit has no room before the deadline",
                        retryAfter: Self.refillInterval)
                }
                try await Self.sleep(until: min(deadline, .now + .milliseconds(5)), prefix: prefix)
            case .lease(let requests, let tokens):
                let request = BudgetSliceRequest(
                    upstream: upstream, requestsPerMinute: requestsPerMinute, tokensPerMinute: tokensPerMinute,
                    requests: requests, tokens: tokens, reserve: priority == .batch ? RateBudget.batchReserve : 0)
                let granted: BudgetSlice
                do {
                    granted = try await store.takeBudget(request)
                } catch {
                    try await unreachable(request, error: error, deadline: deadline, prefix: prefix)
                    continue
                }
                let now = ContinuousClock.now
                slice.withLock { s in
                    s.leasing = false
                    s.unaccounted = false
                    if granted.granted {
                        s.requests = requests
                        s.tokens = tokens - max(0, -s.tokens)
                        s.expires = now + Self.refillInterval
                    }
                }
                if granted.granted { continue }
                guard now + granted.retryAfter <= deadline else {
                    throw UpstreamError(
                        .rateLimited, "\(prefix): the shared rate limit has no room before the deadline",
                        retryAfter: granted.retryAfter)
                }
                try await Self.sleep(until: now + granted.retryAfter, prefix: prefix)
            }
        }
    }

    /// A call used `actualTokens`, estimated at `estimatedTokens`: the difference is taken from the slice (a debt,
    /// leased on top of the next slice) or given back to it.
    func settle(estimatedTokens: Int, actualTokens: Int) {
        guard tokensPerMinute != nil else { return }
        slice.withLock { $0.tokens += Double(estimatedTokens) - Double(max(0, actualTokens)) }
    }

    /// The store could not be reached: the first time, one slice is spent without its grant; after that, calls
    /// are refused until the store answers.
    private func unreachable(
        _ request: BudgetSliceRequest, error: any Error, deadline: ContinuousClock.Instant, prefix: String
    ) async throws(UpstreamError) {
        let first = slice.withLock { s in
            s.leasing = false
            guard !s.unaccounted else { return false }
            s.unaccounted = true
            s.requests = request.requests
            s.tokens = request.tokens
            s.expires = .now + Self.refillInterval
            return true
        }
        if first {
            logger.warning("\(prefix): the shared rate limit cannot be read (\(error)); spending one slice without it")
            return
        }
        throw UpstreamError(
            .rateLimited, "\(prefix): the shared rate limit cannot be read from the store",
            retryAfter: Self.refillInterval)
    }

    private static func sleep(until instant: ContinuousClock.Instant, prefix: String) async throws(UpstreamError) {
        do { try await Task.sleep(until: instant, clock: .continuous) } catch {
            throw UpstreamError(.unavailable, "\(prefix): cancelled while waiting for the shared rate limit")
        }
    }
}
