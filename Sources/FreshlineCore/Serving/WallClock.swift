/// Wall-clock time in seconds since 1970, for timestamps the advisor reads back (request arrival, computation
/// time, snapshot age). Injected so that tests and simulations can run days of traffic in seconds; durations
/// keep using `ContinuousClock`.
public protocol WallClock: Sendable {
    /// Seconds since 1970, UTC.
    var now: Double { get }
}
