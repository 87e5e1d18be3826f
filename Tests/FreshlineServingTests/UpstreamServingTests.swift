import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineHTTP
import FreshlineJSON
import FreshlineRuntime
import FreshlineStores
import FreshlineTestSupport
import FreshlineUpstream
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization
import Testing

/// A TEST DOUBLE of an upstream model (not a client of any real server): answers `score = sum(X)` for each row of
/// a 4-float input, counts its calls and their row counts, and fails with a chosen `UpstreamError` on request.
/// It stands in for `FreshlineUpstream`'s clients so that these tests check the runtime's side (micro-batching,
/// provenance, error mapping, the fallback ladder, jobs, /v2) on their own; the clients are tested against real
/// servers in `UpstreamServerTests`.
final class RecordingUpstreamDouble: RemoteModel {
    let spec: ModelSpec
    let metadata: ModelMetadata
    private let state = Mutex<(calls: [Int], priorities: [CallPriority], failure: UpstreamError?)>(([], [], nil))
    let delay: Duration

    init(spec: ModelSpec, delay: Duration = .milliseconds(20)) {
        self.spec = spec
        self.delay = delay
        metadata = ModelMetadata(
            remoteInputs: [.init(name: "X", type: .tensor(.float, shape: [-1, 4]))],
            outputs: [.init(name: "score", type: .tensor(.float, shape: [-1]))], producer: "test double",
            version: "double:7")
    }

    var calls: [Int] { state.withLock { $0.calls } }
    var priorities: [CallPriority] { state.withLock { $0.priorities } }
    func fail(with error: UpstreamError?) { state.withLock { $0.failure = error } }

    func infer(_ feeds: [String: Tensor], rows: Int, priority: CallPriority, deadline: ContinuousClock.Instant?)
        async throws(UpstreamError) -> RemoteAnswer
    {
        let failure = state.withLock { state in
            state.calls.append(rows)
            state.priorities.append(priority)
            return state.failure
        }
        if let failure { throw failure }
        try? await Task.sleep(for: delay)
        guard case .float(let values)? = feeds["X"]?.data, values.count == rows * 4 else {
            throw UpstreamError(.badRequest, "X must be \(rows) rows of 4 floats")
        }
        let scores = (0..<rows).map { r in values[(r * 4)..<(r * 4 + 4)].reduce(0, +) }
        do {
            let tensor = try Tensor(shape: [rows], data: .float(scores))
            // Tokens as an LLM upstream would report them: 3 in and 1 out per row.
            return RemoteAnswer(
                outputs: ["score": .tensor(tensor)], modelVersion: "double:7 fp_1",
                usage: Array(repeating: TokenUsage(input: 3, output: 1), count: rows))
        } catch {
            throw UpstreamError(.unavailable, "malformed answer")
        }
    }
}

@Suite("Upstream models in the runtime (with a test double)")
struct UpstreamServingTests {
    static let manifest = """
        version: 1
        models:
          remote:
            kind: oip
            url: http://127.0.0.1:9/
            model: sk
            limits: {max_connections: 2}
        features:
          live:
            model: remote
            latency_budget: 60s
            batching: {max_batch_size: 32, max_queue_delay: 20ms}
          guarded:
            model: remote
            latency_budget: 60s
            on_failure: {default: {score: -1}}
          report:
            model: remote
            pattern: async
        """

    static func withServer(
        _ body: @escaping @Sendable (any TestClientProtocol, RecordingUpstreamDouble) async throws -> Void
    ) async throws {
        let manifest = try ManifestLoader.load(path: try TestManifest.write(Self.manifest))
        let model = RecordingUpstreamDouble(spec: try #require(manifest.models["remote"]))
        let stores = try StoreSet.open(for: manifest, logger: Logger(label: "test"))
        let registry = PrometheusCollectorRegistry()
        let runtime = try ServingRuntime(
            manifest: manifest, metricsFactory: PrometheusMetricsFactory(registry: registry),
            remoteModels: ["remote": model], stores: stores, logger: Logger(label: "test"))
        let app = Application(router: FreshlineServer.router(runtime: runtime, registry: registry))
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Cancelled however the body ends (a failed expectation throws): the services stop.
            defer { group.cancelAll() }
            for service in stores.services { group.addTask { try? await service.run() } }
            group.addTask { try await runtime.run() }
            try await app.test(.router) { client in try await body(client, model) }
            group.cancelAll()
        }
    }

