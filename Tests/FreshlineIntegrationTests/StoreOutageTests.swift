import AsyncHTTPClient
import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineHTTP
import FreshlineJSON
import FreshlineRuntime
import FreshlineStores
import FreshlineTestSupport
import FreshlineTesting
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOHTTP1
import Prometheus
import ServiceLifecycle
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A server on a PostgreSQL store that goes down under load and comes back: real-time predictions keep answering,
/// store calls fail fast as 503 `store_unavailable` (never hang, never 500), readiness warns why (still 200), and after the
/// restart submissions work again and every job accepted before the outage finishes.
///
/// The test runs a private PostgreSQL cluster of its own (`scripts/pg.sh`, which installs Debian's `postgresql`
/// when missing), so that it can crash it; it fails, never skips, when that cannot be done.
@Suite("Store outage (PostgreSQL stopped under load)", .serialized, .timeLimit(.minutes(10)))
struct StoreOutageTests {
    static let logger: Logger = {
        var logger = Logger(label: "freshline.test.outage")
        logger.logLevel = .warning
        return logger
    }()
    static let x = "[0.5,-1.2,0.3,2.0,0.0,1.1,-0.4,0.9,0.2,-2.2,1.5,0.7,-0.1,0.05,1.9,-0.6]"
    /// The store's call bound in this test, and the most a failing store call may take on top of it over HTTP on a
    /// busy two-core machine.
    /// 3 s: long enough for a 2,000-row submission while the other subprocess tests (servers, builds of snapshots)
    /// share the two cores; short enough that six rounds of the outage take seconds.
    static let callTimeout = Duration.seconds(3)
    static let margin = Duration.seconds(2)

    /// Progress on standard error (unbuffered: a test that hangs still shows how far it got).
    static func step(_ text: String) {
        FileHandle.standardError.write(Data("store outage: \(text)\n".utf8))
    }

    /// Runs `scripts/pg.sh` with `arguments` (durable commits: a job acknowledged with 202 before the crash must
    /// survive it) and returns its standard output.
    @discardableResult
    static func pg(_ arguments: [String]) throws -> String {
        try ScriptRunner.run("pg.sh", arguments, environment: ["FRESHLINE_PG_DURABLE": "1"])
    }

    /// One HTTP answer: status, body, `Retry-After`, and how long the call took.
    struct Answer: Sendable {
        var status: Int
        var body: JSONValue
        var retryAfter: String?
        var elapsed: Duration
    }

    static func call(_ port: Int, _ method: HTTPMethod, _ path: String, _ body: String? = nil) async throws -> Answer {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let start = ContinuousClock.now
        // The client's own timeout is far above the bound: a hang shows as a slow answer, not as a client error.
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        let elapsed = ContinuousClock.now - start
        let value = (try? JSONValue.parse(Array(bytes.readableBytesView))) ?? .null
        return Answer(
            status: Int(response.status.code), body: value, retryAfter: response.headers.first(name: "Retry-After"),
            elapsed: elapsed)
    }

    static func field(_ value: JSONValue, _ path: String...) -> String? {
        var current = value
        for key in path {
            guard case .object(let object) = current, let next = object[key] else { return nil }
            current = next
        }
        if case .string(let text) = current { return text }
        return nil
    }

    static func manifest(store: String) -> String {
        """
        version: 1
        models:
          gbdt: ZOO/gbc_binary.onnx
        features:
          live:
            model: gbdt
            latency_budget: 2s
          report:
            model: gbdt
            pattern: async
            async: {max_attempts: 10, visibility_timeout: 3s, deadline: 10m}
        store:
          location: \(store)
          call_timeout: 3s
        """
    }

    @Test("a PostgreSQL outage under load: 503 within the bound, predictions answer, everything recovers")
    func outageUnderLoad() async throws {
        let folder = "/tmp/freshline-outage-\(UInt32.random(in: 0...UInt32.max))"
        let port = Int.random(in: 20_000...45_000)
        // Fails loudly (no skip) when PostgreSQL cannot be installed or started.
        let url = try Self.pg(["start", folder, "\(port)"])
        Self.step("PostgreSQL on port \(port)")
        do {
            try await run(url: url, folder: folder, port: port)
        } catch {
            _ = try? Self.pg(["stop", folder])
            try? FileManager.default.removeItem(atPath: folder)
            throw error
        }
        _ = try? Self.pg(["stop", folder])
        try? FileManager.default.removeItem(atPath: folder)
    }

