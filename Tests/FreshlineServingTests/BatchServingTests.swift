import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineHTTP
import FreshlineJSON
import FreshlineRuntime
import FreshlineStore
import FreshlineTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Synchronization
import Testing

/// The batch pattern through the HTTP API: runs publish snapshots, predictions answer from them under the
/// freshness contract, and the stale and cold-start rungs behave as configured.
@Suite("Batch serving")
struct BatchServingTests {
    /// A batch feature over the fixture's `users.csv`. Its one bad row in 37 (2.7%) is over the default
    /// `max_failed_share` (1%), so the section allows 5%.
    static func batchFeature(_ name: String, _ extra: String = "", staleness: String = "1h") -> String {
        """
          \(name):
            model: gbdt
            pattern: batch
            key: user_id
            max_staleness: \(staleness)
            latency_budget: 60s
        \(extra.isEmpty ? "" : extra + "\n")    batch:
              source: {csv: users.csv}
              columns:
                X: [\(BatchFixture.columns.joined(separator: ", "))]
              max_failed_share: 0.05
              chunk_rows: 10
        """
    }

    static let app: HTTPFields = [.authorization: "Bearer app-secret", .contentType: "application/json"]
    static let ops: HTTPFields = [.authorization: "Bearer ops-secret", .contentType: "application/json"]

