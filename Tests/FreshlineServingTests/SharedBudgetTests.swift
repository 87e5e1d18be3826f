import FreshlineCore
import FreshlineEngine
import FreshlinePostgres
import FreshlineUpstream
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

/// Two servers' upstream models sharing one rate-limit budget through PostgreSQL (two `PostgresStore`s on one
/// database, as two processes have): together they take no more than the budget, and batch callers leave its
/// reserve to real-time ones. The upstream is a plain JSON endpoint of a test server that answers every call.
@Suite("Upstream budgets shared through PostgreSQL")
struct SharedBudgetTests {
    static let logger: Logger = {
        var logger = Logger(label: "freshline.test.shared-budget")
        logger.logLevel = .critical
        return logger
    }()

    /// Runs a test server counting its calls, and gives `body` its URL and the count.
    static func withUpstream(_ body: @escaping @Sendable (String, @escaping @Sendable () -> Int) async throws -> Void)
        async throws
    {
        let calls = Mutex(0)
        let router = Router()
        router.post("/score") { _, _ -> Response in
            calls.withLock { $0 += 1 }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"y": 1}"#)))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            try await body("http://127.0.0.1:\(port)/score") { calls.withLock { $0 } }
        }
    }

    static func spec(_ url: String, requestsPerMinute: Int) -> ModelSpec {
        var upstream = UpstreamSpec(kind: .http, url: url)
        upstream.requestTemplate = #"{"x": {{x}}}"#
        upstream.inputs = [("x", .double)]
        upstream.outputs = [.init(name: "y", pointer: "/y", type: .double)]
        upstream.limits = UpstreamLimits(maxRetries: 0, requestsPerMinute: requestsPerMinute)
        return ModelSpec(
            name: "scorer", upstream: upstream,
            location: SourceLocation(file: "freshline.yaml", line: 1, keyPath: "models.scorer"))
    }

    /// Calls `model` `count` times at `priority`, each with a 2 s deadline (a wait for the budget longer than that is
    /// refused at once; at 10 calls a minute, a refill of one call takes 6 s): how many were answered, and the
    /// messages of the refusals.
    static func calls(_ model: any RemoteModel, _ count: Int, _ priority: CallPriority) async -> (Int, [String]) {
        var answered = 0
        var refusals: [String] = []
        for _ in 0..<count {
            do {
                _ = try await model.infer(
                    ["x": try! Tensor(shape: [1], doubles: [1])], rows: 1, priority: priority,
                    deadline: .now + .seconds(2))
                answered += 1
            } catch {
                if error.kind == .rateLimited { refusals.append(error.message) } else { refusals.append("\(error)") }
            }
        }
        return (answered, refusals)
    }

    @Test("two servers together take no more than the shared budget, where each alone could take all of it")
    func sharedBetweenTwoServers() async throws {
        try await StoreFixture.with(.postgres) { fixture in
            let first = try #require(fixture.postgres)
            let second = try fixture.secondStore()
            try await Self.withUpstream { url, served in
                let spec = Self.spec(url, requestsPerMinute: 10)
                let a = try await Upstreams.connect(spec, environment: [:], logger: Self.logger, budgetStore: first)
                let b = try await Upstreams.connect(spec, environment: [:], logger: Self.logger, budgetStore: second)
                async let fromA = Self.calls(a, 8, .realtime)
                async let fromB = Self.calls(b, 8, .realtime)
                let ((answeredA, refusedA), (answeredB, refusedB)) = await (fromA, fromB)
                await a.shutdown()
                await b.shutdown()
                // 10 calls a minute: each server's own budget would let it make 8; together, 10 (one more if the
                // bucket refilled a call meanwhile, at one per 6 s).
                #expect((10...11).contains(answeredA + answeredB), "\(answeredA) + \(answeredB)")
                #expect(served() == answeredA + answeredB)
                for message in refusedA + refusedB {
                    #expect(message.contains("the shared rate limit has no room before the deadline"), "\(message)")
                }
            }
        }
    }

    @Test("batch callers leave the shared reserve: another server's batch is refused where its real time is not")
    func batchReserveIsShared() async throws {
        try await StoreFixture.with(.postgres) { fixture in
            let first = try #require(fixture.postgres)
            let second = try fixture.secondStore()
            try await Self.withUpstream { url, _ in
                let spec = Self.spec(url, requestsPerMinute: 10)
                let a = try await Upstreams.connect(spec, environment: [:], logger: Self.logger, budgetStore: first)
                let b = try await Upstreams.connect(spec, environment: [:], logger: Self.logger, budgetStore: second)
                let (batchA, _) = await Self.calls(a, 10, .batch)
                let (batchB, _) = await Self.calls(b, 3, .batch)
                let (realtimeB, _) = await Self.calls(b, 3, .realtime)
                await a.shutdown()
                await b.shutdown()
                #expect(batchA == 8, "batch takes up to the 20% reserve")
                #expect(batchB == 0, "the shared reserve holds for another server's batch callers")
                #expect((2...3).contains(realtimeB), "real time takes the reserve: \(realtimeB)")
            }
        }
    }
}