    func run(url: String, folder: String, port pgPort: Int) async throws {
        let path = try TestManifest.write(Self.manifest(store: url))
        let manifest = try ManifestLoader.load(path: path)
        #expect(manifest.store.callTimeout == Self.callTimeout)
        let stores = try StoreSet.open(for: manifest, environment: [:], logger: Self.logger)
        let registry = PrometheusCollectorRegistry()
        let runtime = try ServingRuntime(
            manifest: manifest, metricsFactory: PrometheusMetricsFactory(registry: registry), stores: stores,
            jobWorkers: 1, logger: Self.logger)
        let app = Application(router: FreshlineServer.router(runtime: runtime, registry: registry))
        let service = try #require(stores.service)
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Cancelled however the body ends (a failed expectation throws): the services stop.
            defer { group.cancelAll() }
            group.addTask { try await service.run() }
            group.addTask { try await runtime.run() }
            try await app.test(.live) { client in
                let port = try #require(client.port)
                Self.step("server on port \(port)")
                try await outage(port: port, folder: folder, pgPort: pgPort)
            }
        }
    }

    func outage(port: Int, folder: String, pgPort: Int) async throws {
        let predict = "{\"inputs\": {\"X\": \(Self.x)}}"
        let job = "{\"key\": \"a\", \"inputs\": {\"X\": \(Self.x)}}"
        // Jobs of 2,000 rows each, so that the one worker is still busy with some when the database goes down.
        let row = "{\"key\": \"a\", \"inputs\": {\"X\": \(Self.x)}}"
        let bigJob = "{\"rows\": [" + Array(repeating: row, count: 2000).joined(separator: ",") + "]}"

        // Before: jobs accepted (some still queued when the database goes down: one worker), predictions answer.
        var accepted: [String] = []
        for _ in 0..<20 {
            // Before the outage a 503 can only be the store starting up (its migrations, under the load of the
            // other subprocess tests, can outlast the call bound): try again, for at most a minute.
            var answer = try await Self.call(port, .POST, "/v1/features/report/predict", bigJob)
            let starting = ContinuousClock.now
            while answer.status == 503, ContinuousClock.now - starting < .seconds(60) {
                try await Task.sleep(for: .milliseconds(500))
                answer = try await Self.call(port, .POST, "/v1/features/report/predict", bigJob)
            }
            try #require(answer.status == 202, "submission before the outage: \(answer.status) \(answer.body)")
            accepted.append(try #require(Self.field(answer.body, "id")))
        }
        #expect(try await Self.call(port, .POST, "/v1/features/live/predict", predict).status == 200)
        #expect(try await Self.call(port, .GET, "/healthz/ready").status == 200)

        var pending = 0
        for id in accepted
        where Self.field(try await Self.call(port, .GET, "/v1/jobs/\(id)").body, "state") != "succeeded" {
            pending += 1
        }
        #expect(pending > 0, "every job had finished before the outage: the test would not show that none is lost")
        // Down, as a crash would take it: sessions cut, no checkpoint.
        Self.step("\(accepted.count) jobs accepted, \(pending) not finished yet; crashing PostgreSQL")
        try Self.pg(["crash", folder])

        // Under load for a bounded number of rounds: predictions and submissions at once.
        let limit = Self.callTimeout + Self.margin
        let firstJob = accepted[0]
        var submissionTimes: [Duration] = []
        var predictionStatuses: [Int: Int] = [:]
        for round in 0..<6 {
            Self.step("outage round \(round)")
            let answers = try await withThrowingTaskGroup(of: (Bool, Answer).self) { group in
                for _ in 0..<8 {
                    group.addTask { (true, try await Self.call(port, .POST, "/v1/features/live/predict", predict)) }
                }
                for _ in 0..<4 {
                    group.addTask { (false, try await Self.call(port, .POST, "/v1/features/report/predict", job)) }
                }
                group.addTask { (false, try await Self.call(port, .GET, "/v1/jobs/\(firstJob)")) }
                var answers: [(Bool, Answer)] = []
                for try await answer in group { answers.append(answer) }
                return answers
            }
            for (isPrediction, answer) in answers {
                if isPrediction {
                    predictionStatuses[answer.status, default: 0] += 1
                    #expect(answer.status == 200, "round \(round): a real-time prediction answered \(answer.status)")
                    continue
                }
                submissionTimes.append(answer.elapsed)
                #expect(answer.status == 503, "round \(round): a store call answered \(answer.status) \(answer.body)")
                #expect(Self.field(answer.body, "error", "code") == "store_unavailable", "\(answer.body)")
                #expect(answer.retryAfter != nil, "503 without Retry-After")
                #expect(answer.elapsed <= limit, "round \(round): a store call took \(answer.elapsed)")
            }
        }
        // A warning, not a 503: the server still answers real-time traffic, and a shared store's outage must not
        // take every replica out of rotation at once.
        let ready = try await Self.call(port, .GET, "/healthz/ready")
        #expect(ready.status == 200)
        let problems = "\(ready.body)"
        #expect(problems.contains("store unavailable:"), "readiness during the outage: \(problems)")
        // /v2 is real-time: it answers too.
        let v2 = try await Self.call(
            port, .POST, "/v2/models/gbdt/infer",
            "{\"inputs\": [{\"name\": \"X\", \"shape\": [1, 16], \"datatype\": \"FP32\", \"data\": \(Self.x)}]}")
        #expect(v2.status == 200, "/v2 during the outage: \(v2.status) \(v2.body)")

        let sorted = submissionTimes.sorted()
        let milliseconds = sorted.map { Int(($0.seconds * 1000).rounded()) }
        print(
            "store outage: \(sorted.count) store calls failed in \(milliseconds.first ?? 0)–\(milliseconds.last ?? 0) ms "
                + "(median \(milliseconds.isEmpty ? 0 : milliseconds[milliseconds.count / 2]) ms; bound "
                + "\(Self.callTimeout) + \(Self.margin) margin); predictions: \(predictionStatuses); readiness: \(problems)"
        )

        // Up again: submissions succeed, readiness recovers, and every job accepted before the outage finishes.
        Self.step("starting PostgreSQL again")
        try Self.pg(["resume", folder, "\(pgPort)"])
        let back = ContinuousClock.now
        var recovered = false
        while ContinuousClock.now - back < .seconds(30) {
            let answer = try await Self.call(port, .POST, "/v1/features/report/predict", job)
            if answer.status == 202 || answer.status == 200 {
                recovered = true
                accepted.append(try #require(Self.field(answer.body, "id")))
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(recovered, "submissions did not succeed within 30 s of the restart")
        var readyAgain = false
        while ContinuousClock.now - back < .seconds(30) {
            let ready = try await Self.call(port, .GET, "/healthz/ready")
            if ready.status == 200, !"\(ready.body)".contains("store unavailable") {
                readyAgain = true
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(readyAgain, "readiness did not recover within 30 s of the restart")
        print("store outage: submissions back after \(ContinuousClock.now - back) (readiness included)")

        var unfinished = Set(accepted)
        while !unfinished.isEmpty && ContinuousClock.now - back < .seconds(90) {
            for id in unfinished {
                let answer = try await Self.call(port, .GET, "/v1/jobs/\(id)")
                try #require(answer.status == 200, "job \(id) after the outage: \(answer.status) \(answer.body)")
                let state = Self.field(answer.body, "state")
                if state == "succeeded" {
                    unfinished.remove(id)
                } else if state == "failed" || state == "canceled" {
                    Issue.record("job \(id) ended \(state ?? "?"): \(answer.body)")
                    unfinished.remove(id)
                }
            }
            if !unfinished.isEmpty { try await Task.sleep(for: .milliseconds(500)) }
        }
        #expect(unfinished.isEmpty, "jobs accepted before the outage that never finished: \(unfinished.sorted())")
    }
}
