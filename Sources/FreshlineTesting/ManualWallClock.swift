public import FreshlineCore
internal import Synchronization

/// A wall clock that moves only when told: tests and simulations run hours of traffic in seconds, and the
/// request log, provenance and the advisor all read this time.
public final class ManualWallClock: WallClock, Sendable {
    private let time: Mutex<Double>

    /// Starts at `start` (seconds since 1970).
    public init(start: Double) { time = Mutex(start) }

    public var now: Double { time.withLock { $0 } }

    /// Moves the clock forward by `seconds`.
    public func advance(by seconds: Double) { time.withLock { $0 += seconds } }
}
