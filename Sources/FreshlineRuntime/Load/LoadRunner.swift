internal import AsyncHTTPClient
internal import Foundation
public import FreshlineCore
internal import FreshlineJSON
internal import NIOCore
internal import NIOHTTP1
internal import Synchronization

/// Sends a load test's schedule to a server, open loop: each request leaves at its scheduled time whatever the
/// earlier answers (a slow server does not slow the sender down, so its queueing is measured, not hidden — no
/// coordinated omission), and its latency counts from that scheduled time, so waiting for a connection or a place
/// under `concurrencyLimit` counts too. Every request carries `X-Freshline-Load-Test: <run id>`: the server keeps it
/// out of the request log.
public struct LoadRunner: Sendable {
    /// Where and how to send.
    public struct Target: Sendable {
        /// The server's base URL (`http://127.0.0.1:8080`).
        public var url: String
        /// A bearer token (`predict` scope) when the server requires one.
        public var token: String?
        /// The most requests in flight (and connections); a request due while all are taken waits, and its wait
        /// counts in its latency.
        public var concurrencyLimit: Int
        /// How long one request may take before it counts as a timeout.
        public var requestTimeout: Duration

        public init(
            url: String, token: String? = nil, concurrencyLimit: Int = 256, requestTimeout: Duration = .seconds(30)
        ) {
            self.url = url
            self.token = token
            self.concurrencyLimit = concurrencyLimit
            self.requestTimeout = requestTimeout
        }
    }

    /// The live figures, for the progress line.
    public struct Progress: Sendable {
        public var elapsedSeconds: Double
        public var durationSeconds: Double
        public var scheduled: Int
        public var sent: Int
        public var answered: Int
        public var inFlight: Int
        public var shed: Int
        public var failed: Int
    }

    /// The header that marks a load test's requests (its value is the run's id).
    public static let header = "X-Freshline-Load-Test"

    public let feature: String
    public let target: Target

    public init(feature: String, target: Target) {
        self.feature = feature
        self.target = target
    }

    /// One answered (or failed) request: its outcome, the answer's source and its latency from the scheduled time.
    struct Observation: Sendable {
        var outcome: String
        var source: String?
        var seconds: Double
    }

    /// The run's counts and observations, shared by the sender, the requests and the progress ticker.
    private final class Tally: Sendable {
        let state = Mutex(Counters())
    }

    private struct Counters: Sendable {
        var sent = 0
        var answered = 0
        var shed = 0
        var failed = 0
        var done = 0
        var observations: [Observation] = []
    }

