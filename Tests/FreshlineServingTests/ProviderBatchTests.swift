import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineRuntime
import FreshlineStore
import FreshlineTestSupport
import FreshlineTesting
import FreshlineUpstream
import Logging
import Testing

/// Batch runs through a provider's Batch API (`batch.provider_batch`), against `BatchAPITestDouble`.
@Suite("Provider batches (Batch API test double)")
struct ProviderBatchTests {
    /// Six accounts: `acct-3` twice (the later row wins, one request), `acct-4`'s notes make the provider refuse it.
    static let csv = """
        account_id,notes
        acct-1,paid on time
        acct-2,two late payments
        acct-3,first row of three
        acct-4,FAIL this one
        acct-3,second row of three
        acct-5,new customer

        """

    /// A folder with the manifest and the CSV, the runner over a fresh SQLite store, and the upstream model.
    struct World {
        let folder: URL
        let runner: BatchRunner
        let store: SQLiteStore
        let model: any RemoteModel
    }

    static func world(url: String, extra: String = "", csv: String = Self.csv) async throws -> World {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pb-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("freshline.yaml").path
        try BatchAPITestDouble.manifest(url: url, extra: extra).write(toFile: path, atomically: true, encoding: .utf8)
        try csv.write(to: folder.appendingPathComponent("accounts.csv"), atomically: true, encoding: .utf8)
        let manifest = try ManifestLoader.load(path: path)
        let spec = try #require(manifest.models["writer"])
        var logger = Logger(label: "provider-batch-test")
        logger.logLevel = .critical
        let remote = try await Upstreams.connect(spec, environment: [:], logger: logger)
        let store = try SQLiteStore(path: folder.appendingPathComponent("state.sqlite").path)
        let runner = BatchRunner(
            feature: try #require(manifest.features["summary"]), model: ServingModel(spec: spec, remote: remote),
            manifestPath: path, store: store, metrics: nil)
        return World(folder: folder, runner: runner, store: store, model: remote)
    }

    /// The published snapshot's rows: key → outputs (JSON object text).
    static func rows(_ store: SQLiteStore, _ snapshot: SnapshotInfo, directory: String? = nil) async throws
        -> [String: String]
    {
        try await SnapshotRows.read(store, snapshot, directory: directory)
    }

