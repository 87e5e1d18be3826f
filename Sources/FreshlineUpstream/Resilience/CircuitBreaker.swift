/// The circuit breaker of one upstream, as a pure state machine: the caller asks `admit(now:)` before a call and
/// reports the call's `Outcome` after it, passing the time in, so the transitions are tested with an injected clock
/// and no I/O.
///
/// Closed, it lets every call through and counts consecutive failures; at `failureThreshold` it opens. Open, it
/// refuses every call at once (the feature's fallback ladder answers instead of a request piling onto a failing
/// server) until `openFor` has passed; then it lets exactly one probe through (half-open). The probe's success
/// closes it; its failure opens it for another `openFor`.
struct CircuitBreaker: Sendable, Equatable {
    /// Where the breaker is.
    enum State: Sendable, Equatable {
        /// Calls go through; `failures` consecutive calls have failed.
        case closed(failures: Int)
        /// Calls are refused until `until`.
        case open(until: ContinuousClock.Instant)
        /// One probe is let through; `probing` while it runs (every other call is refused meanwhile).
        case halfOpen(probing: Bool)
    }

    /// What a caller may do.
    enum Admission: Sendable, Equatable {
        /// Make the call.
        case call
        /// Make the call as the half-open probe: its outcome decides whether the breaker closes.
        case probe
        /// Do not call; try again after `retryAfter` when known.
        case refuse(retryAfter: Duration?)
    }

    /// What a call told about the upstream's health.
    enum Outcome: Sendable, Equatable {
        /// The upstream answered as expected.
        case success
        /// The upstream failed: 5xx, connection refused or reset, a malformed answer, no answer before the deadline.
        case failure
        /// Nothing learned: the call was cancelled, refused by our own rate budget, or throttled by the upstream
        /// (a 429 says the server is up).
        case neutral
    }

    private(set) var state: State = .closed(failures: 0)
    /// Consecutive failures that open the breaker (at least 1).
    let failureThreshold: Int
    /// How long the breaker stays open before a probe.
    let openFor: Duration

    init(failureThreshold: Int, openFor: Duration) {
        // The manifest loader range-checks both; clamped here too so that a hand-built spec cannot make a breaker
        // that never closes (threshold 0 would open on the first success's absence) or never reopens.
        self.failureThreshold = max(1, failureThreshold)
        self.openFor = max(.zero, openFor)
    }

    /// Whether calls are currently refused without a probe in sight (for the `circuit_open` gauge).
    var isOpen: Bool {
        if case .closed = state { false } else { true }
    }

    /// Asks to make a call at `now`.
    mutating func admit(now: ContinuousClock.Instant) -> Admission {
        switch state {
        case .closed:
            return .call
        case .open(let until):
            guard now >= until else { return .refuse(retryAfter: until - now) }
            state = .halfOpen(probing: true)
            return .probe
        case .halfOpen(let probing):
            guard !probing else { return .refuse(retryAfter: nil) }
            state = .halfOpen(probing: true)
            return .probe
        }
    }

    /// Reports how an admitted call ended; `probe` is whether `admit` answered `.probe` for it.
    mutating func record(_ outcome: Outcome, probe: Bool, now: ContinuousClock.Instant) {
        if probe {
            switch outcome {
            case .success: state = .closed(failures: 0)
            case .failure: state = .open(until: now + openFor)
            // The probe told nothing: the next caller probes instead.
            case .neutral: state = .halfOpen(probing: false)
            }
            return
        }
        // A call admitted while closed that ends after another call opened the breaker changes nothing: only the
        // probe decides when it closes again.
        guard case .closed(let failures) = state else { return }
        switch outcome {
        case .success: state = .closed(failures: 0)
        case .failure:
            state = failures + 1 >= failureThreshold ? .open(until: now + openFor) : .closed(failures: failures + 1)
        case .neutral: break
        }
    }
}
