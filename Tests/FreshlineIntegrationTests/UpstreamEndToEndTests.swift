import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineHTTP
import FreshlineJSON
import FreshlineRuntime
import FreshlineStores
import FreshlineTestSupport
import FreshlineTesting
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization
import Testing

/// Freshline in front of real upstream servers, as a user of the README would put it: MLServer serving an sklearn
/// model over OIP V2 and llama-cpp-python's OpenAI-compatible server (chat with a JSON schema, embeddings), both
/// started by `scripts/upstreams.sh` (which installs them; the first run compiles llama.cpp). The manifest is
/// connected with `UpstreamSet`, as `freshline serve` does. Fails, never skips, when the servers cannot start.
@Suite(
    "UpstreamEndToEndTests: Freshline in front of MLServer and llama-cpp-python", .serialized, .timeLimit(.minutes(10)))
struct UpstreamEndToEndTests {
    static let x = "[0.5,-1.2,0.3,2.0,0.0,1.1,-0.4,0.9,0.2,-2.2,1.5,0.7,-0.1,0.05,1.9,-0.6]"

    static func manifest(mlserver: String, llama: String) -> String {
        """
        version: 1
        models:
          sk: {kind: oip, url: "\(mlserver)", model: sk_binary, limits: {breaker_failures: 2, breaker_open_for: 1m}}
          chat:
            kind: openai
            url: \(llama)/v1
            model: tiny-chat
            messages:
              - {role: system, content: "You label support messages."}
              - {role: user, content: "Label this: {{message}}"}
            response_schema:
              type: object
              properties: {label: {type: string, enum: [ok, flag]}, score: {type: number}}
              required: [label, score]
            max_tokens: 48
            temperature: 0
          embed: {kind: openai, url: "\(llama)/v1", model: tiny-embed, endpoint: embeddings, input: "{{text}}"}
        features:
          churn: {model: sk, latency_budget: 60s}
          churn_guarded: {model: sk, latency_budget: 60s, on_failure: {default: {predict: [0]}}}
          moderation: {model: chat, pattern: async}
          similar: {model: embed, latency_budget: 60s}
          churn_nightly:
            model: sk
            key: id
            pattern: batch
            batch:
              source: {csv: accounts.csv}
              columns: {X: [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15]}
              chunk_rows: 64
        """
    }

