import Testing

@testable import FreshlineUpstream

@Suite("Circuit breaker (pure state machine, injected clock)")
struct CircuitBreakerTests {
    let t0 = ContinuousClock.now

    @Test("stays closed below the threshold, and a success resets the count of consecutive failures")
    func closedCountsConsecutiveFailures() {
        var breaker = CircuitBreaker(failureThreshold: 3, openFor: .seconds(10))
        for _ in 0..<2 {
            #expect(breaker.admit(now: t0) == .call)
            breaker.record(.failure, probe: false, now: t0)
        }
        #expect(breaker.state == .closed(failures: 2))
        breaker.record(.success, probe: false, now: t0)
        #expect(breaker.state == .closed(failures: 0))
        breaker.record(.neutral, probe: false, now: t0)
        #expect(breaker.state == .closed(failures: 0))
    }

    @Test("opens after N consecutive failures and refuses calls with the time left as retryAfter")
    func opensAfterThreshold() {
        var breaker = CircuitBreaker(failureThreshold: 3, openFor: .seconds(10))
        for _ in 0..<3 { breaker.record(.failure, probe: false, now: t0) }
        #expect(breaker.state == .open(until: t0 + .seconds(10)))
        #expect(breaker.isOpen)
        #expect(breaker.admit(now: t0 + .seconds(4)) == .refuse(retryAfter: .seconds(6)))
    }

    @Test("half-open after openFor: exactly one probe, others refused while it runs; its success closes")
    func halfOpenProbeSuccessCloses() {
        var breaker = CircuitBreaker(failureThreshold: 1, openFor: .seconds(10))
        breaker.record(.failure, probe: false, now: t0)
        let later = t0 + .seconds(10)
        #expect(breaker.admit(now: later) == .probe)
        #expect(breaker.state == .halfOpen(probing: true))
        #expect(breaker.admit(now: later) == .refuse(retryAfter: nil))
        breaker.record(.success, probe: true, now: later)
        #expect(breaker.state == .closed(failures: 0))
        #expect(breaker.admit(now: later) == .call)
    }

    @Test("a failed probe reopens for another openFor")
    func halfOpenProbeFailureReopens() {
        var breaker = CircuitBreaker(failureThreshold: 2, openFor: .seconds(5))
        breaker.record(.failure, probe: false, now: t0)
        breaker.record(.failure, probe: false, now: t0)
        let probeTime = t0 + .seconds(6)
        #expect(breaker.admit(now: probeTime) == .probe)
        breaker.record(.failure, probe: true, now: probeTime + .seconds(1))
        #expect(breaker.state == .open(until: probeTime + .seconds(6)))
        #expect(breaker.admit(now: probeTime + .seconds(2)) == .refuse(retryAfter: .seconds(4)))
    }

    @Test("a probe that tells nothing (cancelled, rate-limited) lets the next caller probe")
    func neutralProbeLetsNextCallerProbe() {
        var breaker = CircuitBreaker(failureThreshold: 1, openFor: .seconds(1))
        breaker.record(.failure, probe: false, now: t0)
        #expect(breaker.admit(now: t0 + .seconds(2)) == .probe)
        breaker.record(.neutral, probe: true, now: t0 + .seconds(2))
        #expect(breaker.state == .halfOpen(probing: false))
        #expect(breaker.admit(now: t0 + .seconds(2)) == .probe)
    }

    @Test("a call admitted before the breaker opened cannot close it when it ends well")
    func lateSuccessDoesNotClose() {
        var breaker = CircuitBreaker(failureThreshold: 1, openFor: .seconds(10))
        #expect(breaker.admit(now: t0) == .call)
        breaker.record(.failure, probe: false, now: t0)
        breaker.record(.success, probe: false, now: t0)
        #expect(breaker.state == .open(until: t0 + .seconds(10)))
    }

    @Test("a threshold below 1 is read as 1")
    func thresholdClamped() {
        var breaker = CircuitBreaker(failureThreshold: 0, openFor: .seconds(1))
        breaker.record(.failure, probe: false, now: t0)
        #expect(breaker.isOpen)
    }
}
