import FreshlineCore
import FreshlineEngine
import FreshlinePostgres
import FreshlineTesting
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
        let port = try await ResidentServer.start { running in
            Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                onServerRunning: running)
        }
        try await body("http://127.0.0.1:\(port)/score") { calls.withLock { $0 } }
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

    /// Calls `model` `count` times at `priority`, each with a 4 s deadline (a wait for the budget longer than that is
    /// refused at once; at 4 or 5 calls a minute, a refill of one call takes 15 or 12 s): how many were answered, and
    /// the messages of the refusals.
    static func calls(_ model: any RemoteModel, _ count: Int, _ priority: CallPriority) async -> (Int, [String]) {
        var answered = 0
        var refusals: [String] = []
        for _ in 0..<count {
            do {
                _ = try await model.infer(
                    ["x": try! Tensor(shape: [1], doubles: [1])], rows: 1, priority: priority,
                    deadline: .now + .seconds(10))
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
                let spec = Self.spec(url, requestsPerMinute: 4)
                let a = try await Upstreams.connect(spec, environment: [:], logger: Self.logger, budgetStore: first)
                let b = try await Upstreams.connect(spec, environment: [:], logger: Self.logger, budgetStore: second)
                let start = ContinuousClock.now
                async let fromA = Self.calls(a, 4, .realtime)
                async let fromB = Self.calls(b, 4, .realtime)
                let ((answeredA, refusedA), (answeredB, refusedB)) = await (fromA, fromB)
                let elapsed = ContinuousClock.now - start
                await a.shutdown()
                await b.shutdown()
                // 4 calls a minute: each server's own budget would let it make 4; together they make 4, and one more
                // per 15 s of refill (a slow machine may take that long).
                let refilled = Int(elapsed / .seconds(15))
                #expect(served() <= 4 + refilled, "\(served()) calls in \(elapsed)")
                #expect(answeredA + answeredB >= 4, "\(answeredA) + \(answeredB)")
                #expect(answeredA > 0 && answeredB > 0, "\(answeredA) + \(answeredB)")
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
                let spec = Self.spec(url, requestsPerMinute: 5)
                let a = try await Upstreams.connect(spec, environment: [:], logger: Self.logger, budgetStore: first)
                let b = try await Upstreams.connect(spec, environment: [:], logger: Self.logger, budgetStore: second)
                let start = ContinuousClock.now
                let (batchA, _) = await Self.calls(a, 6, .batch)
                let (batchB, _) = await Self.calls(b, 2, .batch)
                let (realtimeB, _) = await Self.calls(b, 3, .realtime)
                let refilled = Int((ContinuousClock.now - start) / .seconds(12))
                await a.shutdown()
                await b.shutdown()
                // 5 calls a minute, 20% reserved for real time: batch takes 4 of them.
                #expect(batchA == 4, "batch takes up to the reserve")
                #expect(batchB <= refilled, "the shared reserve holds for another server's batch callers")
                #expect((1...1 + refilled).contains(realtimeB), "real time takes the reserve: \(realtimeB)")
            }
        }
    }
}
