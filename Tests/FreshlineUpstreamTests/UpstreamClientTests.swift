import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import Logging
import Metrics
import MetricsTestKit
import NIOCore
import NIOPosix
import Testing

@testable import FreshlineUpstream

/// The client against `FaultyUpstream` (and `ResettingServer`): every kind's round trip, each fault, the breaker,
/// the budget and the API key. Timed assertions have seconds of margin: the machine is slow and shared.
@Suite("Upstream client against a fault-injecting upstream")
struct UpstreamClientTests {
    static let logger: Logger = {
        var logger = Logger(label: "freshline.test.upstream")
        logger.logLevel = .critical
        return logger
    }()

    static func location() -> FreshlineCore.SourceLocation {
        FreshlineCore.SourceLocation(file: "test.yaml", line: 1, keyPath: "models")
    }

    static func oip(_ url: String, model: String = "m", limits: UpstreamLimits = UpstreamLimits()) -> ModelSpec {
        var upstream = UpstreamSpec(kind: .oip, url: url)
        upstream.model = model
        upstream.limits = limits
        return ModelSpec(name: "scorer", upstream: upstream, location: location())
    }

    static func connect(_ spec: ModelSpec, environment: [String: String] = [:], metrics: TestMetrics? = nil)
        async throws -> any RemoteModel
    {
        try await Upstreams.connect(spec, environment: environment, logger: logger, metrics: metrics ?? TestMetrics())
    }

    /// Connects, runs `body` with the model, and shuts the model down however `body` ends (AsyncHTTPClient stops a
    /// debug process whose client is dropped without a shutdown).
    static func with(
        _ spec: ModelSpec, environment: [String: String] = [:], metrics: TestMetrics? = nil,
        _ body: (any RemoteModel) async throws -> Void
    ) async throws {
        let model = try await connect(spec, environment: environment, metrics: metrics)
        do { try await body(model) } catch {
            await model.shutdown()
            throw error
        }
        await model.shutdown()
    }

    /// Connects and shuts the model down at once: for tests where connecting should have failed.
    static func connectThenClose(_ spec: ModelSpec, environment: [String: String] = [:]) async throws {
        let model = try await connect(spec, environment: environment)
        await model.shutdown()
    }

    static func rows(_ n: Int) throws -> [String: Tensor] {
        ["X": try Tensor(shape: [n, 3], floats: (0..<(n * 3)).map { Float($0) })]
    }

    /// The error `body` throws, or a recorded issue if it throws none.
    static func failure(_ body: () async throws(UpstreamError) -> RemoteAnswer) async -> UpstreamError? {
        do {
            _ = try await body()
            Issue.record("expected an error")
            return nil
        } catch { return error }
    }

