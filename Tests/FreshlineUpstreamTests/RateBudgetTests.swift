import FreshlineCore
import Testing

@testable import FreshlineUpstream

@Suite("Rate budget (token buckets, priority, batch reserve; injected clock)")
struct RateBudgetTests {
    let t0 = ContinuousClock.now

    @Test("a bucket refills continuously at capacity per minute, never above capacity")
    func bucketRefill() {
        var bucket = TokenBucket(perMinute: 60, now: t0)
        bucket.take(60)
        bucket.refill(now: t0 + .seconds(10))
        #expect(abs(bucket.level - 10) < 1e-9)
        #expect(bucket.time(toReach: 15) == .seconds(5))
        bucket.refill(now: t0 + .seconds(600))
        #expect(bucket.level == 60)
        #expect(bucket.time(toReach: 10) == .zero)
    }

    @Test("callers are granted while the request bucket has room, then refused with the expected wait")
    func requestsPerMinute() {
        var budget = RateBudget(requestsPerMinute: 2, tokensPerMinute: nil, now: t0)
        let deadline = t0 + .milliseconds(100)
        #expect(budget.request(priority: .realtime, tokens: 0, deadline: deadline, now: t0) == .granted)
        #expect(budget.request(priority: .realtime, tokens: 0, deadline: deadline, now: t0) == .granted)
        // 2 per minute: one more request needs 30 s.
        guard
            case .refused(let retryAfter) = budget.request(priority: .realtime, tokens: 0, deadline: deadline, now: t0)
        else {
            Issue.record("expected a refusal")
            return
        }
        #expect(abs((retryAfter - .seconds(30)).seconds) < 1e-6)
        #expect(budget.waiters.isEmpty)
    }

    @Test("a caller whose wait fits its deadline queues, sleeps until the refill, then is granted")
    func waitThenGranted() {
        var budget = RateBudget(requestsPerMinute: 60, tokensPerMinute: nil, now: t0)
        for _ in 0..<60 { _ = budget.request(priority: .async, tokens: 0, deadline: t0 + .seconds(5), now: t0) }
        let decision = budget.request(priority: .async, tokens: 0, deadline: t0 + .seconds(5), now: t0)
        guard case .wait(let id, let until) = decision else {
            Issue.record("expected a wait, got \(decision)")
            return
        }
        #expect(until == t0 + .seconds(1))
        #expect(budget.poll(id: id, now: t0 + .milliseconds(500)) == .wait(id: id, until: t0 + .seconds(1)))
        #expect(budget.poll(id: id, now: t0 + .seconds(1)) == .granted)
        #expect(budget.waiters.isEmpty)
    }

    @Test("a real-time caller goes before waiting async and batch callers")
    func priorityOrder() {
        var budget = RateBudget(requestsPerMinute: nil, tokensPerMinute: 600, now: t0)
        let far = t0 + .seconds(60)
        #expect(budget.request(priority: .realtime, tokens: 550, deadline: far, now: t0) == .granted)
        // 50 left; async wants 100: waits 5 s (10 tokens per second).
        guard case .wait(let asyncID, _) = budget.request(priority: .async, tokens: 100, deadline: far, now: t0) else {
            Issue.record("async should wait")
            return
        }
        // A real-time caller of 40 fits the 50 left and is not behind the async waiter.
        #expect(budget.request(priority: .realtime, tokens: 40, deadline: far, now: t0) == .granted)
        // Another async caller queues behind the first (first come, first served within a priority).
        guard
            case .wait(let secondID, let secondUntil) = budget.request(
                priority: .async, tokens: 10, deadline: far, now: t0)
        else {
            Issue.record("second async should wait")
            return
        }
        #expect(secondUntil == t0 + .seconds(10))  // 10 left, needs 100 + 10
        #expect(budget.waiters.map(\.id) == [asyncID, secondID])
        // At 9 s the first async has its 100 and goes; the second is still short.
        #expect(budget.poll(id: secondID, now: t0 + .seconds(9)) != .granted)
        #expect(budget.poll(id: asyncID, now: t0 + .seconds(9)) == .granted)
        #expect(budget.poll(id: secondID, now: t0 + .seconds(10)) == .granted)
    }

