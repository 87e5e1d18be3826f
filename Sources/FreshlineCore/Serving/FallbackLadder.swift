/// The freshness contract and the fallback ladder, as one pure rule: given what the snapshot lookup found, the
/// caller's contract and the feature's policies, which step answers the request. The feature server performs the
/// step (looks up, computes, counts the rung in its metrics, builds the error); this type decides, and holds no
/// state, clock or metrics, so every combination is table-tested (`FallbackLadderTests`).
///
/// The rungs, in order: the snapshot (fresh), a computation now, the stale snapshot value, the feature's
/// default, an error. Which of them a feature climbs is its manifest's `batch.cold_start` (key not in the
/// snapshot), `batch.on_stale` (key there but older than the contract) and `on_failure` (a default or not).
/// Composed inputs (`compose:`) have their own, shorter ladder: the value, the input's default, an error.
public enum FallbackLadder {
    /// What the snapshot lookup found for the request's key.
    public enum Lookup: Sendable, Equatable {
        /// No snapshot is loaded (none published yet, or not yet opened by this server).
        case noSnapshot
        /// The snapshot does not hold the key.
        case missing
        /// The snapshot holds the key, computed this many seconds ago.
        case found(ageSeconds: Double)
    }

    /// A feature's policies, as the ladder reads them.
    public struct Policies: Sendable, Equatable {
        public var coldStart: BatchSpec.ColdStart
        public var onStale: BatchSpec.OnStale
        /// Whether the feature has a default (`on_failure: {default: …}`).
        public var hasDefault: Bool

        public init(coldStart: BatchSpec.ColdStart, onStale: BatchSpec.OnStale, hasDefault: Bool) {
            self.coldStart = coldStart
            self.onStale = onStale
            self.hasDefault = hasDefault
        }
    }

    /// The next rung when a computation made now cannot answer (shed, timed out, failed).
    public enum OnComputeFailure: Sendable, Equatable {
        /// The feature's default if it has one, else the computation's error.
        case defaultElseError
        /// The stale snapshot value, flagged `stale` (a caller's mistake, `bad_request`, is still an error).
        case staleSnapshot
    }

    /// Why no rung can answer.
    public enum Refusal: Sendable, Equatable {
        /// No snapshot is loaded: the server's state, not the caller's key (503 `unavailable`).
        case noSnapshot
        /// The snapshot does not hold the key (404 `unknown_key`).
        case unknownKey
        /// The snapshot does not hold the key and the request carries no inputs to compute it (404 `unknown_key`).
        case unknownKeyWithoutInputs
        /// The snapshot's value is older than the contract accepts (503 `stale`).
        case stale
    }

    /// The step that answers a request.
    public enum Step: Sendable, Equatable {
        /// The snapshot's value, within the contract (`source: batch`).
        case snapshot
        /// A computation now (`source: realtime`); when it cannot answer, `onFailure`.
        case compute(onFailure: OnComputeFailure)
        /// The snapshot's value, older than the contract (`source: fallback`, `stale: true`).
        case staleSnapshot
        /// The feature's default (`source: default`).
        case defaultValue
        /// An error.
        case refuse(Refusal)
    }

    /// The step for a request with no snapshot to consult: a feature without a batch section, or a request
    /// without a key. It is computed now; the default answers when that cannot.
    public static let computeOnly = Step.compute(onFailure: .defaultElseError)

    /// The step for a keyed request to a feature with a batch section.
    /// - Parameters:
    ///   - lookup: what the snapshot holds for the key.
    ///   - contract: the effective freshness contract (the request's `max_staleness`, else the feature's).
    ///   - policies: the feature's `cold_start`, `on_stale` and whether it has a default.
    ///   - carriesInputs: whether the request carries every model input a computation needs (evaluated only when a
    ///     rung depends on it: a fresh hit, the common case, does not look at the inputs).
    public static func step(
        lookup: Lookup, contract: FreshnessContract, policies: Policies, carriesInputs: @autoclosure () -> Bool
    ) -> Step {
        switch lookup {
        case .noSnapshot, .missing:
            let refusal: Refusal = lookup == .noSnapshot ? .noSnapshot : .unknownKey
            switch policies.coldStart {
            case .realtime:
                if carriesInputs() { return computeOnly }
                return .refuse(lookup == .noSnapshot ? .noSnapshot : .unknownKeyWithoutInputs)
            case .default:
                return policies.hasDefault ? .defaultValue : .refuse(refusal)
            case .error:
                return .refuse(refusal)
            }
        case .found(let ageSeconds):
            if contract.accepts(ageSeconds: ageSeconds) { return .snapshot }
            switch policies.onStale {
            case .realtime:
                return carriesInputs() ? .compute(onFailure: .staleSnapshot) : .staleSnapshot
            case .fallback:
                return .staleSnapshot
            case .error:
                return policies.hasDefault ? .defaultValue : .refuse(.stale)
            }
        }
    }

    /// The step for one composed input.
    public enum ComposedStep: Sendable, Equatable {
        /// The source snapshot's value, within the input's `max_staleness`.
        case value
        /// The input's `on_missing` default (`stale` when the value was there but too old).
        case defaultValue(stale: Bool)
        /// An error.
        case refuse(Refusal)
    }

    /// The step for a composed input.
    /// - Parameters:
    ///   - lookup: what the source feature's snapshot holds for the key (for the named output).
    ///   - maxStaleness: the input's `max_staleness`, else the source feature's; `nil` accepts any age.
    ///   - hasDefault: whether the input's `on_missing` is a default value.
    public static func composedStep(lookup: Lookup, maxStaleness: Duration?, hasDefault: Bool) -> ComposedStep {
        var stale = false
        if case .found(let ageSeconds) = lookup {
            if FreshnessContract(maxStaleness: maxStaleness).accepts(ageSeconds: ageSeconds) { return .value }
            stale = true
        }
        if hasDefault { return .defaultValue(stale: stale) }
        if stale { return .refuse(.stale) }
        return .refuse(lookup == .noSnapshot ? .noSnapshot : .unknownKey)
    }
}

extension FreshnessContract {
    /// Whether an answer `ageSeconds` old satisfies the contract. The age comes from timestamps in the store: a
    /// value that is not a finite, plausible number of seconds (over a thousand years) is treated as too old.
    public func accepts(ageSeconds: Double) -> Bool {
        guard let maxStaleness else { return true }
        guard ageSeconds.isFinite, ageSeconds < 3.2e10 else { return false }
        return .milliseconds(Int64(max(0, ageSeconds) * 1000)) <= maxStaleness
    }
}
