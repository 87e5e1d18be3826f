import FreshlineJSON
import Testing

@testable import FreshlineUpstream

/// A seeded generator (SplitMix64), so that jittered backoffs are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Retries: full-jitter backoff within the deadline, Retry-After")
struct RetryPolicyTests {
    let t0 = ContinuousClock.now

    @Test("backoff n is uniform in 0 … min(cap, 50 ms · 2ⁿ)")
    func backoffBounds() {
        let policy = RetryPolicy(maxRetries: 5)
        var random = SeededGenerator(state: 7)
        for retry in 0..<12 {
            let bound = min(Duration.seconds(5), .milliseconds(50) * (1 << retry))
            var largest = Duration.zero
            for _ in 0..<200 {
                let wait = policy.backoff(retry: retry, using: &random)
                #expect(wait >= .zero && wait <= bound)
                largest = max(largest, wait)
            }
            // Full jitter covers the range, not just its bottom.
            #expect(largest > bound / 2)
        }
    }

    @Test("retries while the deadline leaves room for the wait and an attempt as long as the last")
    func retriesWithinDeadline() {
        let policy = RetryPolicy(maxRetries: 2)
        var random = SeededGenerator(state: 1)
        let decision = policy.decide(
            retriesSoFar: 0, lastAttempt: .milliseconds(5), retryAfter: nil, now: t0, deadline: t0 + .seconds(1),
            using: &random)
        guard case .retry(let wait) = decision else {
            Issue.record("expected a retry, got \(decision)")
            return
        }
        #expect(wait <= .milliseconds(50))
        // An attempt took 600 ms: another cannot fit in the 500 ms left, whatever the jitter.
        let late = policy.decide(
            retriesSoFar: 0, lastAttempt: .milliseconds(600), retryAfter: nil, now: t0,
            deadline: t0 + .milliseconds(500), using: &random)
        guard case .noTimeLeft(let lateWait) = late else {
            Issue.record("expected noTimeLeft, got \(late)")
            return
        }
        #expect(lateWait <= .milliseconds(50))
    }

    @Test("retries run out after maxRetries")
    func exhausted() {
        let policy = RetryPolicy(maxRetries: 2)
        var random = SeededGenerator(state: 1)
        #expect(
            policy.decide(
                retriesSoFar: 2, lastAttempt: .milliseconds(1), retryAfter: nil, now: t0, deadline: t0 + .seconds(60),
                using: &random) == .exhausted)
    }

    @Test("a Retry-After replaces the backoff; past the deadline it gives up at once")
    func retryAfterHonoured() {
        let policy = RetryPolicy(maxRetries: 2)
        var random = SeededGenerator(state: 1)
        #expect(
            policy.decide(
                retriesSoFar: 0, lastAttempt: .milliseconds(1), retryAfter: .seconds(1), now: t0,
                deadline: t0 + .seconds(5), using: &random) == .retry(after: .seconds(1)))
        #expect(
            policy.decide(
                retriesSoFar: 0, lastAttempt: .milliseconds(1), retryAfter: .seconds(30), now: t0,
                deadline: t0 + .seconds(5), using: &random) == .noTimeLeft(wait: .seconds(30)))
    }

    @Test("Retry-After as seconds, as an HTTP date, capped, and garbage ignored")
    func retryAfterParsing() {
        #expect(RetryAfter.parse("120", unixNow: 0) == .seconds(120))
        #expect(RetryAfter.parse(" 0 ", unixNow: 0) == .zero)
        #expect(RetryAfter.parse("99999999999999999999999", unixNow: 0) == RetryAfter.maximum)
        #expect(RetryAfter.parse("86400", unixNow: 0) == RetryAfter.maximum)
        // 1994-11-06 08:49:37 UTC is 784111777.
        #expect(RetryAfter.httpDate("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", unixNow: 784_111_767) == .seconds(10))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", unixNow: 784_111_800) == .zero)
        #expect(RetryAfter.httpDate("Thu, 29 Feb 2024 23:59:60 GMT") == 1_709_251_200)
        for bad in ["", "-1", "1.5", "soon", "Sun, 06 Nov 1994 08:49:37 PST", "Sun, 32 Nov 1994 08:49:37 GMT"] {
            #expect(RetryAfter.parse(bad, unixNow: 0) == nil, "\(bad)")
        }
    }
}