    @Test("a run becomes one provider batch: JSONL with custom_id = key, answers and refusals read back, tokens kept")
    func publishes() async throws {
        let api = BatchAPITestDouble()
        try await api.run { url in
            let world = try await Self.world(url: url)
            defer { Task { await world.model.shutdown() } }
            let run = try await world.runner.start(trigger: .manual)
            let snapshot = try await world.runner.execute(run)
            #expect(api.calls(.upload) == 1)
            #expect(api.calls(.create) == 1)
            #expect(api.calls(.retrieve) >= 3, "a batch takes three polls to finish in the double")
            let batch = try #require(api.batches.first)
            #expect(batch.metadata["freshline_run"] == run.id && batch.metadata["freshline_range"] == "0")
            #expect(batch.endpoint == "/v1/chat/completions")
            // Five distinct keys, one line each; the repeated key sends its later row.
            let lines = api.fileLines(batch.inputFileID)
            #expect(lines.count == 5)
            #expect(lines.contains { $0.contains(#""custom_id":"acct-3""#) && $0.contains("second row of three") })
            #expect(!lines.contains { $0.contains("first row of three") })
            #expect(
                lines.allSatisfy { $0.contains(#""url":"/v1/chat/completions""#) && $0.contains(#""method":"POST""#) })

            let rows = try await Self.rows(world.store, snapshot)
            #expect(Set(rows.keys) == ["acct-1", "acct-2", "acct-3", "acct-5"])
            #expect(rows["acct-2"] == #"{"text":"summary: two late payments"}"#)
            #expect(rows["acct-3"] == #"{"text":"summary: second row of three"}"#)
            #expect(snapshot.modelVersion == "fake-batch-chat")
            let failures = try await world.store.failures(runID: run.id, limit: 10)
            #expect(failures.count == 1)
            #expect(failures.first?.key == "acct-4")
            #expect(failures.first?.reason.contains("answered 400") == true)
            let finished = try #require(try await world.store.run(id: run.id))
            #expect(finished.state == .succeeded)
            #expect(finished.rowsDone == 6 && finished.rowsWritten == 5 && finished.rowsFailed == 1)
            // Four requests answered (10 prompt + 5 completion tokens each), counted once for the repeated key.
            #expect(finished.inputTokens == 40 && finished.outputTokens == 20)
            let ranges = try await world.store.ranges(runID: run.id)
            #expect(ranges.map(\.providerBatch) == [batch.id])
        }
    }

    @Test("the Batch API's faults are waited out: 429 with Retry-After, 500s, an answer that is not JSON")
    func faults() async throws {
        let api = BatchAPITestDouble()
        try await api.run { url in
            let world = try await Self.world(url: url)
            defer { Task { await world.model.shutdown() } }
            api.fail(.upload, [.status(429, retryAfter: "0")])
            api.fail(.create, [.status(500)])
            api.fail(.retrieve, [.status(503), .notJSON, .status(500)])
            api.fail(.content, [.status(502)])
            let run = try await world.runner.start(trigger: .manual)
            let snapshot = try await world.runner.execute(run)
            #expect(snapshot.keyCount == 4)
            // The create that answered 500 made nothing here; the one batch is the retry's.
            #expect(api.batches.count == 1)
            #expect(api.calls(.create) == 2)
        }
    }

    @Test("a create whose answer was lost does not make a second batch: the retry finds the first by its metadata")
    func lostCreateAnswer() async throws {
        let api = BatchAPITestDouble()
        try await api.run { url in
            let world = try await Self.world(url: url)
            defer { Task { await world.model.shutdown() } }
            let run = try await world.runner.start(trigger: .manual)
            // As if this run's earlier holder created the batch and died before recording its id.
            let metadata = ["freshline_feature": "summary", "freshline_run": run.id, "freshline_range": "0"]
            var lines: [UInt8] = []
            for (key, notes) in [("acct-1", "adopted one"), ("acct-2", "adopted two")] {
                ProviderBatchAPI.appendRequestLine(
                    customID: key, url: "/v1/chat/completions",
                    body: .object([
                        "model": .string("fake-batch-chat"),
                        "messages": .array([.object(["role": .string("user"), "content": .string(notes)])]),
                    ]), to: &lines)
            }
            let adopted = api.preexisting(lines: lines, metadata: metadata)
            let snapshot = try await world.runner.execute(run)
            #expect(api.calls(.create) == 0 && api.calls(.upload) == 0)
            #expect(try await world.store.ranges(runID: run.id).first?.providerBatch == adopted)
            let rows = try await Self.rows(world.store, snapshot)
            #expect(rows["acct-1"] == #"{"text":"summary: adopted one"}"#)
            // Keys the adopted batch does not hold are failures, not guesses.
            let failures = try await world.store.failures(runID: run.id, limit: 10)
            #expect(failures.compactMap(\.key).contains("acct-5"))
        }
    }

    @Test("a batch the provider fails ends the run failed with its reason; the previous snapshot keeps serving")
    func providerFails() async throws {
        let api = BatchAPITestDouble()
        try await api.run { url in
            let world = try await Self.world(url: url)
            defer { Task { await world.model.shutdown() } }
            let first = try await world.runner.execute(try await world.runner.start(trigger: .manual))
            api.outcome(.fail("the input file is not valid JSONL"))
            let run = try await world.runner.start(trigger: .manual)
            await #expect(throws: (any Error).self) { _ = try await world.runner.execute(run) }
            let failed = try #require(try await world.store.run(id: run.id))
            #expect(failed.state == .failed)
            #expect(failed.error?.contains("the input file is not valid JSONL") == true)
            #expect(try await world.store.publishedSnapshot(feature: "summary")?.id == first.id)
        }
    }

    @Test("an expired batch publishes the rows it answered; the others are failures saying it expired")
    func expired() async throws {
        let api = BatchAPITestDouble()
        try await api.run { url in
            let world = try await Self.world(url: url)
            defer { Task { await world.model.shutdown() } }
            api.outcome(.expire(afterRows: 2))
            let run = try await world.runner.start(trigger: .manual)
            let snapshot = try await world.runner.execute(run)
            let rows = try await Self.rows(world.store, snapshot)
            #expect(Set(rows.keys) == ["acct-1", "acct-2"])
            let failures = try await world.store.failures(runID: run.id, limit: 10)
            #expect(
                failures.filter { $0.reason.contains("expired") }.compactMap(\.key).sorted() == [
                    "acct-3", "acct-3", "acct-4", "acct-5",
                ])
        }
    }

    @Test("a worker stopped while the provider works is followed by one that polls the same batch, never a second")
    func resumesTheSameBatch() async throws {
        let api = BatchAPITestDouble()
        try await api.run { url in
            let world = try await Self.world(url: url)
            defer { Task { await world.model.shutdown() } }
            api.hold(true)
            let run = try await world.runner.start(trigger: .manual)
            let working = Task { try await world.runner.execute(run) }
            let deadline = ContinuousClock.now + .seconds(60)
            while try await world.store.ranges(runID: run.id).first?.providerBatch == nil {
                try #require(ContinuousClock.now < deadline, "the batch id was never recorded")
                try await Task.sleep(for: .milliseconds(20))
            }
            working.cancel()
            _ = await working.result
            #expect(try await world.store.run(id: run.id)?.state == .running)
            api.hold(false)
            // Another worker (a new runner on the same store) takes the range over.
            let manifest = try ManifestLoader.load(path: world.folder.appendingPathComponent("freshline.yaml").path)
            let next = BatchRunner(
                feature: try #require(manifest.features["summary"]),
                model: ServingModel(spec: try #require(manifest.models["writer"]), remote: world.model),
                manifestPath: world.folder.appendingPathComponent("freshline.yaml").path, store: world.store,
                metrics: nil)
            let snapshot = try await next.execute(run)
            #expect(snapshot.keyCount == 4)
            #expect(api.calls(.create) == 1 && api.calls(.upload) == 1)
        }
    }

    @Test("examples/upstreams/openai.yaml: the nightly account summary runs as a provider batch, with the API key")
    func example() async throws {
        let api = BatchAPITestDouble()
        try await api.run { url in
            let example = ScriptRunner.repository.appendingPathComponent("examples/upstreams")
            let text = try String(contentsOf: example.appendingPathComponent("openai.yaml"), encoding: .utf8)
                .replacingOccurrences(of: "https://api.openai.com/v1", with: url)
                .replacingOccurrences(of: "{poll: 5m}", with: "{poll: 20ms}")
            let path = try TestManifest.write(text)
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
            try FileManager.default.copyItem(
                at: example.appendingPathComponent("accounts.csv"), to: folder.appendingPathComponent("accounts.csv"))
            let manifest = try ManifestLoader.load(path: path)
            let spec = try #require(manifest.models["summarizer"])
            var logger = Logger(label: "provider-batch-example")
            logger.logLevel = .critical
            let remote = try await Upstreams.connect(
                spec, environment: ["OPENAI_API_KEY": "sk-test-key"], logger: logger)
            defer { Task { await remote.shutdown() } }
            let store = try SQLiteStore(path: folder.appendingPathComponent("state.sqlite").path)
            let runner = BatchRunner(
                feature: try #require(manifest.features["account_summary"]),
                model: ServingModel(spec: spec, remote: remote), manifestPath: path, store: store, metrics: nil)
            let snapshot = try await runner.execute(try await runner.start(trigger: .schedule))
            #expect(snapshot.keyCount == 3)
            let rows = try await Self.rows(store, snapshot)
            #expect(rows["acct-2"] == #"{"text":"summary: Account acct-2: plan enterprise, 0 tickets this month."}"#)
            #expect(api.authorizations == ["Bearer sk-test-key"])
        }
    }

    @Test("an embeddings model runs through the Batch API too: one input text per line, the vector read back")
    func embeddings() async throws {
        let api = BatchAPITestDouble()
        try await api.run { url in
            let text = BatchAPITestDouble.manifest(url: url).replacingOccurrences(
                of: """
                        messages:
                          - {role: system, content: "Summarise the account."}
                          - {role: user, content: "{{notes}}"}
                    """,
                with: """
                        endpoint: embeddings
                        input: "{{notes}}"
                    """)
            let path = try TestManifest.write(text)
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
            try Self.csv.write(to: folder.appendingPathComponent("accounts.csv"), atomically: true, encoding: .utf8)
            let manifest = try ManifestLoader.load(path: path)
            let spec = try #require(manifest.models["writer"])
            let remote = try await Upstreams.connect(spec, environment: [:], logger: Logger(label: "embeddings"))
            defer { Task { await remote.shutdown() } }
            let store = try SQLiteStore(path: folder.appendingPathComponent("state.sqlite").path)
            let runner = BatchRunner(
                feature: try #require(manifest.features["summary"]), model: ServingModel(spec: spec, remote: remote),
                manifestPath: path, store: store, metrics: nil)
            let run = try await runner.start(trigger: .manual)
            let snapshot = try await runner.execute(run)
            let lines = api.fileLines(try #require(api.batches.first).inputFileID)
            #expect(lines.count == 5 && lines.allSatisfy { $0.contains(#""url":"/v1/embeddings""#) })
            let rows = try await Self.rows(store, snapshot)
            #expect(rows["acct-2"] == #"{"embedding":[17.0,1.0,0.0]}"#, "\(rows)")
            #expect(try await store.run(id: run.id)?.inputTokens == 12)
        }
    }

    @Test("provider_batch is checked with the manifest: openai models only, a poll and a window the API takes")
    func manifestErrors() throws {
        func problems(_ text: String) -> String {
            do {
                _ = try ManifestLoader.parse(text, path: "/tmp/m.yaml")
                return ""
            } catch { return "\(error)" }
        }
        let base = BatchAPITestDouble.manifest(url: "http://127.0.0.1:9/v1")
        let onnxModel = base.replacingOccurrences(of: "model: writer\n", with: "model: tree\n")
            .replacingOccurrences(of: "models:\n", with: "models:\n  tree: tree.onnx\n")
        #expect(problems(onnxModel).contains("/tmp/m.yaml:"))
        #expect(problems(onnxModel).contains("needs a model of kind openai (model 'tree' is of kind onnx)"))
        let slowPoll = base.replacingOccurrences(of: "{poll: 20ms}", with: "{poll: 2h}")
        #expect(problems(slowPoll).contains("features.summary.batch.provider_batch.poll"))
        let window = base.replacingOccurrences(of: "{poll: 20ms}", with: "{completion_window: 48h}")
        #expect(problems(window).contains("must be 24h"))
        #expect(problems(base.replacingOccurrences(of: "{poll: 20ms}", with: "true")) == "")
    }
}
