internal import FreshlineCore

/// A token bucket refilled continuously: `capacity` units, `capacity` per minute. The level may go below zero when a
/// call used more than was estimated before it (tokens corrected from `usage`): the debt delays the next callers.
struct TokenBucket: Sendable, Equatable {
    /// The most the bucket holds: one minute's allowance.
    let capacity: Double
    /// Units added per second.
    let perSecond: Double
    /// The units available at `updated`.
    private(set) var level: Double
    private(set) var updated: ContinuousClock.Instant

    /// A full bucket of `perMinute` units (at least 1).
    init(perMinute: Int, now: ContinuousClock.Instant) {
        capacity = Double(max(1, perMinute))
        perSecond = capacity / 60
        level = capacity
        updated = now
    }

    /// Adds what flowed in since the last update, up to the capacity.
    mutating func refill(now: ContinuousClock.Instant) {
        guard now > updated else { return }
        level = min(capacity, level + (now - updated).seconds * perSecond)
        updated = now
    }

    /// Takes `amount` units (the caller has checked there is room, or is settling a debt).
    mutating func take(_ amount: Double) { level -= amount }

    /// Gives `amount` units back, up to the capacity.
    mutating func give(_ amount: Double) { level = min(capacity, level + amount) }

    /// How long until the level reaches `target` at the refill rate; zero if it already has.
    func time(toReach target: Double) -> Duration {
        let deficit = target - level
        guard deficit > 0 else { return .zero }
        return .seconds(deficit / perSecond)
    }
}