    static func post(_ client: some TestClientProtocol, _ uri: String, _ body: String, prefer: String? = nil)
        async throws -> (HTTPResponse.Status, [String: JSONValue])
    {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let prefer { headers[HTTPField.Name("Prefer")!] = prefer }
        return try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body)) {
            response in
            guard case .object(let object) = try JSONValue.parse(Array(response.body.readableBytesView)) else {
                return (response.status, [:])
            }
            return (response.status, object)
        }
    }

    /// Connects `manifest`'s upstreams as `freshline serve` does, runs the runtime and its stores, and calls `body`
    /// with a client of the router; everything is stopped however `body` ends.
    static func serve(
        _ manifest: Manifest, batchSchedules: Bool = true,
        _ body:
            @escaping @Sendable (any TestClientProtocol, ServingRuntime, PrometheusCollectorRegistry) async throws
            -> Void
    ) async throws {
        var logger = Logger(label: "freshline.test.upstream-e2e")
        logger.logLevel = .warning
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        let upstreams = try await UpstreamSet.connect(manifest, environment: [:], metrics: factory, logger: logger)
        do {
            let stores = try StoreSet.open(for: manifest, logger: logger)
            let runtime = try ServingRuntime(
                manifest: manifest, metricsFactory: factory, remoteModels: upstreams.models, stores: stores,
                batchSchedules: batchSchedules, logger: logger)
            let app = Application(router: FreshlineServer.router(runtime: runtime, registry: registry))
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Cancelled however the body ends (a failed expectation throws): the services stop.
                defer { group.cancelAll() }
                for service in stores.services { group.addTask { try? await service.run() } }
                group.addTask { try await runtime.run() }
                try await app.test(.router) { client in try await body(client, runtime, registry) }
            }
        } catch {
            await upstreams.close()
            throw error
        }
        await upstreams.close()
    }

    @Test("answers with the upstream's provenance; a job through the LLM; an upstream gone opens the breaker")
    func endToEnd() async throws {
        let (mlserver, mlPort) = try ScriptRunner.startUpstream("mlserver")
        let mlserverRunning = Mutex(true)
        defer {
            if mlserverRunning.withLock({ $0 }) { _ = try? ScriptRunner.run("upstreams.sh", ["stop", String(mlPort)]) }
        }
        let (llama, llamaPort) = try ScriptRunner.startUpstream("llama")
        defer { _ = try? ScriptRunner.run("upstreams.sh", ["stop", String(llamaPort)]) }

        let path = try TestManifest.write(Self.manifest(mlserver: mlserver, llama: llama))
        var csv = "id," + (0..<16).map { "c\($0)" }.joined(separator: ",") + "\n"
        for i in 0..<200 {
            csv += "a\(i)," + (0..<16).map { String(Double(($0 + i) % 7) - 3) }.joined(separator: ",") + "\n"
        }
        try csv.write(
            to: URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("accounts.csv"),
            atomically: true, encoding: .utf8)
        let manifest = try ManifestLoader.load(path: path)
        try await Self.serve(manifest) { client, runtime, registry in
            // OIP: the answer, with the upstream model and version as provenance.
            var (status, answer) = try await Self.post(
                client, "/v1/features/churn/predict", #"{"inputs": {"X": \#(Self.x)}}"#)
            #expect(status == .ok, "\(answer)")
            #expect(answer["model_version"] == .string("sk_binary:1"), "\(answer)")
            guard case .object(let outputs)? = answer["outputs"], case .array(let proba)? = outputs["predict_proba"]
            else {
                Issue.record("no predict_proba in \(answer)")
                return
            }
            #expect(proba.count == 2)

            // Embeddings: a 64-float vector.
            (status, answer) = try await Self.post(
                client, "/v1/features/similar/predict", #"{"inputs": {"text": "hello world"}}"#)
            #expect(status == .ok, "\(answer)")
            if case .object(let o)? = answer["outputs"], case .array(let vector)? = o["embedding"] {
                #expect(vector.count == 64)
            } else {
                Issue.record("no embedding in \(answer)")
            }

            // An async LLM feature: the job's answer is the schema's fields.
            (status, answer) = try await Self.post(
                client, "/v1/features/moderation/predict", #"{"inputs": {"message": "you are great"}}"#,
                prefer: "wait=120")
            #expect(status == .ok, "\(answer)")
            #expect(answer["source"] == .string("async"), "\(answer)")
            if case .object(let o)? = answer["outputs"] {
                #expect(o["label"] == .string("ok") || o["label"] == .string("flag"), "\(answer)")
                #expect(o["score"]?.doubleValue != nil, "\(answer)")
                // The tokens the call used, as llama-cpp-python's `usage` reported them.
                if case .object(let usage)? = answer["usage"], case .integer(let input)? = usage["input_tokens"] {
                    #expect(input > 0, "\(answer)")
                } else {
                    Issue.record("no usage in \(answer)")
                }
            } else {
                Issue.record("no outputs in \(answer)")
            }

            // A batch run through the OIP upstream (chunks of 64 rows, one inference request each); lookups
            // answer from the snapshot.
            let run = try await #require(runtime.batch).trigger(feature: "churn_nightly")
            let nightly = try #require(runtime.features["churn_nightly"])
            try await Wait.until("the run publishes") { nightly.snapshot?.info.runID == run.id }
            #expect(nightly.snapshot?.info.keyCount == 200)
            (status, answer) = try await Self.post(client, "/v1/features/churn_nightly/predict", #"{"key": "a7"}"#)
            #expect(status == .ok && answer["source"] == .string("batch"), "\(answer)")

            // The OIP upstream goes away: 503s until the breaker opens; the guarded feature answers its default.
            try ScriptRunner.run("upstreams.sh", ["stop", String(mlPort)])
            mlserverRunning.withLock { $0 = false }
            for _ in 0..<3 {
                (status, answer) = try await Self.post(
                    client, "/v1/features/churn/predict", #"{"inputs": {"X": \#(Self.x)}}"#)
                #expect(status == .serviceUnavailable, "\(answer)")
                #expect(!"\(answer)".contains("Traceback"))
            }
            (status, answer) = try await Self.post(
                client, "/v1/features/churn_guarded/predict", #"{"inputs": {"X": \#(Self.x)}}"#)
            #expect(status == .ok && answer["source"] == .string("default"), "\(answer)")
            let metrics = String(decoding: registry.emitToBuffer(), as: UTF8.self)
            #expect(metrics.contains(#"freshline_upstream_circuit_open{model="sk"} 1"#), "\(metrics)")
        }
    }

    @Test("a streamed LLM job (stream: true) answers what the same call without streaming does")
    func streaming() async throws {
        let (llama, llamaPort) = try ScriptRunner.startUpstream("llama")
        defer { _ = try? ScriptRunner.run("upstreams.sh", ["stop", String(llamaPort)]) }
        let writer = """
                kind: openai
                url: \(llama)/v1
                model: tiny-chat
                messages:
                  - {role: user, content: "Write one sentence about {{topic}}."}
                max_tokens: 32
                temperature: 0
            """
        let path = try TestManifest.write(
            """
            version: 1
            models:
              streamed:
                stream: true
            \(writer)
              plain:
            \(writer)
            features:
              draft: {model: streamed, pattern: async}
              draft_now: {model: plain, latency_budget: 60s}
            """)
        let manifest = try ManifestLoader.load(path: path)
        #expect(manifest.models["streamed"]?.upstream?.stream == true)
        try await Self.serve(manifest) { client, _, registry in
            let (status, streamed) = try await Self.post(
                client, "/v1/features/draft/predict", #"{"inputs": {"topic": "rivers"}}"#, prefer: "wait=120")
            #expect(status == .ok && streamed["source"] == .string("async"), "\(streamed)")
            let (plainStatus, plain) = try await Self.post(
                client, "/v1/features/draft_now/predict", #"{"inputs": {"topic": "rivers"}}"#)
            #expect(plainStatus == .ok, "\(plain)")
            guard case .object(let a)? = streamed["outputs"], case .string(let text)? = a["text"],
                case .object(let b)? = plain["outputs"]
            else {
                Issue.record("no text in \(streamed) or \(plain)")
                return
            }
            #expect(!text.isEmpty)
            #expect(b["text"] == .string(text), "greedy decoding: the same text streamed or not")
            // The usage of the last chunk (stream_options.include_usage), as the non-streamed answer reports it; but
            // llama-cpp-python 0.3 sends no usage in a stream (it ignores stream_options): then it is unknown (0).
            let unknown = JSONValue.object(["input_tokens": .integer(0), "output_tokens": .integer(0)])
            #expect(streamed["usage"] == plain["usage"] || streamed["usage"] == unknown, "\(streamed) \(plain)")
            let metrics = String(decoding: registry.emitToBuffer(), as: UTF8.self)
            #expect(metrics.contains(#"freshline_upstream_requests_total{model="streamed",outcome="ok"} 2"#))
        }
    }

    @Test(
        "examples/upstreams works (its URLs and budgets adjusted): MLServer in real time, a nightly LLM summary run, a moderation job"
    )
    func example() async throws {
        let (mlserver, mlPort) = try ScriptRunner.startUpstream("mlserver")
        defer { _ = try? ScriptRunner.run("upstreams.sh", ["stop", String(mlPort)]) }
        let (llama, llamaPort) = try ScriptRunner.startUpstream("llama")
        defer { _ = try? ScriptRunner.run("upstreams.sh", ["stop", String(llamaPort)]) }
        // The example as committed, with its servers' URLs pointed at the ones started here, and its latency budgets
        // at 60 s: the other subprocess tests share the 2 cores, and a deadline counts from arrival.
        let example = ScriptRunner.repository.appendingPathComponent("examples/upstreams")
        let text = try String(contentsOf: example.appendingPathComponent("freshline.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "http://127.0.0.1:8081", with: mlserver)
            .replacingOccurrences(of: "http://127.0.0.1:8082", with: llama)
            .replacingOccurrences(of: "latency_budget: 200ms", with: "latency_budget: 60s")
            .replacingOccurrences(of: "latency_budget: 10s", with: "latency_budget: 60s")
        let path = try TestManifest.write(text)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.copyItem(
            at: example.appendingPathComponent("accounts.csv"), to: folder.appendingPathComponent("accounts.csv"))
        let manifest = try ManifestLoader.load(path: path)
        try await Self.serve(manifest, batchSchedules: false) { client, runtime, _ in
            var (status, answer) = try await Self.post(
                client, "/v1/features/churn/predict", #"{"inputs": {"X": \#(Self.x)}}"#)
            #expect(status == .ok && answer["model_version"] == .string("sk_binary:1"), "\(answer)")

            let run = try await #require(runtime.batch).trigger(feature: "account_summary")
            let summaries = try #require(runtime.features["account_summary"])
            try await Wait.until("the summary run publishes") {
                summaries.snapshot?.info.runID == run.id
            }
            #expect(summaries.snapshot?.info.keyCount == 3)
            (status, answer) = try await Self.post(
                client, "/v1/features/account_summary/predict", #"{"key": "acct-2"}"#)
            #expect(status == .ok && answer["source"] == .string("batch"), "\(answer)")
            if case .object(let outputs)? = answer["outputs"], case .string(let text)? = outputs["text"] {
                #expect(!text.isEmpty)
            } else {
                Issue.record("no text in \(answer)")
            }
            // Not in the snapshot: summarised on request (cold_start: realtime).
            (status, answer) = try await Self.post(
                client, "/v1/features/account_summary/predict",
                #"{"key": "acct-9", "inputs": {"plan": "team", "tickets": "1"}}"#)
            #expect(status == .ok && answer["source"] == .string("realtime"), "\(answer)")

            (status, answer) = try await Self.post(
                client, "/v1/features/moderation/predict", #"{"inputs": {"message": "thanks!"}}"#,
                prefer: "wait=120")
            #expect(status == .ok && answer["source"] == .string("async"), "\(answer)")
        }
    }
}