    @Test("batch callers never take the reserve that real-time callers still get")
    func batchReserve() {
        var budget = RateBudget(requestsPerMinute: nil, tokensPerMinute: 1000, now: t0)
        let soon = t0 + .milliseconds(10)
        #expect(budget.request(priority: .batch, tokens: 700, deadline: soon, now: t0) == .granted)
        // 300 left, reserve 200: batch may take 100 more, not 150.
        #expect(budget.request(priority: .batch, tokens: 150, deadline: soon, now: t0) != .granted)
        #expect(budget.request(priority: .batch, tokens: 100, deadline: soon, now: t0) == .granted)
        // Real time takes from the reserve.
        #expect(budget.request(priority: .realtime, tokens: 200, deadline: soon, now: t0) == .granted)
        #expect(budget.request(priority: .batch, tokens: 1, deadline: soon, now: t0) != .granted)
    }

    @Test("a batch caller waiting is overtaken by async and real-time callers")
    func batchWaitsBehindOthers() {
        var budget = RateBudget(requestsPerMinute: 60, tokensPerMinute: nil, now: t0)
        let far = t0 + .seconds(120)
        for _ in 0..<60 { _ = budget.request(priority: .realtime, tokens: 0, deadline: far, now: t0) }
        guard case .wait(let batch, _) = budget.request(priority: .batch, tokens: 0, deadline: far, now: t0),
            case .wait(let async, _) = budget.request(priority: .async, tokens: 0, deadline: far, now: t0)
        else {
            Issue.record("both should wait")
            return
        }
        #expect(budget.waiters.map(\.id) == [async, batch])
        #expect(budget.poll(id: batch, now: t0 + .seconds(1)) != .granted)
        #expect(budget.poll(id: async, now: t0 + .seconds(1)) == .granted)
    }

    @Test("a waiter whose expected time moves past its deadline is refused when it checks again")
    func waiterRefusedWhenOvertaken() {
        var budget = RateBudget(requestsPerMinute: 60, tokensPerMinute: nil, now: t0)
        for _ in 0..<60 { _ = budget.request(priority: .realtime, tokens: 0, deadline: t0 + .seconds(9), now: t0) }
        guard
            case .wait(let batch, _) = budget.request(priority: .batch, tokens: 0, deadline: t0 + .seconds(15), now: t0)
        else {
            Issue.record("batch should wait")
            return
        }
        // Ten real-time callers queue ahead: the batch caller's turn moves past its deadline.
        for _ in 0..<10 { _ = budget.request(priority: .realtime, tokens: 0, deadline: t0 + .seconds(60), now: t0) }
        guard case .refused(let retryAfter) = budget.poll(id: batch, now: t0 + .seconds(1)) else {
            Issue.record("batch should be refused")
            return
        }
        #expect(retryAfter > .seconds(14))
        #expect(!budget.waiters.contains { $0.id == batch })
    }

    @Test("tokens estimated before a call are corrected from its usage, debt included")
    func settleCorrectsEstimate() {
        var budget = RateBudget(requestsPerMinute: nil, tokensPerMinute: 600, now: t0)
        #expect(budget.request(priority: .realtime, tokens: 300, deadline: t0, now: t0) == .granted)
        budget.settle(estimatedTokens: 300, actualTokens: 100, now: t0)
        #expect(budget.tokens?.level == 500)
        budget.settle(estimatedTokens: 100, actualTokens: 700, now: t0)
        #expect(budget.tokens?.level == -100)
        #expect(
            budget.request(priority: .realtime, tokens: 1, deadline: t0 + .seconds(1), now: t0)
                == .refused(retryAfter: .seconds(10.1)))
    }

    @Test("a call estimated above the whole budget waits for a full bucket instead of forever")
    func oversizedCostClamped() {
        var budget = RateBudget(requestsPerMinute: nil, tokensPerMinute: 100, now: t0)
        #expect(budget.request(priority: .realtime, tokens: 5000, deadline: t0, now: t0) == .granted)
        #expect(budget.tokens?.level == 0)
    }

    @Test("a withdrawn waiter leaves the queue")
    func withdraw() {
        var budget = RateBudget(requestsPerMinute: 1, tokensPerMinute: nil, now: t0)
        _ = budget.request(priority: .realtime, tokens: 0, deadline: t0 + .seconds(120), now: t0)
        guard
            case .wait(let id, _) = budget.request(
                priority: .realtime, tokens: 0, deadline: t0 + .seconds(120), now: t0)
        else {
            Issue.record("should wait")
            return
        }
        budget.withdraw(id: id)
        #expect(budget.waiters.isEmpty)
    }
}