    func withServer(
        _ manifest: String,
        _ body: @Sendable @escaping (any TestClientProtocol, ServingRuntime) async throws -> Void
    ) async throws {
        let registry = PrometheusCollectorRegistry()
        let runtime = try TestManifest.runtime(path: manifest, factory: PrometheusMetricsFactory(registry: registry))
        let app = Application(router: FreshlineServer.router(runtime: runtime, registry: registry))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runtime.run() }
            try await app.test(.router) { client in try await body(client, runtime) }
            group.cancelAll()
        }
    }

    /// Starts a run through the batch service and waits until the feature serves the snapshot it publishes.
    @discardableResult
    static func publish(_ runtime: ServingRuntime, _ feature: String, keys: [String]? = nil) async throws
        -> BatchRun
    {
        let batch = try #require(runtime.batch)
        let run = try await batch.trigger(feature: feature, keys: keys)
        try await Wait.until("\(feature) serves the snapshot of \(run.id)") {
            runtime.features[feature]?.snapshot?.info.runID == run.id
        }
        return try #require(try await batch.batchStore.run(id: run.id))
    }

    static func predict(_ client: any TestClientProtocol, _ feature: String, _ body: String) async throws -> (
        HTTPResponse.Status, [String: JSONValue], HTTPFields
    ) {
        try await client.execute(
            uri: "/v1/features/\(feature)/predict", method: .post, headers: app, body: ByteBuffer(string: body)
        ) { response in
            (response.status, try HTTPAPITests.json(response.body), response.headers)
        }
    }

    @Test("a batch feature answers from its published snapshot, with provenance, equal to the engine")
    func answersFromSnapshot() async throws {
        let (manifest, rows) = try BatchFixture.write(features: Self.batchFeature("churn"))
        try await withServer(manifest) { client, runtime in
            let run = try await Self.publish(runtime, "churn")
            #expect(run.state == .succeeded)
            #expect(run.rowsWritten == rows.count)
            #expect(run.rowsFailed == 1)
            let model = try #require(runtime.models["gbdt"]?.local)
            for index in [0, 7, 35] {
                let (status, json, headers) = try await Self.predict(client, "churn", #"{"key": "u\#(index)"}"#)
                #expect(status == .ok)
                #expect(json["source"] == .string("batch"))
                #expect(json["snapshot"] == .string("v1"))
                #expect(json["stale"] == .bool(false))
                #expect(headers[.age] != nil)
                let info = try #require(runtime.features["churn"]?.snapshot?.info)
                #expect(json["computed_at"] == .string(Timestamp.rfc3339(info.inputTime)))
                let feeds = try RowBatch.tensors(
                    rows: [["X": .array(rows[index].map(JSONValue.number))]], inputs: model.metadata.inputs)
                let expected = try RowBatch.rows(outputs: try model.run(feeds), count: 1)[0]
                #expect(json["outputs"] == .object(expected))
            }
        }
    }

    @Test("a contract the snapshot cannot meet: recompute, else the stale value flagged, per on_stale")
    func staleness() async throws {
        let features = [
            Self.batchFeature("churn"),
            Self.batchFeature("strict", "    on_failure: error").replacingOccurrences(
                of: "chunk_rows: 10", with: "chunk_rows: 10\n      on_stale: error"),
            Self.batchFeature("lenient").replacingOccurrences(
                of: "chunk_rows: 10", with: "chunk_rows: 10\n      on_stale: fallback"),
        ].joined(separator: "\n")
        let (manifest, rows) = try BatchFixture.write(features: features)
        try await withServer(manifest) { client, runtime in
            for feature in ["churn", "strict", "lenient"] { try await Self.publish(runtime, feature) }
            let x = "[" + rows[3].map { String($0) }.joined(separator: ",") + "]"
            // Key only: no inputs to recompute from, so the stale value answers, flagged.
            var (status, json, _) = try await Self.predict(client, "churn", #"{"key": "u3", "max_staleness": "1ms"}"#)
            #expect(status == .ok)
            #expect(json["source"] == .string("fallback"))
            #expect(json["stale"] == .bool(true))
            // With inputs: recomputed now.
            (status, json, _) = try await Self.predict(
                client, "churn", #"{"key": "u3", "inputs": {"X": \#(x)}, "max_staleness": "1ms"}"#)
            #expect(status == .ok)
            #expect(json["source"] == .string("realtime"))
            #expect(json["stale"] == .bool(false))
            // A generous contract is met by the snapshot.
            (status, json, _) = try await Self.predict(client, "churn", #"{"key": "u3", "max_staleness": "7d"}"#)
            #expect(json["source"] == .string("batch"))
            // on_stale: error refuses with 503 stale.
            (status, json, _) = try await Self.predict(client, "strict", #"{"key": "u3", "max_staleness": "1ms"}"#)
            #expect(status == .serviceUnavailable)
            #expect(
                json["error"].flatMap { if case .object(let e) = $0 { e["code"] } else { nil } } == .string("stale"))
            // on_stale: fallback answers the stale value even when inputs are given.
            (status, json, _) = try await Self.predict(
                client, "lenient", #"{"key": "u3", "inputs": {"X": \#(x)}, "max_staleness": "1ms"}"#)
            #expect(json["source"] == .string("fallback"))
            #expect(json["stale"] == .bool(true))
        }
    }

    @Test("keys the snapshot lacks follow the cold-start policy")
    func coldStart() async throws {
        let features = [
            Self.batchFeature("churn"),
            Self.batchFeature("closed").replacingOccurrences(
                of: "chunk_rows: 10", with: "chunk_rows: 10\n      cold_start: error"),
            Self.batchFeature("defaulted", "    on_failure: {default: {label: 0}}\n    outputs: [label]")
                .replacingOccurrences(of: "chunk_rows: 10", with: "chunk_rows: 10\n      cold_start: default"),
        ].joined(separator: "\n")
        let (manifest, rows) = try BatchFixture.write(features: features)
        try await withServer(manifest) { client, runtime in
            let x = "[" + rows[0].map { String($0) }.joined(separator: ",") + "]"
            func code(_ json: [String: JSONValue]) -> JSONValue? {
                json["error"].flatMap { if case .object(let e) = $0 { e["code"] } else { nil } }
            }
            // Before any snapshot: the policy answers what it can; what it cannot is 503 (the server's state), not
            // a 404 that would blame the key.
            var (status, json, headers) = try await Self.predict(client, "churn", #"{"key": "u0"}"#)
            #expect(status == .serviceUnavailable)
            #expect(code(json) == .string("unavailable"))
            #expect(headers[.retryAfter] == "30")
            #expect("\(json)".contains("no published snapshot yet"))
            (status, json, headers) = try await Self.predict(
                client, "closed", #"{"key": "u0", "inputs": {"X": \#(x)}}"#)
            #expect(status == .serviceUnavailable)
            #expect(code(json) == .string("unavailable"))
            #expect(headers[.retryAfter] == "30")
            (status, json, _) = try await Self.predict(client, "churn", #"{"key": "u0", "inputs": {"X": \#(x)}}"#)
            #expect(status == .ok)
            #expect(json["source"] == .string("realtime"))
            (status, json, _) = try await Self.predict(client, "defaulted", #"{"key": "u0"}"#)
            #expect(status == .ok)
            #expect(json["source"] == .string("default"))

            for feature in ["churn", "closed", "defaulted"] { try await Self.publish(runtime, feature) }
            (status, json, _) = try await Self.predict(
                client, "churn", #"{"key": "new-user", "inputs": {"X": \#(x)}}"#)
            #expect(status == .ok)
            #expect(json["source"] == .string("realtime"))
            (status, json, _) = try await Self.predict(client, "churn", #"{"key": "new-user"}"#)
            #expect(status == .notFound)
            #expect(
                json["error"].flatMap { if case .object(let e) = $0 { e["code"] } else { nil } }
                    == .string("unknown_key"))
            (status, _, _) = try await Self.predict(client, "closed", #"{"key": "new-user", "inputs": {"X": \#(x)}}"#)
            #expect(status == .notFound)
            (status, json, _) = try await Self.predict(client, "defaulted", #"{"key": "new-user"}"#)
            #expect(status == .ok)
            #expect(json["source"] == .string("default"))
            #expect(json["outputs"] == .object(["label": .integer(0)]))
            // The bad source row never reached the snapshot.
            (status, _, _) = try await Self.predict(client, "closed", #"{"key": "bad"}"#)
            #expect(status == .notFound)
            // Coverage counts hits and misses.
            let live = try #require(runtime.features["closed"]).liveFigures
            #expect(live.snapshotMisses == 3, "one before the snapshot, two after")
        }
    }

    @Test(
        "the worker that publishes seals the snapshot; a backfill over a sealed snapshot copies its rows from the file")
    func backfillOverSealedSnapshot() async throws {
        let (manifest, rows) = try BatchFixture.write(features: Self.batchFeature("churn"))
        try await withServer(manifest) { _, runtime in
            let store = try #require(runtime.batch).batchStore
            let v1run = try await Self.publish(runtime, "churn")
            let v1 = try #require(try await store.snapshots(feature: "churn", limit: 1).first)
            #expect(v1.runID == v1run.id)
            try await Wait.until("v1 is sealed") { try await store.snapshot(id: v1.id)?.file != nil }
            #expect(try await store.chunks(snapshotID: v1.id).isEmpty)
            let before = try #require(runtime.features["churn"]?.snapshot)
            let backfill = try await Self.publish(runtime, "churn", keys: ["u1", "u2"])
            let v2 = try #require(runtime.features["churn"]?.snapshot)
            #expect(v2.info.runID == backfill.id && v2.keyCount == rows.count)
            for key in ["u0", "u1", "u5", "u\(rows.count - 1)"] {
                #expect(v2.outputs(for: key) != nil && v2.outputs(for: key) == before.outputs(for: key), "\(key)")
            }
            try await Wait.until("v2 is sealed") { try await store.snapshot(id: v2.info.id)?.file != nil }
        }
    }

    @Test("runs API: start, watch, failures, backfill, snapshots; admin only")
    func runsAPI() async throws {
        let features = Self.batchFeature("churn") + "\n  live:\n    model: gbdt\n"
        let (manifest, rows) = try BatchFixture.write(features: features)
        try await withServer(manifest) { client, runtime in
            // Predict tokens may not start runs.
            try await client.execute(uri: "/v1/features/churn/runs", method: .post, headers: Self.app) { response in
                #expect(response.status == .forbidden)
            }
            let location = try await client.execute(
                uri: "/v1/features/churn/runs", method: .post, headers: Self.ops
            ) { response -> String in
                #expect(response.status == .accepted)
                let json = try HTTPAPITests.json(response.body)
                #expect(json["state"] == .string("running"))
                return try #require(response.headers[.location])
            }
            #expect(location.hasPrefix("/v1/runs/run_"))
            var run: [String: JSONValue] = [:]
            try await Wait.until("the run succeeds") {
                run = try await client.execute(uri: location, method: .get, headers: Self.ops) { response in
                    try HTTPAPITests.json(response.body)
                }
                return run["state"] == .string("succeeded")
            }
            #expect(run["rows_total"] == .integer(Int64(rows.count + 1)))
            #expect(run["rows_written"] == .integer(Int64(rows.count)))
            #expect(run["rows_failed"] == .integer(1))
            guard case .array(let failures)? = run["failures"], case .object(let failure)? = failures.first else {
                Issue.record("no failures listed")
                return
            }
            #expect(failure["location"] == .string("users.csv:\(rows.count + 2)"))
            guard case .string(let reason)? = failure["reason"] else { return }
            #expect(reason.contains("f0") && reason.contains("not a number"))

            // A backfill over two keys publishes v2 with every key still present.
            try await client.execute(
                uri: "/v1/features/churn/runs", method: .post, headers: Self.ops,
                body: ByteBuffer(string: #"{"keys": ["u1", "u2"]}"#)
            ) { response in #expect(response.status == .accepted) }
            try await Wait.until("v2 serves") { runtime.features["churn"]?.snapshot?.info.version == 2 }
            #expect(runtime.features["churn"]?.snapshot?.keyCount == rows.count)
            try await client.execute(uri: "/v1/features/churn/snapshots", method: .get, headers: Self.ops) {
                response in
                let json = try HTTPAPITests.json(response.body)
                guard case .array(let items)? = json["snapshots"], items.count == 2,
                    case .object(let newest) = items[0], case .object(let older) = items[1]
                else {
                    Issue.record("expected two snapshots: \(json)")
                    return
                }
                #expect(newest["label"] == .string("v2"))
                #expect(newest["serving"] == .bool(true))
                #expect(newest["state"] == .string("published"))
                #expect(older["state"] == .string("retired"))
            }
            try await client.execute(
                uri: "/v1/features/churn/runs", method: .post, headers: Self.ops,
                body: ByteBuffer(string: #"{"keys": 3}"#)
            ) { response in #expect(response.status == .badRequest) }
            try await client.execute(uri: "/v1/features/live/runs", method: .post, headers: Self.ops) { response in
                #expect(response.status == .conflict)
            }
            try await client.execute(uri: "/v1/features/nope/runs", method: .post, headers: Self.ops) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/v1/runs/run_missing", method: .get, headers: Self.ops) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    @Test("readiness fails while a snapshot is missing or older than max_staleness")
    func readiness() async throws {
        let (manifest, _) = try BatchFixture.write(features: Self.batchFeature("churn"))
        try await withServer(manifest) { client, runtime in
            try await Wait.until("the start-up snapshot load") { runtime.batch?.snapshotsLoaded == true }
            try await client.execute(uri: "/healthz/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(String(buffer: response.body).contains("no published snapshot"))
            }
            try await Self.publish(runtime, "churn")
            try await client.execute(uri: "/healthz/ready", method: .get) { response in
                #expect(response.status == .ok)
            }
        }
    }

    @Test("a snapshot published by another process is served within the poll interval")
    func publishedElsewhere() async throws {
        let (manifest, _) = try BatchFixture.write(features: Self.batchFeature("churn"))
        try await withServer(manifest) { _, runtime in
            // A second runner on the same store file stands in for `freshline run` in another process.
            let loaded = try ManifestLoader.load(path: manifest)
            let store = try SQLiteStore(
                path: URL(fileURLWithPath: manifest).deletingLastPathComponent().appendingPathComponent("state.sqlite")
                    .path)
            let spec = try #require(loaded.features["churn"])
            let runner = BatchRunner(
                feature: spec, model: try #require(runtime.models["gbdt"]?.local), manifestPath: manifest, store: store,
                metrics: nil)
            let run = try await runner.start(trigger: .manual)
            let snapshot = try await runner.execute(run)
            // The poll interval is two seconds; the bound is generous because the whole suite shares two cores.
            try await Wait.until("the server swaps in v\(snapshot.version)", timeout: .seconds(60)) {
                runtime.features["churn"]?.snapshot?.info.id == snapshot.id
            }
        }
    }

    @Test(
        "a run in many small ranges, worked in two lanes: every row once, each key's outputs what the model answers for its row (quoted rows between ranges)"
    )
    func manyRangesInTwoLanes() async throws {
        // 40 ranges of 3 chunks; rows with a quoted cell sit at several range boundaries, so a range that goes on
        // with the reader the previous one left, and one that opens the source and skips, both meet them.
        let feature = Self.batchFeature("churn").replacingOccurrences(
            of: "chunk_rows: 10", with: "chunk_rows: 16\n      range_rows: 48\n      threads: 2")
        let rows = try BatchFixture.write(features: feature).rows
        var extra = ""
        for copy in 0..<20 {
            for (index, row) in rows.enumerated() {
                var cells = row.map { String($0) }
                if index % 48 == 47 { cells[0] = "\"\(cells[0])\"" }
                extra += "c\(copy)_\(index)," + cells.joined(separator: ",") + "\n"
            }
        }
        let (manifest, _) = try BatchFixture.write(features: feature, extraRows: extra)
        let loaded = try ManifestLoader.load(path: manifest)
        let store = try SQLiteStore(
            path: URL(fileURLWithPath: manifest).deletingLastPathComponent().appendingPathComponent("state.sqlite").path
        )
        let spec = try #require(loaded.features["churn"])
        let model = try Model(contentsOf: TestManifest.zoo.appendingPathComponent("gbc_binary.onnx"))
        let runner = BatchRunner(feature: spec, model: model, manifestPath: manifest, store: store, metrics: nil)
        let run = try await runner.start(trigger: .manual)
        let snapshot = try await runner.execute(run)

        let total = rows.count * 21 + 1  // the fixture's rows, 20 copies, and the row with bad cells
        let ranges = try await store.ranges(runID: run.id)
        #expect(ranges.count == (total + 47) / 48)
        #expect(ranges.allSatisfy { $0.state == .done })
        let finished = try #require(try await store.run(id: run.id))
        #expect(finished.rowsDone == total)
        #expect(finished.rowsWritten == total - 1)
        #expect(try await store.failures(runID: run.id, limit: 10).map(\.key) == ["bad"])
        #expect(snapshot.keyCount == total - 1)
        let chunks = try await store.chunks(snapshotID: snapshot.id)
        let keys = chunks.flatMap(\.keys)
        #expect(keys.count == total - 1)
        #expect(Set(keys).count == keys.count)
        // In source order: the fixture's rows, then the copies.
        let expectedKeys =
            rows.indices.map { "u\($0)" } + (0..<20).flatMap { copy in rows.indices.map { "c\(copy)_\($0)" } }
        #expect(keys == expectedKeys)
        // Every row's outputs are the model's for that row, as one batch computes them.
        let feeds = try RowBatch.tensors(
            rows: rows.map { ["X": JSONValue.array($0.map(JSONValue.number))] }, inputs: model.metadata.inputs)
        let expected = try RowBatch.serializedRows(outputs: try model.run(feeds), count: rows.count)
        let outputs = chunks.flatMap(\.outputs)
        for (position, output) in outputs.enumerated() where output != expected[position % rows.count] {
            Issue.record("\(keys[position]): \(String(decoding: output, as: UTF8.self))")
            break
        }
    }

    final class GrantLog: Sendable {
        private let log = Mutex<[String]>([])
        func add(_ name: String) { log.withLock { $0.append(name) } }
        var names: [String] { log.withLock { $0 } }
    }

    @Test("the read gate: one turn at a time, in order of asking; ending a turn twice passes it on once")
    func readGate() async throws {
        let gate = ReadGate()
        let first = await gate.take()
        let granted = GrantLog()
        let second = Task {
            let turn = await gate.take()
            granted.add("second")
            return turn
        }
        try await Task.sleep(for: .milliseconds(50))
        let third = Task {
            let turn = await gate.take()
            granted.add("third")
            return turn
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(granted.names.isEmpty, "a turn was granted while the first was held")
        first.end()
        first.end()
        let secondTurn = await second.value
        try await Task.sleep(for: .milliseconds(50))
        #expect(granted.names == ["second"], "ending the first turn twice passed it on twice")
        secondTurn.end()
        let thirdTurn = await third.value
        #expect(granted.names == ["second", "third"])
        thirdTurn.end()
        // Free again: taken at once.
        (await gate.take()).end()
    }

    @Test("catch-up: a missed schedule slot runs once at start-up, unless catch_up is skip")
    func catchUp() async throws {
        let features = [
            Self.batchFeature("yearly").replacingOccurrences(
                of: "chunk_rows: 10", with: "chunk_rows: 10\n      schedule: \"0 0 1 1 *\""),
            Self.batchFeature("skipper").replacingOccurrences(
                of: "chunk_rows: 10", with: "chunk_rows: 10\n      schedule: \"0 0 1 1 *\"\n      catch_up: skip"),
        ].joined(separator: "\n")
        let (manifest, _) = try BatchFixture.write(features: features)
        try await withServer(manifest) { _, runtime in
            try await Wait.until("the catch-up run publishes") { runtime.features["yearly"]?.snapshot != nil }
            let store = try #require(runtime.batch).batchStore
            let runs = try await store.runs(feature: "yearly", limit: 10)
            #expect(runs.count == 1)
            #expect(runs.first?.trigger == .catchUp)
            #expect(runs.first?.scheduledFor.map { $0 <= Date().timeIntervalSince1970 } == true)
            #expect(try await store.runs(feature: "skipper", limit: 10).isEmpty)
        }
    }
}
