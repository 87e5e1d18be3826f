internal import Foundation
public import FreshlineCore

/// The system's wall clock.
public struct SystemWallClock: WallClock {
    public init() {}
    public var now: Double { Date().timeIntervalSince1970 }
}

/// A wall clock that starts at the system's time and runs `speed` times faster: for demos and simulations that
/// show hours of traffic in minutes (`freshline serve --clock-speed 120`). Only the stamps the advisor reads
/// (request arrival, computation time, snapshot input time) use it; deadlines, leases and cron use real time.
public struct AcceleratedWallClock: WallClock {
    let origin: Double
    public let speed: Double

    public init(speed: Double) {
        origin = Date().timeIntervalSince1970
        self.speed = speed
    }

    public var now: Double { origin + (Date().timeIntervalSince1970 - origin) * speed }
}
