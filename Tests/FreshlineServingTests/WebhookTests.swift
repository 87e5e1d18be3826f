import AsyncHTTPClient
import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineHTTP
import FreshlineJSON
import FreshlineStore
import FreshlineTestSupport
import FreshlineTesting
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOHTTP1
import Prometheus
import Synchronization
import Testing

@testable import FreshlineRuntime

/// Webhooks for job events: signed like Stripe's, retried while the receiver is down, delivered once it is up,
/// logged per job, redeliverable, and refused for targets outside the allow-list.
@Suite("Webhooks")
struct WebhookTests {
    static let secret = "whsec_test_0123456789"

    /// A free loopback port (bound and released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw CancellationError() }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    struct Received: Sendable {
        var headers: HTTPFields
        var body: [UInt8]
    }

    @Test("a receiver that is down, then up: delivered once with a valid signature; redelivery keeps the event id")
    func downThenUp() async throws {
        setenv("FRESHLINE_TEST_WEBHOOK_SECRET", Self.secret, 1)
        let path = try TestManifest.write(
            """
            version: 1
            models:
              gbdt: ZOO/gbc_binary.onnx
            features:
              report:
                model: gbdt
                pattern: async
            server:
              webhooks:
                secret_env: FRESHLINE_TEST_WEBHOOK_SECRET
                allow_loopback: true
                backoff: 100ms
                max_backoff: 300ms
                retry_window: 5m
                timeout: 10s  # on a busy machine a late answer is a retry: a second delivery
            """)
        let manifest = try ManifestLoader.load(path: path)
        let store = try SQLiteStore(
            path: URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("state.sqlite").path)
        let registry = PrometheusCollectorRegistry()
        let runtime = try ServingRuntime(
            manifest: manifest, metricsFactory: PrometheusMetricsFactory(registry: registry), requestLogStore: nil,
            jobStore: store, jobWorkers: 1, webhookStore: store, logger: Logger(label: "test"))
        let app = Application(router: FreshlineServer.router(runtime: runtime, registry: registry))
        let port = try Self.freePort()
        let received = Mutex<[Received]>([])

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runtime.run() }
            try await app.test(.router) { client in
                let x = "[0.5,-1.2,0.3,2.0,0.0,1.1,-0.4,0.9,0.2,-2.2,1.5,0.7,-0.1,0.05,1.9,-0.6]"
                let body = #"{"key": "a", "inputs": {"X": \#(x)}, "webhook_url": "http://127.0.0.1:\#(port)/hook"}"#
                let id = try await client.execute(
                    uri: "/v1/features/report/jobs", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: body)
                ) { response -> String in
                    #expect(response.status == .accepted)
                    guard case .string(let id)? = try HTTPAPITests.json(response.body)["id"] else { return "" }
                    return id
                }
                // Down: attempts fail and are retried.
                try await Wait.until("two failed attempts") {
                    let log = try await store.deliveries(jobID: id)
                    return (log.first?.attempts.count ?? 0) >= 2
                }
                // Up: the next attempt delivers.
                let router = Router()
                router.post("/hook") { request, _ -> HTTPResponse.Status in
                    var request = request
                    let bytes = try await request.collectBody(upTo: 1 << 20)
                    received.withLock {
                        $0.append(Received(headers: request.headers, body: Array(bytes.readableBytesView)))
                    }
                    return .ok
                }
                // Resident (never stopped): see ResidentServer.
                _ = try await ResidentServer.start { running in
                    Application(
                        router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
                        onServerRunning: running)
                }
                try await Wait.until("the delivery") {
                    try await store.deliveries(jobID: id).first?.delivery.state == .delivered
                }
                try await Task.sleep(for: .milliseconds(700))
                let got = received.withLock { $0 }
                #expect(got.count == 1, "delivered once")
                let first = try #require(got.first)
                let signature = try #require(first.headers[HTTPField.Name("Freshline-Signature")!])
                let parts = Dictionary(
                    uniqueKeysWithValues: signature.split(separator: ",").map { part in
                        let kv = part.split(separator: "=", maxSplits: 1)
                        return (String(kv[0]), String(kv.count > 1 ? kv[1] : ""))
                    })
                let t = try #require(parts["t"])
                let expected = Digests.hmacSHA256Hex(
                    key: Array(Self.secret.utf8), message: Array("\(t).".utf8) + first.body)
                #expect(parts["v1"] == expected, "the signature verifies")
                guard case .object(let event) = try JSONValue.parse(first.body) else {
                    Issue.record("the body is not an object")
                    return
                }
                #expect(event["type"] == .string("job.succeeded"))
                let eventID = try #require(first.headers[HTTPField.Name("Freshline-Event-Id")!])
                #expect(event["id"] == .string(eventID))
                guard case .object(let data)? = event["data"] else { return }
                #expect(data["id"] == .string(id))
                #expect(data["result"] != nil)

                // The delivery log on the job.
                let job = try await client.execute(uri: "/v1/jobs/\(id)", method: .get) {
                    try HTTPAPITests.json($0.body)
                }
                guard case .object(let webhook)? = job["webhook"], case .array(let deliveries)? = webhook["deliveries"],
                    case .object(let delivery)? = deliveries.first, case .array(let attempts)? = delivery["attempts"]
                else {
                    Issue.record("no delivery log: \(job)")
                    return
                }
                #expect(delivery["state"] == .string("delivered"))
                #expect(attempts.count >= 3)
                // The submitter sees each attempt's outcome and status class only: no exact status, no error text.
                for case .object(let attempt) in attempts {
                    #expect(Set(attempt.keys) == ["attempt", "at", "outcome", "status_class"], "\(attempt)")
                }
                #expect(attempts.first == Self.attempt(1, attempts.first, outcome: "failed", statusClass: "none"))
                #expect(
                    attempts.last
                        == Self.attempt(attempts.count, attempts.last, outcome: "delivered", statusClass: "2xx"))
                // Operators keep the full story in the store.
                let stored = try #require(try await store.deliveries(jobID: id).first?.attempts)
                #expect(stored.first?.status == nil && stored.first?.error != nil)
                #expect(stored.last?.status == 200 && stored.last?.error == nil)

                // Redelivery: the same event id again.
                try await client.execute(uri: "/v1/jobs/\(id)/webhook/redeliver", method: .post) { response in
                    #expect(response.status == .accepted)
                }
                try await Wait.until("the redelivery") { received.withLock { $0.count } == 2 }
                let again = received.withLock { $0[1] }
                #expect(again.headers[HTTPField.Name("Freshline-Event-Id")!] == eventID)

                // Targets outside the allow-list are refused at submission.
                for target in [
                    "http://10.1.2.3/h", "http://169.254.169.254/latest", "http://192.168.0.5/h", "ftp://x/y",
                    "http://[::ffff:169.254.169.254]/latest", "http://[64:ff9b::a9fe:a9fe]/latest",
                    "http://[::127.0.0.1]/h", "http://[2002:7f00:1::]/h", "http://[::ffff:0:7f00:1]/h",
                    "http://[fec0::1]/h", "http://198.18.0.1/h", "http://192.0.0.8/h",
                ] {
                    let status = try await client.execute(
                        uri: "/v1/features/report/jobs", method: .post, headers: [.contentType: "application/json"],
                        body: ByteBuffer(string: #"{"key": "a", "inputs": {"X": \#(x)}, "webhook_url": "\#(target)"}"#)
                    ) { $0.status }
                    #expect(status == .badRequest, "\(target)")
                }
            }
            group.cancelAll()
        }
    }

    @Test("retries stop at the end of the window")
    func retryWindow() {
        let settings = WebhookSettings(retryWindow: .seconds(10), backoffBase: .seconds(1), backoffMax: .seconds(4))
        #expect(settings.nextAttempt(after: 1, now: 100, createdAt: 100) == 101)
        #expect(settings.nextAttempt(after: 3, now: 105, createdAt: 100) == 109)
        #expect(settings.nextAttempt(after: 5, now: 107, createdAt: 100) == nil)
    }

    @Test("HMAC-SHA256 matches RFC 4231 and the known Stripe-style example")
    func hmac() {
        #expect(
            Digests.hmacSHA256Hex(
                key: Array("key".utf8), message: Array("The quick brown fox jumps over the lazy dog".utf8))
                == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
        // RFC 4231 test case 2.
        #expect(
            Digests.hmacSHA256Hex(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // A key longer than the block is hashed first (RFC 4231 test case 6).
        #expect(
            Digests.hmacSHA256Hex(
                key: [UInt8](repeating: 0xaa, count: 131),
                message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    /// The attempt as the submitter should see it: `actual`'s own `at`, the given number, outcome and class.
    static func attempt(_ number: Int, _ actual: JSONValue?, outcome: String, statusClass: String) -> JSONValue {
        guard case .object(let object)? = actual else { return .null }
        return .object([
            "attempt": .integer(Int64(number)), "at": object["at"] ?? .null, "outcome": .string(outcome),
            "status_class": .string(statusClass),
        ])
    }

    /// A runtime with one async feature and webhooks to loopback allowed, on a fresh SQLite store.
    static func runtime(backoff: String) throws -> (ServingRuntime, SQLiteStore, PrometheusCollectorRegistry) {
        setenv("FRESHLINE_TEST_WEBHOOK_SECRET", Self.secret, 1)
        let path = try TestManifest.write(
            """
            version: 1
            models:
              gbdt: ZOO/gbc_binary.onnx
            features:
              report:
                model: gbdt
                pattern: async
            server:
              webhooks:
                secret_env: FRESHLINE_TEST_WEBHOOK_SECRET
                allow_loopback: true
                backoff: \(backoff)
                max_backoff: \(backoff)
                retry_window: 5m
                timeout: 10s
            """)
        let store = try SQLiteStore(
            path: URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("state.sqlite").path)
        let registry = PrometheusCollectorRegistry()
        let runtime = try ServingRuntime(
            manifest: try ManifestLoader.load(path: path),
            metricsFactory: PrometheusMetricsFactory(registry: registry), requestLogStore: nil, jobStore: store,
            jobWorkers: 1, webhookStore: store, logger: Logger(label: "test"))
        return (runtime, store, registry)
    }

    @Test("a target answering 302 to another listener: the redirect is not followed and the attempt fails as 3xx")
    func redirectNotFollowed() async throws {
        let (runtime, store, registry) = try Self.runtime(backoff: "200ms")
        let app = Application(router: FreshlineServer.router(runtime: runtime, registry: registry))
        let (targetPort, otherPort) = (try Self.freePort(), try Self.freePort())
        let hits = Mutex<(target: Int, other: Int)>((0, 0))

        // The allowed target redirects; the other listener stands for what the redirect points at (169.254.169.254
        // in an attack) and counts every request it gets, whatever the method or path.
        let targetRouter = Router()
        targetRouter.post("/hook") { _, _ -> Response in
            hits.withLock { $0.target += 1 }
            return Response(status: .found, headers: [.location: "http://127.0.0.1:\(otherPort)/stolen"])
        }
        let otherRouter = Router()
        for method in [HTTPRequest.Method.get, .post, .put, .head] {
            otherRouter.on("**", method: method) { _, _ -> HTTPResponse.Status in
                hits.withLock { $0.other += 1 }
                return .ok
            }
        }
        // Resident (never stopped): the dispatcher's retries may still connect as the test ends (see ResidentServer).
        _ = try await ResidentServer.start { running in
            Application(
                router: targetRouter, configuration: .init(address: .hostname("127.0.0.1", port: targetPort)),
                onServerRunning: running)
        }
        _ = try await ResidentServer.start { running in
            Application(
                router: otherRouter, configuration: .init(address: .hostname("127.0.0.1", port: otherPort)),
                onServerRunning: running)
        }

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runtime.run() }
            try await app.test(.router) { client in
                let x = "[0.5,-1.2,0.3,2.0,0.0,1.1,-0.4,0.9,0.2,-2.2,1.5,0.7,-0.1,0.05,1.9,-0.6]"
                let body =
                    #"{"key": "a", "inputs": {"X": \#(x)}, "webhook_url": "http://127.0.0.1:\#(targetPort)/hook"}"#
                let id = try await client.execute(
                    uri: "/v1/features/report/jobs", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: body)
                ) { response -> String in
                    guard case .string(let id)? = try HTTPAPITests.json(response.body)["id"] else { return "" }
                    return id
                }
                // Two answered attempts (the listeners may still be starting at the first), or an end.
                try await Wait.until("two answered attempts") {
                    guard let log = try await store.deliveries(jobID: id).first else { return false }
                    return log.delivery.state != .pending || log.attempts.filter { $0.status != nil }.count >= 2
                }
                #expect(
                    try await store.deliveries(jobID: id).first?.attempts.compactMap(\.status).allSatisfy { $0 == 302 }
                        == true)
                #expect(hits.withLock { $0.target } >= 2)
                #expect(hits.withLock { $0.other } == 0, "the redirect target was never contacted")
                // The other listener is up and counting, so the zero above means something.
                let direct = try await HTTPClient.shared.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(otherPort)/stolen"), timeout: .seconds(10))
                #expect(direct.status == .ok)
                #expect(hits.withLock { $0.other } == 1)
                let log = try #require(try await store.deliveries(jobID: id).first)
                #expect(log.delivery.state == .pending, "a redirect is a failed attempt, retried")
                let redirected = try #require(log.attempts.first { $0.status == 302 })
                #expect(redirected.error?.contains("302") == true)

                let job = try await client.execute(uri: "/v1/jobs/\(id)", method: .get) {
                    try HTTPAPITests.json($0.body)
                }
                guard case .object(let webhook)? = job["webhook"], case .array(let deliveries)? = webhook["deliveries"],
                    case .object(let delivery)? = deliveries.first, case .array(let attempts)? = delivery["attempts"]
                else {
                    Issue.record("no delivery log: \(job)")
                    return
                }
                let shown = try #require(
                    attempts.first(where: {
                        $0 == Self.attempt(redirected.attempt, $0, outcome: "failed", statusClass: "3xx")
                    }))
                guard case .object(let fields) = shown else { return }
                #expect(Set(fields.keys) == ["attempt", "at", "outcome", "status_class"])
            }
            group.cancelAll()
        }
    }

    @Test("an attempt connects to the vetted address, with the URL's host in the Host header")
    func connectsToVettedAddress() async throws {
        let port = try Self.freePort()
        let hosts = Mutex<[String]>([])
        let router = Router()
        router.post("/hook") { request, _ -> HTTPResponse.Status in
            hosts.withLock { $0.append(request.head.authority ?? "") }
            return .noContent
        }
        _ = try await ResidentServer.start { running in
            Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
                onServerRunning: running)
        }
        // `.invalid` never resolves (RFC 6761): the request can only arrive through the vetted address.
        var request = HTTPClientRequest(url: "http://webhook.invalid:\(port)/hook")
        request.method = .POST
        let target = WebhookDispatcher.VettedTarget(host: "webhook.invalid", address: "127.0.0.1", isLiteral: false)
        try await Wait.until("the receiver to listen") {
            let probe = HTTPClientRequest(url: "http://127.0.0.1:\(port)/")
            return (try? await HTTPClient.shared.execute(probe, timeout: .seconds(5))) != nil
        }
        let status = try await WebhookDispatcher.post(request, to: target, timeout: .seconds(5))
        #expect(status == 204)
        #expect(hosts.withLock { $0.first } == "webhook.invalid:\(port)")
    }

    @Test("vetting hands over a checked address of the name; a literal is its own address")
    func vetting() async throws {
        let (runtime, _, _) = try Self.runtime(backoff: "1s")
        let dispatcher = try #require(runtime.jobs?.webhooks)
        guard case .allowed(let named) = dispatcher.vet("http://localhost:8080/hook") else {
            Issue.record("localhost is allowed with allow_loopback")
            return
        }
        #expect(named.host == "localhost" && !named.isLiteral)
        #expect(["127.0.0.1", "0:0:0:0:0:0:0:1"].contains(named.address), "\(named.address)")
        guard case .allowed(let literal) = dispatcher.vet("https://[::1]/hook") else {
            Issue.record("::1 is allowed with allow_loopback")
            return
        }
        #expect(literal == .init(host: "::1", address: "0:0:0:0:0:0:0:1", isLiteral: true))
        guard case .refused(let problem) = dispatcher.vet("http://[64:ff9b::a9fe:a9fe]/latest") else {
            Issue.record("NAT64 of 169.254.169.254 is refused")
            return
        }
        #expect(problem.contains("link-local"))
    }
}
