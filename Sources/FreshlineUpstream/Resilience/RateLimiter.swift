internal import Synchronization

/// Runs a `RateBudget` for concurrent callers: a caller that must wait sleeps until the budget expects room for it
/// and checks again, so no task of its own is kept running between calls. A cancelled waiter leaves the queue.
final class RateLimiter: Sendable {
    private let budget: Mutex<RateBudget>
    private let unlimited: Bool

    init(requestsPerMinute: Int?, tokensPerMinute: Int?) {
        let budget = RateBudget(
            requestsPerMinute: requestsPerMinute, tokensPerMinute: tokensPerMinute, now: .now)
        unlimited = budget.isUnlimited
        self.budget = Mutex(budget)
    }

    /// Waits for room for one call of `tokens` tokens; returns how long it waited. Fails at once with
    /// `.rateLimited` (the expected wait as `retryAfter`) when the room would come after `deadline`.
    func acquire(priority: CallPriority, tokens: Int, deadline: ContinuousClock.Instant, upstream: String)
        async throws(UpstreamError) -> Duration
    {
        guard !unlimited else { return .zero }
        let start = ContinuousClock.now
        var decision = budget.withLock {
            $0.request(priority: priority, tokens: tokens, deadline: deadline, now: start)
        }
        while true {
            switch decision {
            case .granted:
                return .now - start
            case .refused(let retryAfter):
                throw UpstreamError(
                    .rateLimited, "\(upstream): the rate limit has no room before the deadline",
                    retryAfter: retryAfter)
            case .wait(let id, let until):
                do {
                    try await Task.sleep(until: until, clock: .continuous)
                } catch {
                    budget.withLock { $0.withdraw(id: id) }
                    throw UpstreamError(.unavailable, "\(upstream): cancelled while waiting for the rate limit")
                }
                decision = budget.withLock { $0.poll(id: id, now: .now) }
            }
        }
    }

    /// Corrects the token bucket with a call's real usage.
    func settle(estimatedTokens: Int, actualTokens: Int) {
        guard !unlimited else { return }
        budget.withLock { $0.settle(estimatedTokens: estimatedTokens, actualTokens: actualTokens, now: .now) }
    }
}
