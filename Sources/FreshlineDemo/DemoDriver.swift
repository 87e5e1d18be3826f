internal import AsyncHTTPClient
internal import Foundation
internal import NIOCore
internal import NIOHTTP1
internal import Synchronization

/// Drives the worked example's traffic at a running server over loopback HTTP: card transactions for
/// `fraud_check`, shopping sessions for `recommendations`, dashboard reads of `account_report`, each from a few
/// paced streams.
public final class DemoDriver: Sendable {
    /// Requests (rows for the report) per second of real time, and how often a shopper's intent changes.
    public struct Rates: Sendable {
        public var fraud: Double
        public var recommendations: Double
        public var reportRows: Double
        /// The probability that a user's current intent changes before a recommendation request (0: sessions
        /// never change).
        public var sessionDrift: Double

        public init(fraud: Double, recommendations: Double, reportRows: Double, sessionDrift: Double) {
            self.fraud = fraud
            self.recommendations = recommendations
            self.reportRows = reportRows
            self.sessionDrift = sessionDrift
        }
    }

    /// What was sent so far.
    public struct Counts: Sendable {
        public var fraud = 0
        public var recommendations = 0
        public var reportRows = 0
        /// Answers other than 200, and requests that failed.
        public var failures = 0
        public var lastFailure: String?
    }

    let world: DemoWorld
    let base: String
    let token: String
    let rates: Rates
    let seed: UInt64
    private let counts = Mutex(Counts())

    public init(world: DemoWorld, port: Int, token: String, rates: Rates, seed: UInt64) {
        self.world = world
        base = "http://127.0.0.1:\(port)"
        self.token = token
        self.rates = rates
        self.seed = seed
    }

    public var sent: Counts { counts.withLock { $0 } }

    /// Waits until the server answers `/healthz/live`; false after `timeout`.
    public func waitUntilLive(timeout: Duration = .seconds(30)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let request = HTTPClientRequest(url: "\(base)/healthz/live")
            if let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)),
                response.status.code == 200
            {
                _ = try? await response.body.collect(upTo: 1 << 16)
                return true
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// Sends traffic for `duration`, calling `progress` every `every`.
    public func run(
        for duration: Duration, every: Duration = .seconds(10), progress: @escaping @Sendable (Counts) -> Void
    )
        async
    {
        let deadline = ContinuousClock.now + duration
        await withTaskGroup(of: Void.self) { group in
            for stream in 0..<2 where rates.fraud > 0 {
                group.addTask { await self.fraud(stream: stream, rate: self.rates.fraud / 2, until: deadline) }
            }
            for stream in 0..<4 where rates.recommendations > 0 {
                group.addTask {
                    await self.recommendations(stream: stream, rate: self.rates.recommendations / 4, until: deadline)
                }
            }
            for stream in 0..<2 where rates.reportRows > 0 {
                group.addTask {
                    await self.report(stream: stream, rowsPerSecond: self.rates.reportRows / 2, until: deadline)
                }
            }
            group.addTask {
                while ContinuousClock.now < deadline {
                    try? await Task.sleep(until: min(deadline, ContinuousClock.now + every), clock: .continuous)
                    progress(self.sent)
                }
            }
        }
    }

    private func fraud(stream: Int, rate: Double, until deadline: ContinuousClock.Instant) async {
        var traffic = DemoTraffic(seed: seed, stream: stream)
        await paced(rate: rate, until: deadline) {
            let t = traffic.transaction(world)
            let body: [String: Any] = ["key": t.id, "inputs": ["tx": t.tx, "user_id": t.user]]
            await self.post("fraud_check", body) { $0.fraud += 1 }
        }
    }

    private func recommendations(stream: Int, rate: Double, until deadline: ContinuousClock.Instant) async {
        var traffic = DemoTraffic(seed: seed, stream: 100 + stream)
        // Each stream owns a quarter of the users, so that a user's intent lives in one place.
        let users = Array(stride(from: stream, to: world.users.count, by: 4))
        await paced(rate: rate, until: deadline) {
            let user = users[traffic.user(world) % users.count]
            let session = traffic.session(world, user: user, drift: rates.sessionDrift)
            let body: [String: Any] = ["key": world.users[user].id, "inputs": ["session": session]]
            await self.post("recommendations", body) { $0.recommendations += 1 }
        }
    }

    private func report(stream: Int, rowsPerSecond: Double, until deadline: ContinuousClock.Instant) async {
        var traffic = DemoTraffic(seed: seed, stream: 200 + stream)
        let rowsPerRequest = 25
        await paced(rate: rowsPerSecond / Double(rowsPerRequest), until: deadline) {
            let rows = (0..<rowsPerRequest).map { _ -> [String: Any] in
                let account = traffic.account(world)
                return ["key": account.id, "inputs": ["X": account.features]]
            }
            await self.post("account_report", ["rows": rows]) { $0.reportRows += rowsPerRequest }
        }
    }

    /// Calls `send` `rate` times a second until the deadline (catching up without bursts beyond one second).
    private func paced(rate: Double, until deadline: ContinuousClock.Instant, _ send: () async -> Void) async {
        guard rate > 0 else { return }
        let interval = Duration.nanoseconds(Int64(1e9 / rate))
        var next = ContinuousClock.now
        while ContinuousClock.now < deadline && !Task.isCancelled {
            await send()
            next += interval
            let now = ContinuousClock.now
            if next > now {
                try? await Task.sleep(until: next, clock: .continuous)
            } else if now - next > .seconds(1) {
                next = now
            }
        }
    }

    private func post(_ feature: String, _ body: [String: Any], count: (inout Counts) -> Void) async {
        var request = HTTPClientRequest(url: "\(base)/v1/features/\(feature)/predict")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        guard let data = try? JSONSerialization.data(withJSONObject: body) else { return }
        request.body = .bytes(ByteBuffer(bytes: data))
        var problem: String?
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            let text = try await response.body.collect(upTo: 1 << 20)
            if response.status.code != 200 {
                problem = "\(feature): \(response.status.code) \(String(buffer: text).prefix(200))"
            }
        } catch {
            problem = "\(feature): \(error)"
        }
        counts.withLock {
            count(&$0)
            if let problem {
                $0.failures += 1
                $0.lastFailure = problem
            }
        }
    }
}