    @Test("oip: metadata read at connect, rows stacked, batches split at maxBatchRows and concatenated")
    func oipRoundTrip() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            try await Self.with(Self.oip(url, limits: UpstreamLimits(maxBatchRows: 2))) { model in
                #expect(model.metadata.inputs == [.init(name: "X", type: .tensor(.float, shape: [-1, 3]))])
                #expect(model.metadata.outputs.map(\.name) == ["y", "label"])
                #expect(model.metadata.outputs[1].type == .tensor(.string, shape: [-1]))
                #expect(model.metadata.version == "m:7")
                let answer = try await model.infer(try Self.rows(5), rows: 5, priority: .realtime, deadline: nil)
                #expect(server.requests("/v2/models/m/infer") == 3)
                #expect(answer.outputs["y"] == .tensor(try Tensor(shape: [5, 1], floats: [3, 12, 21, 30, 39])))
                #expect(answer.outputs["label"]?.tensor?.strings == ["row-0", "row-1", "row-0", "row-1", "row-0"])
                #expect(answer.modelVersion == "m:7")
            }
        }
    }

    @Test("a 429 with Retry-After is waited out and retried; metrics count the retry and the success")
    func retryAfterThenSuccess() async throws {
        let server = FaultyUpstream()
        let metrics = TestMetrics()
        try await server.run { url in
            try await Self.with(Self.oip(url), metrics: metrics) { model in
                server.fail([.status(429, retryAfter: "1")])
                let start = ContinuousClock.now
                let answer = try await model.infer(
                    try Self.rows(1), rows: 1, priority: .realtime, deadline: .now + .seconds(20))
                #expect(ContinuousClock.now - start >= .seconds(1))
                #expect(answer.outputs["y"] == .tensor(try Tensor(shape: [1, 1], floats: [3])))
                #expect(server.requests("/v2/models/m/infer") == 2)
                #expect(
                    metrics.counterTotal(
                        label: "freshline_upstream_requests_total",
                        dimensions: [("model", "scorer"), ("outcome", "retried")]) == 1)
                #expect(
                    metrics.counterTotal(
                        label: "freshline_upstream_requests_total",
                        dimensions: [("model", "scorer"), ("outcome", "ok")]) >= 1)
            }
        }
    }

    @Test("a Retry-After past the deadline fails at once, carrying the wait: 429 as rateLimited, 503 as unavailable")
    func retryAfterPastDeadline() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            try await Self.with(Self.oip(url)) { model in
                for (status, kind) in [(429, UpstreamError.Kind.rateLimited), (503, .unavailable)] {
                    server.fail([.status(status, retryAfter: "30")])
                    let start = ContinuousClock.now
                    let error = await Self.failure { () async throws(UpstreamError) in
                        try await model.infer(
                            try! Self.rows(1), rows: 1, priority: .realtime, deadline: .now + .seconds(3))
                    }
                    #expect(error?.kind == kind)
                    #expect(error?.retryAfter == .seconds(30))
                    #expect(error?.message.contains("answered \(status)") == true)
                    #expect(ContinuousClock.now - start < .seconds(3))
                }
                #expect(server.requests("/v2/models/m/infer") == 2)
            }
        }
    }

    @Test("500s are retried maxRetries times, then fail as unavailable without the upstream's body")
    func serverErrorsUntilRetriesRunOut() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            try await Self.with(Self.oip(url, limits: UpstreamLimits(maxRetries: 2))) { model in
                server.fail(Array(repeating: .status(500), count: 5))
                let error = await Self.failure { () async throws(UpstreamError) in
                    try await model.infer(
                        try! Self.rows(1), rows: 1, priority: .realtime, deadline: .now + .seconds(20))
                }
                #expect(error?.kind == .unavailable)
                #expect(error?.message.contains("answered 500 (after 3 attempts)") == true)
                #expect(error?.message.contains("scorer") == true)
                #expect(error?.message.contains("secret") == false)
                #expect(server.requests("/v2/models/m/infer") == 3)
            }
        }
    }

    @Test("a slow answer past the deadline fails as timeout within the deadline and a margin")
    func slowAnswerTimesOut() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            try await Self.with(Self.oip(url)) { model in
                server.fail([.slow(.seconds(4))])
                let start = ContinuousClock.now
                let error = await Self.failure { () async throws(UpstreamError) in
                    try await model.infer(try! Self.rows(1), rows: 1, priority: .realtime, deadline: .now + .seconds(1))
                }
                #expect(error?.kind == .timeout)
                #expect(ContinuousClock.now - start < .seconds(3))
                // The test double's handler is still sleeping: let it answer (to a connection the client has
                // closed) before the server stops, so that no request is cut off mid-response at shutdown (NIO's
                // debug check traps on an async writer dropped unfinished; seen once in `make test`).
                try await Task.sleep(for: .seconds(3.5))
            }
        }
    }

    @Test("a body that is not JSON, or JSON of the wrong shape, is a malformed answer that quotes nothing")
    func malformedAnswers() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            try await Self.with(Self.oip(url)) { model in
                for (fault, words) in [
                    (FaultyUpstream.Fault.notJSON, "malformed answer: not JSON"),
                    (.wrongShape, "malformed answer: expected outputs"),
                ] {
                    server.fail([fault])
                    let error = await Self.failure { () async throws(UpstreamError) in
                        try await model.infer(try! Self.rows(1), rows: 1, priority: .realtime, deadline: nil)
                    }
                    #expect(error?.kind == .unavailable)
                    #expect(error?.message.contains(words) == true, "\(error?.message ?? "")")
                    #expect(error?.message.contains("secret") == false)
                }
            }
        }
    }

    @Test("a connection reset is retried, then fails as unavailable naming the connection")
    func connectionReset() async throws {
        let server = try await ResettingServer.start()
        var upstream = UpstreamSpec(kind: .http, url: server.url + "/plain")
        upstream.inputs = [("x", .double)]
        upstream.outputs = [.init(name: "y", pointer: "/y", type: .double)]
        upstream.limits = UpstreamLimits(maxRetries: 2)
        try await Self.with(ModelSpec(name: "plain", upstream: upstream, location: Self.location())) { model in
            let error = await Self.failure { () async throws(UpstreamError) in
                try await model.infer(
                    ["x": try! Tensor(shape: [1], doubles: [1])], rows: 1, priority: .realtime,
                    deadline: .now + .seconds(20))
            }
            #expect(error?.kind == .unavailable)
            #expect(error?.message.contains("connection") == true, "\(error?.message ?? "")")
        }
        try await server.stop()
        #expect(server.resets == 3)
    }

    @Test("an upstream that is down at connect fails with a message naming the model, the URL and the cause")
    func downAtConnect() async throws {
        // A port that was just free: nothing listens on it.
        let probe = try await ResettingServer.start()
        let url = probe.url
        try await probe.stop()
        do {
            try await Self.connectThenClose(Self.oip(url, limits: UpstreamLimits(timeout: .seconds(5), maxRetries: 1)))
            Issue.record("connect should fail")
        } catch let error as UpstreamError {
            #expect(error.kind == .unavailable)
            #expect(error.message.contains("'scorer'"))
            #expect(error.message.contains(url))
            #expect(error.message.contains("connection refused"), "\(error.message)")
        }
    }

    @Test("metadata that is not OIP model metadata fails connect as malformed")
    func nonsenseMetadata() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            do {
                try await Self.connectThenClose(Self.oip(url, model: "nonsense"))
                Issue.record("connect should fail")
            } catch let error as UpstreamError {
                #expect(error.message.contains("malformed model metadata: expected inputs to be an array"))
            }
        }
    }

    @Test("the breaker opens after N failures, refuses without a request reaching the server, then recovers")
    func breakerOpensAndRecovers() async throws {
        let server = FaultyUpstream()
        let metrics = TestMetrics()
        try await server.run { url in
            let limits = UpstreamLimits(maxRetries: 0, breakerFailures: 3, breakerOpenFor: .seconds(1))
            try await Self.with(Self.oip(url, limits: limits), metrics: metrics) { model in
                server.fail(Array(repeating: .status(502), count: 3))
                for _ in 0..<3 {
                    let error = await Self.failure { () async throws(UpstreamError) in
                        try await model.infer(try! Self.rows(1), rows: 1, priority: .realtime, deadline: nil)
                    }
                    #expect(error?.kind == .unavailable)
                }
                #expect(server.requests("/v2/models/m/infer") == 3)
                let refused = await Self.failure { () async throws(UpstreamError) in
                    try await model.infer(try! Self.rows(1), rows: 1, priority: .realtime, deadline: nil)
                }
                #expect(refused?.kind == .circuitOpen)
                #expect(refused?.retryAfter.map { $0 > .zero && $0 <= .seconds(1) } == true)
                #expect(server.requests("/v2/models/m/infer") == 3)
                #expect(
                    try metrics.expectGauge("freshline_upstream_circuit_open", [("model", "scorer")]).lastValue == 1)
                try await Task.sleep(for: .milliseconds(1200))
                // Half-open: the probe goes through and succeeds; the breaker closes.
                _ = try await model.infer(try Self.rows(1), rows: 1, priority: .realtime, deadline: nil)
                _ = try await model.infer(try Self.rows(1), rows: 1, priority: .realtime, deadline: nil)
                #expect(server.requests("/v2/models/m/infer") == 5)
                #expect(
                    try metrics.expectGauge("freshline_upstream_circuit_open", [("model", "scorer")]).lastValue == 0)
                #expect(
                    metrics.counterTotal(
                        label: "freshline_upstream_requests_total",
                        dimensions: [("model", "scorer"), ("outcome", "circuit_open")]) == 1)
            }
        }
    }

    @Test("the rate budget refuses at once, with the expected wait, when there is no room before the deadline")
    func rateLimitedByBudget() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            try await Self.with(Self.oip(url, limits: UpstreamLimits(requestsPerMinute: 1))) { model in
                _ = try await model.infer(try Self.rows(1), rows: 1, priority: .realtime, deadline: .now + .seconds(2))
                let error = await Self.failure { () async throws(UpstreamError) in
                    try await model.infer(try! Self.rows(1), rows: 1, priority: .realtime, deadline: .now + .seconds(2))
                }
                #expect(error?.kind == .rateLimited)
                #expect(error?.retryAfter.map { $0 > .seconds(50) } == true)
                #expect(server.requests("/v2/models/m/infer") == 1)
            }
        }
    }

    static func chat(_ url: String, schema: JSONValue? = nil, key: String? = "UPSTREAM_KEY") -> ModelSpec {
        var upstream = UpstreamSpec(kind: .openai, url: url + "/v1")
        upstream.model = "fake-chat"
        upstream.apiKeyEnv = key
        upstream.messages = [
            .init(role: "system", content: "Be brief."), .init(role: "user", content: "Q: {{question}} ({{n}})"),
        ]
        upstream.maxTokens = 16
        upstream.responseSchema = schema
        upstream.limits = UpstreamLimits(maxRetries: 0, tokensPerMinute: 100_000)
        return ModelSpec(name: "assistant", upstream: upstream, location: location())
    }

    @Test("openai chat: one call per row, text output, usage per row, model and fingerprint as the version")
    func chatText() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            try await Self.with(Self.chat(url), environment: ["UPSTREAM_KEY": "sk-test-0123456789"]) { model in
                #expect(model.metadata.inputs.map(\.name) == ["question", "n"])
                #expect(model.metadata.outputs == [.init(name: "text", type: .tensor(.string, shape: [-1]))])
                let feeds: [String: Tensor] = [
                    "question": try Tensor(shape: [3], strings: ["one", "two \"2\"", "three"]),
                    "n": try Tensor(shape: [3], strings: ["1", "2", "3"]),
                ]
                let answer = try await model.infer(feeds, rows: 3, priority: .async, deadline: nil)
                #expect(
                    answer.outputs["text"]?.tensor?.strings == [
                        "echo: Q: one (1)", "echo: Q: two \"2\" (2)", "echo: Q: three (3)",
                    ])
                #expect(answer.usage == Array(repeating: TokenUsage(input: 10, output: 5), count: 3))
                #expect(answer.modelVersion == "fake-chat fp_1")
                #expect(server.requests("/v1/chat/completions") == 3)
            }
        }
    }

    @Test("openai chat with a response schema: one typed output per property")
    func chatStructured() async throws {
        let server = FaultyUpstream()
        let schema = JSONValue.object([
            "type": .string("object"),
            "properties": .object([
                "answer": .object(["type": .string("string")]), "score": .object(["type": .string("number")]),
                "n": .object(["type": .string("integer")]), "ok": .object(["type": .string("boolean")]),
            ]),
        ])
        try await server.run { url in
            try await Self.with(Self.chat(url, schema: schema), environment: ["UPSTREAM_KEY": "sk-test-0123456789"]) {
                model in
                #expect(model.metadata.outputs.map(\.name) == ["answer", "n", "ok", "score"])
                let feeds: [String: Tensor] = [
                    "question": try Tensor(shape: [2], strings: ["a", "b"]),
                    "n": try Tensor(shape: [2], strings: ["1", "2"]),
                ]
                let answer = try await model.infer(feeds, rows: 2, priority: .realtime, deadline: nil)
                #expect(answer.outputs["answer"]?.tensor?.strings == ["Q: a (1)", "Q: b (2)"])
                #expect(answer.outputs["score"] == .tensor(try Tensor(shape: [2], doubles: [0.5, 0.5])))
                #expect(answer.outputs["n"] == .tensor(try Tensor(shape: [2], int64s: [3, 3])))
                #expect(answer.outputs["ok"] == .tensor(try Tensor(shape: [2], data: .bool([true, true]))))
            }
        }
    }

    @Test("an API that refuses the json_schema form but takes json_object (llama-cpp-python) is switched to it once")
    func chatStructuredFallback() async throws {
        let server = FaultyUpstream()
        server.refuseJSONSchema()
        let schema = JSONValue.object([
            "type": .string("object"), "properties": .object(["answer": .object(["type": .string("string")])]),
        ])
        try await server.run { url in
            try await Self.with(Self.chat(url, schema: schema), environment: ["UPSTREAM_KEY": "k"]) { model in
                let feeds: [String: Tensor] = [
                    "question": try Tensor(shape: [1], strings: ["a"]), "n": try Tensor(shape: [1], strings: ["1"]),
                ]
                for _ in 0..<2 {
                    let answer = try await model.infer(feeds, rows: 1, priority: .realtime, deadline: nil)
                    #expect(answer.outputs["answer"]?.tensor?.strings == ["Q: a (1)"])
                }
                // The refused form once (no retries in this spec), then json_object twice.
                #expect(server.requests("/v1/chat/completions") == 3)
            }
        }
    }

    @Test("the API key goes as a Bearer header and into no error message; a missing variable is named")
    func apiKeyNeverLeaks() async throws {
        let server = FaultyUpstream()
        let key = "sk-test-0123456789"
        try await server.run { url in
            try await Self.with(Self.chat(url), environment: ["UPSTREAM_KEY": key]) { model in
                var messages: [String] = []
                for fault in [
                    FaultyUpstream.Fault.status(500), .status(401), .notJSON, .wrongShape,
                    .status(429, retryAfter: "60"),
                ] {
                    server.fail([fault])
                    let error = await Self.failure { () async throws(UpstreamError) in
                        try await model.infer(
                            [
                                "question": try! Tensor(shape: [1], strings: ["q"]),
                                "n": try! Tensor(shape: [1], strings: ["1"]),
                            ],
                            rows: 1, priority: .realtime, deadline: .now + .seconds(5))
                    }
                    messages.append(error?.description ?? "")
                }
                #expect(messages.count == 5)
                #expect(
                    messages.allSatisfy { !$0.isEmpty && !$0.contains(key) && !$0.contains("secret") }, "\(messages)")
                #expect(messages[3].contains("malformed answer: expected choices[0].message.content"))
                #expect(!server.authorizations.isEmpty)
                #expect(server.authorizations.allSatisfy { $0 == "Bearer \(key)" })
            }
            do {
                try await Self.connectThenClose(Self.chat(url), environment: [:])
                Issue.record("connect should fail without the key")
            } catch let error as UpstreamError {
                #expect(error.message.contains("UPSTREAM_KEY"))
            }
        }
    }

    @Test("openai embeddings: the dimension learned at connect, rows in input order, batches split, usage spread")
    func embeddings() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            var upstream = UpstreamSpec(kind: .openai, url: url + "/v1/")
            upstream.model = "fake-embed"
            upstream.endpoint = .embeddings
            upstream.inputTemplate = "title: {{title}}"
            upstream.limits = UpstreamLimits(maxBatchRows: 2)
            try await Self.with(ModelSpec(name: "embedder", upstream: upstream, location: Self.location())) { model in
                #expect(model.metadata.outputs == [.init(name: "embedding", type: .tensor(.float, shape: [-1, 4]))])
                let feeds = ["title": try Tensor(shape: [3], strings: ["a", "bb", "ccc"])]
                let answer = try await model.infer(feeds, rows: 3, priority: .batch, deadline: nil)
                #expect(
                    answer.outputs["embedding"]
                        == .tensor(try Tensor(shape: [3, 4], floats: [8, 0, 0, 1, 9, 1, 0, 1, 10, 0, 0, 1])))
                #expect(server.requests("/v1/embeddings") == 3)  // the probe and two batches
                #expect(answer.usage.map(\.input) == [3, 3, 3])
                #expect(answer.modelVersion == "fake-embed")
            }
        }
    }

    @Test("http: the template rendered with JSON values, outputs read by JSON pointers and typed")
    func plainHTTP() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            var upstream = UpstreamSpec(kind: .http, url: url + "/plain")
            upstream.requestTemplate = #"{"x": {{x}}, "text": {{text}}}"#
            upstream.inputs = [("x", .double), ("text", .string)]
            upstream.outputs = [
                .init(name: "double", pointer: "/result/double", type: .double),
                .init(name: "label", pointer: "/result/label", type: .string),
            ]
            try await Self.with(ModelSpec(name: "plain", upstream: upstream, location: Self.location())) { model in
                let feeds: [String: Tensor] = [
                    "x": try Tensor(shape: [2], doubles: [1.5, -2]),
                    "text": try Tensor(shape: [2], strings: ["a \"q\"", "é\n"]),
                ]
                let answer = try await model.infer(feeds, rows: 2, priority: .realtime, deadline: nil)
                #expect(answer.outputs["double"] == .tensor(try Tensor(shape: [2], doubles: [3, -4])))
                #expect(answer.outputs["label"] == .tensor(try Tensor(shape: [2], strings: ["a \"q\"", "é\n"])))
                server.fail([.wrongShape])
                let error = await Self.failure { () async throws(UpstreamError) in
                    try await model.infer(feeds, rows: 2, priority: .realtime, deadline: nil)
                }
                #expect(error?.message.contains("malformed answer: expected /result/double") == true)
            }
        }
    }

    @Test("a template that cannot make JSON, or a pointer that is not one, fails connect")
    func badHTTPSpec() async throws {
        var upstream = UpstreamSpec(kind: .http, url: "http://127.0.0.1:9/plain")
        upstream.requestTemplate = #"{"x": "{{x}}" "#
        upstream.outputs = [.init(name: "y", pointer: "/y", type: .double)]
        do {
            try await Self.connectThenClose(ModelSpec(name: "plain", upstream: upstream, location: Self.location()))
            Issue.record("connect should fail")
        } catch let error as UpstreamError {
            #expect(error.message.contains("does not make JSON"))
        }
        upstream.requestTemplate = #"{"x": {{x}}}"#
        upstream.outputs = [.init(name: "y", pointer: "y", type: .double)]
        do {
            try await Self.connectThenClose(ModelSpec(name: "plain", upstream: upstream, location: Self.location()))
            Issue.record("connect should fail")
        } catch let error as UpstreamError {
            #expect(error.message.contains("not a JSON pointer"))
        }
    }
}