    static func predict(_ client: some TestClientProtocol, _ feature: String, _ row: [Float]) async throws
        -> (HTTPResponse.Status, JSONValue)
    {
        let body = #"{"inputs": {"X": [\#(row.map { String($0) }.joined(separator: ","))]}}"#
        return try await client.execute(
            uri: "/v1/features/\(feature)/predict", method: .post, headers: [.contentType: "application/json"],
            body: ByteBuffer(string: body)
        ) { response in (response.status, try JSONValue.parse(Array(response.body.readableBytesView))) }
    }

    @Test("concurrent real-time rows reach the upstream micro-batched, answered with its version as provenance")
    func microBatched() async throws {
        try await Self.withServer { client, model in
            let answers = try await withThrowingTaskGroup(of: (HTTPResponse.Status, JSONValue).self) { group in
                for i in 0..<24 { group.addTask { try await Self.predict(client, "live", [Float(i), 1, 1, 1]) } }
                var answers: [(HTTPResponse.Status, JSONValue)] = []
                for try await answer in group { answers.append(answer) }
                return answers
            }
            #expect(answers.count == 24)
            for (status, json) in answers {
                #expect(status == .ok, "\(json)")
                guard case .object(let object) = json, case .object(let outputs)? = object["outputs"],
                    case .object(let provenance)? = object["provenance"] ?? .object(object)
                else {
                    Issue.record("unexpected answer \(json)")
                    continue
                }
                #expect(outputs["score"] != nil)
                #expect(provenance["model_version"] == .string("double:7 fp_1"), "\(json)")
                #expect(provenance["source"] == .string("realtime"), "\(json)")
                #expect(
                    object["usage"] == .object(["input_tokens": .integer(3), "output_tokens": .integer(1)]),
                    "\(json)")
            }
            let calls = model.calls
            #expect(calls.reduce(0, +) == 24)
            // 24 rows arriving together with a 20 ms queue delay and 2 connections: fewer calls than rows.
            #expect(calls.count < 24, "calls per batch: \(calls)")
            #expect(model.priorities.allSatisfy { $0 == .realtime })
        }
    }

    @Test("an upstream failure is a 503 (circuit open), a 504 (timeout) or a 400 (the row) — or the default rung")
    func failures() async throws {
        try await Self.withServer { client, model in
            model.fail(with: UpstreamError(.circuitOpen, "upstream 'remote' is failing; calls paused for 10 s"))
            var (status, json) = try await Self.predict(client, "live", [1, 2, 3, 4])
            #expect(status == .serviceUnavailable, "\(json)")
            #expect("\(json)".contains("calls paused"))
            (status, json) = try await Self.predict(client, "guarded", [1, 2, 3, 4])
            #expect(status == .ok, "\(json)")
            #expect("\(json)".contains("default"), "\(json)")
            model.fail(with: UpstreamError(.timeout, "no answer from upstream 'remote' within the deadline"))
            (status, json) = try await Self.predict(client, "live", [1, 2, 3, 4])
            #expect(status == .gatewayTimeout, "\(json)")
            model.fail(with: UpstreamError(.badRequest, "input 'X' cannot be sent"))
            (status, json) = try await Self.predict(client, "live", [1, 2, 3, 4])
            #expect(status == .badRequest, "\(json)")
            model.fail(with: UpstreamError(.rateLimited, "the budget is spent", retryAfter: .seconds(7)))
            let response = try await client.execute(
                uri: "/v1/features/live/predict", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"inputs": {"X": [1,2,3,4]}}"#)
            ) { $0 }
            #expect(response.status == .serviceUnavailable)
            #expect(response.headers[.retryAfter] == "7")
            model.fail(with: nil)
            (status, json) = try await Self.predict(client, "live", [1, 2, 3, 4])
            #expect(status == .ok, "\(json)")
        }
    }

    @Test("an async feature's job runs through the upstream at async priority; /v2 calls it directly")
    func jobsAndV2() async throws {
        try await Self.withServer { client, model in
            let (status, json) = try await Self.predict(client, "report", [1, 1, 1, 1])
            #expect(status == .accepted, "\(json)")
            guard case .object(let accepted) = json, case .string(let id)? = accepted["id"] else {
                Issue.record("no job id in \(json)")
                return
            }
            var state = ""
            var job = JSONValue.null
            for _ in 0..<600 where state != "succeeded" {
                try await Task.sleep(for: .milliseconds(100))
                job = try await client.execute(uri: "/v1/jobs/\(id)", method: .get) {
                    try JSONValue.parse(Array($0.body.readableBytesView))
                }
                if case .object(let o) = job, case .string(let s)? = o["state"] { state = s }
            }
            #expect(state == "succeeded", "\(job)")
            #expect("\(job)".contains("double:7 fp_1"), "\(job)")
            #expect(model.priorities.contains(.async))

            let infer = try await client.execute(
                uri: "/v2/models/remote/infer", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(
                    string:
                        #"{"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": [1,1,1,1,2,2,2,2]}]}"#)
            ) { ($0.status, String(buffer: $0.body)) }
            #expect(infer.0 == .ok, "\(infer.1)")
            #expect(infer.1.contains("double:7 fp_1"), "the answer's version, not the metadata's: \(infer.1)")
            #expect(infer.1.contains("[4") || infer.1.contains("4.0"), "\(infer.1)")
            #expect(model.calls.last == 2)
        }
    }
}

