import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineRuntime
import FreshlineStore
import FreshlineTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// A bad batch run never replaces a good snapshot: `batch.max_failed_share` and `batch.allow_empty` decide, where
/// the run's last range completes, whether it publishes; a refused run ends failed, the previous snapshot serves on,
/// and readiness, metrics and the run record say why. `freshline check` and `freshline run` on the binary:
/// `BatchPublishGuardCommandLineTests` (FreshlineIntegrationTests).
@Suite("Batch publish guard")
struct BatchPublishGuardTests {
    // MARK: The policy alone

    static func run(written: Int, failed: Int, done: Int? = nil) -> BatchRun {
        BatchRun(
            id: "run_x", feature: "churn", trigger: .manual, snapshotID: 1, startedAt: 0, heartbeatAt: 0, owner: "h:1",
            rowsDone: done ?? written + failed, rowsWritten: written, rowsFailed: failed)
    }

    static func snapshot(version: Int, keys: Int) -> SnapshotInfo {
        SnapshotInfo(
            id: 1, feature: "churn", version: version, runID: "run_old", modelVersion: "mv", inputTime: 0,
            createdAt: 0, publishedAt: 0, keyCount: keys, state: .published)
    }

    @Test("the policy: over the share refuses with counts, limit and first failure; at the share publishes")
    func policy() {
        let policy = PublishPolicy()
        #expect(policy.maxFailedShare == 0.01 && !policy.allowEmpty)
        let first = RowFailure(ordinal: 1, location: "users.csv:2", key: "u0", reason: "column 'f0': bad")
        let previous = Self.snapshot(version: 4, keys: 9_000)
        let refusal = policy.refusal(
            run: Self.run(written: 0, failed: 10_000), keyCount: 0, previous: previous, firstFailure: first)
        #expect(
            refusal
                == "10000 of 10000 rows failed (100%), over the limit batch.max_failed_share 0.01 (1%); first failure: "
                + "users.csv:2: column 'f0': bad; nothing published, snapshot v4 keeps serving")
        // Exactly at the limit (100 of 10,000) publishes; one more row does not.
        #expect(
            policy.refusal(
                run: Self.run(written: 9_900, failed: 100), keyCount: 9_900, previous: previous, firstFailure: first)
                == nil)
        #expect(
            policy.refusal(
                run: Self.run(written: 9_899, failed: 101), keyCount: 9_899, previous: previous, firstFailure: first)?
                .hasPrefix("101 of 10000 rows failed (1%)") == true)
        // A backfill's share is over the rows of its subset, not over the rows it skipped.
        #expect(
            policy.refusal(
                run: Self.run(written: 2, failed: 1, done: 10_000), keyCount: 9_000, previous: previous,
                firstFailure: first) != nil)
        // Share 0: any failure refuses; share 1: none does.
        #expect(
            PublishPolicy(maxFailedShare: 0).refusal(
                run: Self.run(written: 999, failed: 1), keyCount: 999, previous: nil, firstFailure: nil) != nil)
        #expect(
            PublishPolicy(maxFailedShare: 1).refusal(
                run: Self.run(written: 0, failed: 5), keyCount: 0, previous: nil, firstFailure: nil) == nil)
        // Empty over non-empty refuses unless allowed; empty over nothing or over empty publishes.
        let empty = Self.run(written: 0, failed: 0)
        #expect(
            policy.refusal(run: empty, keyCount: 0, previous: previous, firstFailure: nil)?.contains(
                "batch.allow_empty: true") == true)
        #expect(
            PublishPolicy(allowEmpty: true).refusal(run: empty, keyCount: 0, previous: previous, firstFailure: nil)
                == nil)
        #expect(policy.refusal(run: empty, keyCount: 0, previous: nil, firstFailure: nil) == nil)
        #expect(
            policy.refusal(run: empty, keyCount: 0, previous: Self.snapshot(version: 1, keys: 0), firstFailure: nil)
                == nil)
    }

    // MARK: The manifest

    @Test("max_failed_share and allow_empty parse with their defaults; a share outside 0…1 is an error at its line")
    func manifestKeys() throws {
        let manifest = try ManifestLoader.load(
            path: try TestManifest.write(
                """
                models:
                  m: ZOO/gbc_binary.onnx
                features:
                  a:
                    model: m
                    key: user_id
                    batch: {source: {csv: users.csv}}
                  b:
                    model: m
                    key: user_id
                    batch: {source: {csv: users.csv}, max_failed_share: 0.25, allow_empty: true}
                """))
        let a = try #require(manifest.features["a"]?.batch)
        #expect(a.publishPolicy == PublishPolicy(maxFailedShare: 0.01, allowEmpty: false))
        let b = try #require(manifest.features["b"]?.batch)
        #expect(b.publishPolicy == PublishPolicy(maxFailedShare: 0.25, allowEmpty: true))

        let path = try TestManifest.write(
            """
            models:
              m: ZOO/gbc_binary.onnx
            features:
              a:
                model: m
                key: user_id
                batch:
                  source: {csv: users.csv}
                  max_failed_share: 1.5
                  allow_empty: sometimes
            """)
        do {
            _ = try ManifestLoader.load(path: path)
            Issue.record("accepted max_failed_share: 1.5")
        } catch let errors as ManifestErrors {
            let messages = errors.errors.map(\.description)
            #expect(
                messages.contains("\(path):9: features.a.batch.max_failed_share: must be a number from 0.0 to 1.0"),
                "\(messages)")
            #expect(messages.contains("\(path):10: features.a.batch.allow_empty: must be true or false"))
        }
    }

    @Test("the validator: a column list that does not fill its input's row is an error at the list's line")
    func columnWidth() throws {
        let path = try TestManifest.write(
            """
            models:
              m: ZOO/gbc_binary.onnx
            features:
              short:
                model: m
                key: user_id
                batch:
                  source: {csv: users.csv}
                  columns:
                    X: [f0, f1, f2, f3]
              full:
                model: m
                key: user_id
                batch:
                  source: {csv: users.csv}
                  columns:
                    X: [\(BatchFixture.columns.joined(separator: ", "))]
            """)
        try ("user_id," + BatchFixture.columns.joined(separator: ",") + "\n").write(
            to: URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("users.csv"),
            atomically: true, encoding: .utf8)
        let manifest = try ManifestLoader.load(path: path)
        let (models, _) = ServingModel.loadAll(manifest)
        let messages = ManifestValidator.problems(manifest, models: models).map(\.description)
        #expect(
            messages == [
                "\(path):10: features.short.batch.columns.X: input 'X' of model 'm' takes 16 value(s) per row "
                    + "(per-row shape [16], input tensor(float)[?,16]) but 4 column(s) are mapped: f0, f1, f2, f3"
            ], "\(messages)")
    }

    // MARK: The stores

    @Test(
        "a run over its failed-row limit is refused where its last range completes: failed with the reason, its rows dropped, the published snapshot untouched",
        arguments: StoreKind.allCases)
    func storeRefusesOverLimit(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.batch
            let (_, v1) = try await BatchStoreTests.complete(store, "run_1", at: 1000, chunks: [["a", "b", "c"]])
            let run = try await BatchStoreTests.start(store, BatchStoreTests.newRun("run_2", at: 2000))
            let failures = [
                RowFailure(ordinal: 3, location: "users.csv:4", key: "c", reason: "third"),
                RowFailure(ordinal: 2, location: "users.csv:3", key: "b", reason: "second"),
            ]
            try await BatchStoreTests.append(
                store, run, index: 0, keys: ["a"], failures: failures, rowsDone: 3, at: 2001)
            try await BatchStoreTests.holdRange(store, run, at: 2002)
            let completion = try await store.completeRange(
                runID: run.id, index: 0, owner: BatchStoreTests.worker, at: 2002, retention: 3,
                policy: PublishPolicy(maxFailedShare: 0.5))
            guard case .refused(let reason) = completion else {
                Issue.record("published over the limit: \(completion)")
                return
            }
            #expect(
                reason
                    == "2 of 3 rows failed (66.7%), over the limit batch.max_failed_share 0.5 (50%); first failure: "
                    + "users.csv:3: second; nothing published, snapshot v1 keeps serving")
            let ended = try #require(try await store.run(id: run.id))
            #expect(ended.state == .failed && ended.error == reason && ended.finishedAt == 2002)
            #expect(try await store.publishedSnapshot(feature: BatchStoreTests.feature) == v1)
            #expect(try await store.chunks(snapshotID: v1.id).flatMap(\.keys) == ["a", "b", "c"])
            let abandoned = try #require(
                try await store.snapshots(feature: BatchStoreTests.feature, limit: 5).first { $0.id == run.snapshotID })
            #expect(abandoned.state == .abandoned)
            #expect(try await store.chunks(snapshotID: run.snapshotID).isEmpty)
            // The ended run cannot publish afterwards, and a new run may start.
            await #expect(throws: BatchStoreError.runNotRunning(run.id)) {
                _ = try await store.completeRange(
                    runID: run.id, index: 0, owner: BatchStoreTests.worker, at: 2003, retention: 3, policy: .unguarded)
            }
            _ = try await BatchStoreTests.start(store, BatchStoreTests.newRun("run_3", at: 3000))
        }
    }

    @Test(
        "a run under its failed-row limit publishes; an empty run replaces a non-empty snapshot only when allowed",
        arguments: StoreKind.allCases)
    func storeUnderLimitAndEmpty(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.batch
            let worker = BatchStoreTests.worker
            // The first run: 1 failure in 4 rows with a 25% limit publishes (an empty store has nothing to keep).
            let first = try await BatchStoreTests.start(store, BatchStoreTests.newRun("run_1", at: 1000))
            try await BatchStoreTests.append(
                store, first, index: 0, keys: ["a", "b", "c"],
                failures: [RowFailure(ordinal: 4, location: "users.csv:5", key: "d", reason: "bad")], rowsDone: 4,
                at: 1001)
            let published = try await store.completeRange(
                runID: first.id, index: 0, owner: worker, at: 1002, retention: 3,
                policy: PublishPolicy(maxFailedShare: 0.25))
            guard case .published(let v1) = published else {
                Issue.record("refused under the limit: \(published)")
                return
            }
            #expect(v1.keyCount == 3)

            // An empty run (no rows) over it, with the default policy: refused.
            let empty = try await BatchStoreTests.start(store, BatchStoreTests.newRun("run_2", at: 2000))
            _ = try await store.splitRun(runID: empty.id, rowsTotal: 0, rangeRows: 10, at: 2000)
            _ = try await store.leaseRange(
                features: [BatchStoreTests.feature], owner: worker, now: 2001, leaseSeconds: 60, isGone: { _ in false })
            let refused = try await store.completeRange(
                runID: empty.id, index: 0, owner: worker, at: 2002, retention: 3, policy: PublishPolicy())
            guard case .refused(let reason) = refused else {
                Issue.record("an empty run replaced a non-empty snapshot: \(refused)")
                return
            }
            #expect(reason.contains("no keys to publish") && reason.contains("snapshot v1 with 3 keys"))
            #expect(try await store.run(id: empty.id)?.state == .failed)
            #expect(try await store.publishedSnapshot(feature: BatchStoreTests.feature)?.id == v1.id)

            // The same with allow_empty: published, with no keys.
            let allowed = try await BatchStoreTests.start(store, BatchStoreTests.newRun("run_3", at: 3000))
            _ = try await store.splitRun(runID: allowed.id, rowsTotal: 0, rangeRows: 10, at: 3000)
            _ = try await store.leaseRange(
                features: [BatchStoreTests.feature], owner: worker, now: 3001, leaseSeconds: 60, isGone: { _ in false })
            let completion = try await store.completeRange(
                runID: allowed.id, index: 0, owner: worker, at: 3002, retention: 3,
                policy: PublishPolicy(allowEmpty: true))
            guard case .published(let v3) = completion else {
                Issue.record("allow_empty did not publish: \(completion)")
                return
            }
            #expect(v3.keyCount == 0 && v3.version == 3)
            #expect(try await store.publishedSnapshot(feature: BatchStoreTests.feature)?.id == v3.id)
        }
    }

    // MARK: Through the server

    static func get(_ client: any TestClientProtocol, _ uri: String) async throws -> (HTTPResponse.Status, String) {
        try await client.execute(uri: uri, method: .get, headers: BatchServingTests.ops) { response in
            (response.status, String(buffer: response.body))
        }
    }

    @Test(
        "a run over max_failed_share started through the API does not publish: the old snapshot answers, the run says why, readiness and metrics show it until a good run"
    )
    func refusedRunKeepsServing() async throws {
        let (manifest, rows) = try BatchFixture.write(features: BatchServingTests.batchFeature("churn"))
        let csv = URL(fileURLWithPath: manifest).deletingLastPathComponent().appendingPathComponent("users.csv")
        let good = try String(contentsOf: csv, encoding: .utf8)
        try await BatchServingTests().withServer(manifest) { client, runtime in
            // Under the limit (1 bad row of 37, 2.7% ≤ 5%): published.
            let v1 = try await BatchServingTests.publish(runtime, "churn")
            #expect(v1.state == .succeeded && v1.rowsFailed == 1 && v1.rowsWritten == rows.count)
            try await Wait.until("ready after v1") { runtime.readinessProblems.isEmpty }

            // Every row fails: the run started through the API ends failed, with the counts and the first reason.
            try BatchFixture.brokenCSV(rows: rows.count + 1).write(to: csv, atomically: true, encoding: .utf8)
            let location = try await client.execute(
                uri: "/v1/features/churn/runs", method: .post, headers: BatchServingTests.ops
            ) { response -> String in
                #expect(response.status == .accepted)
                return try #require(response.headers[.location])
            }
            var record: [String: JSONValue] = [:]
            try await Wait.until("the run ends") {
                record = try await client.execute(uri: location, method: .get, headers: BatchServingTests.ops) {
                    try HTTPAPITests.json($0.body)
                }
                return record["state"] != .string("running")
            }
            #expect(record["state"] == .string("failed"))
            guard case .string(let error)? = record["error"] else {
                Issue.record("no error in \(record)")
                return
            }
            #expect(error.hasPrefix("37 of 37 rows failed (100%), over the limit batch.max_failed_share 0.05 (5%)"))
            #expect(error.contains("first failure: users.csv:2: column 'f0' (input 'X')"), "\(error)")
            #expect(error.contains("'oops' is not a number") && error.hasSuffix("snapshot v1 keeps serving"))

            // The old snapshot still answers.
            #expect(runtime.features["churn"]?.snapshot?.info.runID == v1.id)
            let (status, json, _) = try await BatchServingTests.predict(client, "churn", #"{"key": "u3"}"#)
            #expect(status == .ok)
            #expect(json["source"] == .string("batch") && json["snapshot"] == .string("v1"))
            let store = try #require(runtime.batch).batchStore
            #expect(try await store.publishedSnapshot(feature: "churn")?.keyCount == rows.count)

            // Readiness and metrics say the last run failed.
            try await Wait.until("readiness shows the failed run") {
                runtime.readinessWarnings.contains { $0.contains("the last batch run") }
            }
            // A warning, not a problem: the server still answers from v1, so it stays in rotation.
            var (readyStatus, body) = try await Self.get(client, "/healthz/ready")
            #expect(readyStatus == .ok)
            #expect(body.contains("\"warnings\""), "\(body)")
            #expect(
                body.contains("churn: the last batch run run_") && body.contains("(serving snapshot v1)"), "\(body)")
            var (_, metrics) = try await Self.get(client, "/metrics")
            #expect(metrics.contains(#"freshline_run_last_failed{feature="churn"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"freshline_runs_total{feature="churn",outcome="failed"} 1"#))

            // A good run clears both.
            try good.write(to: csv, atomically: true, encoding: .utf8)
            let v3 = try await BatchServingTests.publish(runtime, "churn")
            #expect(v3.state == .succeeded)
            try await Wait.until("warning cleared") { runtime.readinessWarnings.isEmpty }
            (readyStatus, body) = try await Self.get(client, "/healthz/ready")
            #expect(readyStatus == .ok && !body.contains("warnings"), "\(body)")
            (_, metrics) = try await Self.get(client, "/metrics")
            #expect(metrics.contains(#"freshline_run_last_failed{feature="churn"} 0"#), "\(metrics)")
        }
    }

    @Test("an empty source does not replace a non-empty snapshot, unless the feature says allow_empty")
    func emptySource() async throws {
        let features = [
            BatchServingTests.batchFeature("churn"),
            BatchServingTests.batchFeature("open").replacingOccurrences(
                of: "chunk_rows: 10", with: "chunk_rows: 10\n      allow_empty: true"),
        ].joined(separator: "\n")
        let (manifest, rows) = try BatchFixture.write(features: features)
        let csv = URL(fileURLWithPath: manifest).deletingLastPathComponent().appendingPathComponent("users.csv")
        try await BatchServingTests().withServer(manifest) { client, runtime in
            let batch = try #require(runtime.batch)
            let churn1 = try await BatchServingTests.publish(runtime, "churn")
            try await BatchServingTests.publish(runtime, "open")
            try ("user_id," + BatchFixture.columns.joined(separator: ",") + "\n").write(
                to: csv, atomically: true, encoding: .utf8)

            let refused = try await batch.trigger(feature: "churn")
            var ended: BatchRun?
            try await Wait.until("the empty run ends") {
                ended = try await batch.batchStore.run(id: refused.id)
                return ended?.state != .running
            }
            #expect(ended?.state == .failed)
            #expect(
                ended?.error?.hasPrefix(
                    "the run has no keys to publish (0 source rows read) and would replace snapshot v1 with \(rows.count) keys; set batch.allow_empty: true"
                ) == true, "\(String(describing: ended?.error))")
            #expect(runtime.features["churn"]?.snapshot?.info.runID == churn1.id)
            let (status, _, _) = try await BatchServingTests.predict(client, "churn", #"{"key": "u3"}"#)
            #expect(status == .ok)

            // allow_empty: the empty snapshot is published and served.
            let emptied = try await BatchServingTests.publish(runtime, "open")
            #expect(emptied.state == .succeeded)
            #expect(runtime.features["open"]?.snapshot?.keyCount == 0)
            #expect(runtime.features["open"]?.snapshot?.info.version == 2)
        }
    }
}
