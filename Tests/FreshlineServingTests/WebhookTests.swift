import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineHTTP
import FreshlineRuntime
import FreshlineStore
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Synchronization
import Testing

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
                try await BatchServingTests.waitFor("two failed attempts") {
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
                let receiver = Application(
                    router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
                let receiverTask = Task { try await receiver.runService() }
                defer { receiverTask.cancel() }
                try await BatchServingTests.waitFor("the delivery") {
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
                let expected = SHA256.hmac(key: Array(Self.secret.utf8), message: Array("\(t).".utf8) + first.body)
                    .map { String(format: "%02x", $0) }.joined()
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

                // Redelivery: the same event id again.
                try await client.execute(uri: "/v1/jobs/\(id)/webhook/redeliver", method: .post) { response in
                    #expect(response.status == .accepted)
                }
                try await BatchServingTests.waitFor("the redelivery") { received.withLock { $0.count } == 2 }
                let again = received.withLock { $0[1] }
                #expect(again.headers[HTTPField.Name("Freshline-Event-Id")!] == eventID)

                // Targets outside the allow-list are refused at submission.
                for target in [
                    "http://10.1.2.3/h", "http://169.254.169.254/latest", "http://192.168.0.5/h", "ftp://x/y",
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

    @Test("the allow-list: loopback, private, link-local and reserved addresses are refused by default")
    func allowList() {
        let strict = WebhookSettings()
        #expect(strict.problem(address: [127, 0, 0, 1]) == "a loopback address")
        #expect(strict.problem(address: [10, 0, 0, 1]) == "a private address")
        #expect(strict.problem(address: [172, 16, 0, 1]) == "a private address")
        #expect(strict.problem(address: [172, 32, 0, 1]) == nil)
        #expect(strict.problem(address: [192, 168, 1, 1]) == "a private address")
        #expect(strict.problem(address: [169, 254, 169, 254]) == "a link-local address")
        #expect(strict.problem(address: [0, 0, 0, 0]) != nil)
        #expect(strict.problem(address: [224, 0, 0, 1]) != nil)
        #expect(strict.problem(address: [93, 184, 216, 34]) == nil)
        #expect(strict.problem(address: Array(repeating: 0, count: 15) + [1]) == "a loopback address")
        #expect(strict.problem(address: [0xfe, 0x80] + Array(repeating: 0, count: 14)) == "a link-local address")
        #expect(strict.problem(address: [0xfd, 0x00] + Array(repeating: 0, count: 14)) != nil)
        #expect(strict.problem(address: Array(repeating: 0, count: 10) + [0xff, 0xff, 10, 0, 0, 1]) != nil)
        #expect(strict.problem(address: [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 12)) == nil)
        let local = WebhookSettings(allowLoopback: true)
        #expect(local.problem(address: [127, 0, 0, 1]) == nil)
        #expect(local.problem(address: [10, 0, 0, 1]) != nil)
        // Retries stop at the end of the window.
        let settings = WebhookSettings(retryWindow: .seconds(10), backoffBase: .seconds(1), backoffMax: .seconds(4))
        #expect(settings.nextAttempt(after: 1, now: 100, createdAt: 100) == 101)
        #expect(settings.nextAttempt(after: 3, now: 105, createdAt: 100) == 109)
        #expect(settings.nextAttempt(after: 5, now: 107, createdAt: 100) == nil)
    }

    @Test("HMAC-SHA256 matches RFC 4231 and the known Stripe-style example")
    func hmac() {
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        #expect(
            hex(SHA256.hmac(key: Array("key".utf8), message: Array("The quick brown fox jumps over the lazy dog".utf8)))
                == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
        // RFC 4231 test case 2.
        #expect(
            hex(SHA256.hmac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // A key longer than the block is hashed first (RFC 4231 test case 6).
        #expect(
            hex(
                SHA256.hmac(
                    key: [UInt8](repeating: 0xaa, count: 131),
                    message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }
}