@Suite("Upstream models in the manifest")
struct UpstreamManifestTests {
    static func problems(_ yaml: String) -> String {
        do {
            _ = try ManifestLoader.load(path: try TestManifest.write(yaml))
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test("the three kinds parse with their templates, inputs, outputs and limits")
    func kinds() throws {
        let manifest = try ManifestLoader.load(
            path: try TestManifest.write(
                """
                version: 1
                models:
                  local: ZOO/gbc_binary.onnx
                  sk:
                    kind: oip
                    url: http://127.0.0.1:8081/
                    model: sk_binary
                    version: "2"
                    limits: {max_connections: 4, timeout: 2s, max_retries: 1, requests_per_minute: 600}
                  summarizer:
                    kind: openai
                    url: https://api.example.com/v1
                    model: tiny-chat
                    api_key_env: OPENAI_API_KEY
                    messages:
                      - {role: system, content: "You label accounts."}
                      - {role: user, content: "Account {{account}}: {{ activity }}"}
                    response_schema:
                      type: object
                      properties: {label: {type: string, enum: [ok, flag]}, score: {type: number}}
                      required: [label, score]
                    max_tokens: 64
                    temperature: 0
                    limits: {tokens_per_minute: 100000}
                  embed:
                    kind: openai
                    url: http://127.0.0.1:8082/v1
                    model: tiny-embed
                    endpoint: embeddings
                    input: "{{text}}"
                  scorer:
                    kind: http
                    url: http://127.0.0.1:9000/score
                    request: '{"text": {{text}}, "amount": {{amount}}}'
                    inputs: {text: string, amount: double}
                    outputs: {score: {pointer: /result/score, type: float}, label: {pointer: /result/label, type: string}}
                features:
                  f:
                    model: local
                """))
        let sk = try #require(manifest.models["sk"]?.upstream)
        #expect(sk.kind == .oip && sk.url == "http://127.0.0.1:8081" && sk.model == "sk_binary" && sk.version == "2")
        #expect(sk.limits.maxConnections == 4 && sk.limits.timeout == .seconds(2) && sk.limits.maxRetries == 1)
        #expect(sk.limits.requestsPerMinute == 600 && sk.limits.tokensPerMinute == nil)
        let chat = try #require(manifest.models["summarizer"]?.upstream)
        #expect(chat.endpoint == .chat && chat.apiKeyEnv == "OPENAI_API_KEY" && chat.maxTokens == 64)
        #expect(chat.inputNames == ["account", "activity"])
        #expect(chat.messages.count == 2 && chat.messages[1].role == "user")
        guard case .object(let schema)? = chat.responseSchema, case .object(let properties)? = schema["properties"]
        else {
            Issue.record("no schema")
            return
        }
        #expect(Set(properties.keys) == ["label", "score"])
        let embed = try #require(manifest.models["embed"]?.upstream)
        #expect(embed.endpoint == .embeddings && embed.inputNames == ["text"])
        let scorer = try #require(manifest.models["scorer"]?.upstream)
        #expect(scorer.inputNames == ["text", "amount"] && scorer.inputTypes["amount"] == .double)
        #expect(scorer.outputs.contains(.init(name: "score", pointer: "/result/score", type: .float)))
        #expect(manifest.models["local"]?.upstream == nil)
    }

    @Test("mistakes are errors at their line: unknown kind, missing URL or model, bad URL, template without inputs")
    func mistakes() {
        let header = "version: 1\nmodels:\n"
        let cases: [(String, String)] = [
            ("  m:\n    kind: grpc\n    url: http://x\n", "models.m.kind"),
            ("  m:\n    kind: oip\n    model: a\n", "models.m.url"),
            ("  m:\n    kind: oip\n    url: http://x\n", "models.m.model"),
            ("  m:\n    kind: oip\n    url: ftp://x\n    model: a\n", "models.m.url"),
            ("  m:\n    kind: oip\n    url: http://user:secret@x\n    model: a\n", "no credentials"),
            ("  m:\n    kind: openai\n    url: http://x/v1\n    model: a\n", "models.m.messages"),
            (
                "  m:\n    kind: openai\n    url: http://x/v1\n    model: a\n    messages:\n      - {role: user, content: hi}\n",
                "no inputs"
            ),
            (
                "  m:\n    kind: openai\n    url: http://x/v1\n    model: a\n    messages:\n      - {role: robot, content: '{{t}}'}\n",
                "models.m.messages[0].role"
            ),
            ("  m:\n    kind: http\n    url: http://x\n    outputs: {s: {pointer: /s}}\n", "models.m.request"),
            (
                "  m:\n    kind: http\n    url: http://x\n    request: '{{a}}'\n    outputs: {s: {pointer: s}}\n",
                "JSON pointer"
            ),
            (
                "  m:\n    kind: http\n    url: http://x\n    request: '{{a}}'\n    inputs: {b: string}\n    outputs: {s: {pointer: /s}}\n",
                "does not declare 'a'"
            ),
            (
                "  m:\n    kind: oip\n    url: http://x\n    model: a\n    limits: {max_connections: 0}\n",
                "max_connections"
            ),
            ("  m:\n    kind: oip\n    url: http://x\n    model: a\n    limits: {timeout: 2h}\n", "limits.timeout"),
            ("  m:\n    kind: oip\n    url: http://x\n    model: a\n    api_key_env: 'A B'\n", "api_key_env"),
        ]
        for (yaml, expected) in cases {
            let message = Self.problems(header + yaml + "features:\n  f: {model: m}\n")
            #expect(message.contains(expected), "\(yaml) → \(message)")
            #expect(message.contains("freshline.yaml:"), "no file:line in \(message)")
        }
    }

    @Test("a batch feature over an upstream model: the run calls it at batch priority, lookups answer the snapshot")
    func batchRun() async throws {
        let path = try TestManifest.write(
            """
            version: 1
            models:
              remote: {kind: oip, url: "http://127.0.0.1:9", model: sk}
            features:
              nightly:
                model: remote
                key: id
                pattern: batch
                latency_budget: 60s
                batch: {source: {csv: rows.csv}, key_column: id, columns: {X: [a, b, c, d]}, chunk_rows: 40}
            """)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        var csv = "id,a,b,c,d\n"
        for i in 0..<100 { csv += "u\(i),\(i),1,1,1\n" }
        try csv.write(to: folder.appendingPathComponent("rows.csv"), atomically: true, encoding: .utf8)
        let manifest = try ManifestLoader.load(path: path)
        let model = RecordingUpstreamDouble(spec: try #require(manifest.models["remote"]), delay: .zero)
        let stores = try StoreSet.open(for: manifest, logger: Logger(label: "test"))
        let runtime = try ServingRuntime(
            manifest: manifest, metricsFactory: PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()),
            remoteModels: ["remote": model], stores: stores, logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            defer { group.cancelAll() }
            for service in stores.services { group.addTask { try? await service.run() } }
            group.addTask { try await runtime.run() }
            let batch = try #require(runtime.batch)
            let run = try await batch.trigger(feature: "nightly")
            let server = try #require(runtime.features["nightly"])
            try await Wait.until("the run publishes") { server.snapshot?.info.runID == run.id }
            #expect(server.snapshot?.info.keyCount == 100)
            #expect(model.priorities.allSatisfy { $0 == .batch })
            #expect(model.calls.reduce(0, +) == 100)
            #expect(model.calls.count >= 3, "chunks of 40 rows: \(model.calls)")
            let answer = try await server.predict(PredictRequest(key: "u7", inputs: [:]))
            #expect(answer.provenance.source == .batch)
            #expect(answer.outputs["score"] == .number(10), "\(answer.outputs)")
            #expect(answer.provenance.modelVersion == "double:7")
        }
    }
}