    /// Runs the schedule; `progress` is called about four times a second from another task.
    public func run(
        _ schedule: LoadSchedule, id: String, progress: @escaping @Sendable (Progress) -> Void = { _ in }
    ) async throws -> LoadTestResult {
        let tally = Tally()
        let clock = ContinuousClock()
        let start = clock.now
        let startedAt = Date().timeIntervalSince1970
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.proxy = nil
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, target.concurrencyLimit))
        configuration.timeout = .init(connect: .seconds(10))
        let url = target.url.hasSuffix("/") ? String(target.url.dropLast()) : target.url
        let endpoint = "\(url)/v1/features/\(feature)/predict"
        let timeout = TimeAmount.nanoseconds(Int64(target.requestTimeout.seconds * 1e9))
        let limit = max(1, target.concurrencyLimit)
        let token = target.token
        let snapshot: @Sendable () -> Progress = {
            tally.state.withLock { c in
                Progress(
                    elapsedSeconds: (clock.now - start).seconds, durationSeconds: schedule.durationSeconds,
                    scheduled: schedule.requests.count, sent: c.sent, answered: c.answered, inFlight: c.sent - c.done,
                    shed: c.shed, failed: c.failed)
            }
        }
        let sendingEnded = try await HTTPClient.withHTTPClient(configuration: configuration) { client in
            await withTaskGroup(of: Void.self) { ticker in
                ticker.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(250))
                        progress(snapshot())
                    }
                }
                let ended = await withTaskGroup(of: Void.self) { group in
                    var running = 0
                    for request in schedule.requests {
                        let due = start + .seconds(request.offset)
                        if due > clock.now { try? await Task.sleep(until: due, clock: clock) }
                        if Task.isCancelled { break }
                        // At the limit, the next request waits for a place (its latency still counts from `due`).
                        while running >= limit, await group.next() != nil { running -= 1 }
                        running += 1
                        tally.state.withLock { $0.sent += 1 }
                        let body = request.body.serialized()
                        group.addTask {
                            let observed = await Self.send(
                                client: client, endpoint: endpoint, body: body, id: id, token: token,
                                timeout: timeout, due: due, clock: clock)
                            tally.state.withLock { c in
                                c.done += 1
                                c.observations.append(observed)
                                if observed.outcome == "ok" { c.answered += 1 }
                                if Self.isShed(observed.outcome) { c.shed += 1 }
                                if observed.outcome != "ok" && !Self.isShed(observed.outcome) { c.failed += 1 }
                            }
                        }
                    }
                    let ended = clock.now
                    for await _ in group {}
                    return ended
                }
                ticker.cancelAll()
                return ended
            }
        }
        progress(snapshot())
        let endedAt = Date().timeIntervalSince1970
        let c = tally.state.withLock { $0 }
        let sendingSeconds = max((sendingEnded - start).seconds, schedule.requests.last?.offset ?? 0, 1e-3)
        var outcomes: [String: Int] = [:]
        for o in c.observations { outcomes[o.outcome, default: 0] += 1 }
        let answered = c.observations.filter { $0.outcome == "ok" }
        let fallback = answered.filter {
            $0.source == PredictionSource.fallback.rawValue || $0.source == PredictionSource.default.rawValue
        }.count
        return LoadTestResult(
            id: id, feature: feature, startedAt: startedAt, endedAt: endedAt, speed: schedule.speed,
            durationSeconds: schedule.durationSeconds, sent: c.sent, answered: answered.count,
            sources: AdviceService.latency(observations: answered.map { ($0.source ?? "none", $0.seconds) }),
            shed: c.shed, fallback: fallback, errors: c.sent - answered.count - c.shed,
            achievedRate: Double(c.sent) / sendingSeconds, server: url, outcomes: outcomes)
    }

    /// Outcomes that are the server shedding load: 503 `overloaded` (the in-flight bound or the deadline
    /// admission) and 429.
    static func isShed(_ outcome: String) -> Bool { outcome == "overloaded" || outcome == "too_many_requests" }

    private static func send(
        client: HTTPClient, endpoint: String, body: [UInt8], id: String, token: String?, timeout: TimeAmount,
        due: ContinuousClock.Instant, clock: ContinuousClock
    ) async -> Observation {
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: header, value: id)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: timeout)
            let bytes = try await response.body.collect(upTo: 1 << 22)
            let seconds = (clock.now - due).seconds
            return classify(status: Int(response.status.code), body: Array(buffer: bytes), seconds: seconds)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            return Observation(outcome: "timeout", source: nil, seconds: (clock.now - due).seconds)
        } catch {
            return Observation(outcome: "connection", source: nil, seconds: (clock.now - due).seconds)
        }
    }

    /// The outcome of one answer: `ok` with the answer's source for a 200, else the error's code (`overloaded`,
    /// `unknown_key`, …), `too_many_requests` for a 429 without one, or `http_<status>`.
    static func classify(status: Int, body: [UInt8], seconds: Double) -> Observation {
        let json = try? JSONValue.parse(body)
        guard case .object(let object)? = json else {
            return Observation(
                outcome: status == 200 ? "bad_answer" : status == 429 ? "too_many_requests" : "http_\(status)",
                source: nil, seconds: seconds)
        }
        if status == 200 {
            guard case .string(let source)? = object["source"] else {
                return Observation(outcome: "bad_answer", source: nil, seconds: seconds)
            }
            return Observation(outcome: "ok", source: source, seconds: seconds)
        }
        if case .object(let error)? = object["error"], case .string(let code)? = error["code"] {
            return Observation(outcome: code, source: nil, seconds: seconds)
        }
        return Observation(
            outcome: status == 429 ? "too_many_requests" : "http_\(status)", source: nil, seconds: seconds)
    }
}
