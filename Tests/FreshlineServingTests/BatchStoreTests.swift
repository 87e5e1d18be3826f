import Foundation
import FreshlineCore
import FreshlineStore
import Testing

/// The batch store's behaviour, the same test bodies against SQLite and PostgreSQL.
@Suite("Batch store")
struct BatchStoreTests {
    static let feature = "churn"
    /// The worker the tests lease ranges as.
    static let worker = "host-w:1"

    // MARK: Helpers

    /// A run record as the runner makes one, before the store assigns its snapshot.
    static func newRun(
        _ id: String, feature: String = feature, at time: Double, owner: String = "host-a:100",
        trigger: BatchRun.Trigger = .manual, keys: [String]? = nil, modelPath: String? = nil
    ) -> BatchRun {
        BatchRun(
            id: id, feature: feature, trigger: trigger, snapshotID: 0, startedAt: time, heartbeatAt: time,
            owner: owner, modelPath: modelPath, keys: keys)
    }

    /// Starts `run` with a lease of 60 seconds before its start time.
    static func start(
        _ store: any BatchStore, _ run: BatchRun, copyFrom: Int64? = nil,
        isGone: @escaping @Sendable (String) -> Bool = { _ in false }
    ) async throws -> BatchRun {
        try await store.startRun(
            run, modelVersion: "mv-\(run.id)", inputTime: run.startedAt - 5, copyFrom: copyFrom,
            liveAfter: run.startedAt - 60, isGone: isGone)
    }

    /// The output bytes the tests store for a key.
    static func output(_ key: String) -> [UInt8] {
        JSONText.object(["key": key])
    }

    /// Splits `run` into one range (if it is not split yet) and leases it as `worker`.
    static func holdRange(_ store: any BatchStore, _ run: BatchRun, at time: Double) async throws {
        if try await store.ranges(runID: run.id).isEmpty {
            _ = try await store.splitRun(runID: run.id, rowsTotal: 1_000_000, rangeRows: 1_000_000, at: time)
        }
        let range = try #require(try await store.ranges(runID: run.id).first)
        if range.state == .leased && range.owner == worker { return }
        let lease = try await store.leaseRange(
            features: [run.feature], owner: worker, now: time, leaseSeconds: 1e9, isGone: { _ in false })
        #expect(lease?.run.id == run.id, "leased \(String(describing: lease)) instead of \(run.id)'s range")
    }

    /// Writes one chunk of `keys` (outputs from `output(_:)`) into the run's single range; `rowsDone` is the run's
    /// source rows done after it.
    static func append(
        _ store: any BatchStore, _ run: BatchRun, index: Int, keys: [String], outputs: [[UInt8]]? = nil,
        failures: [RowFailure] = [], rowsDone: Int = 0, at time: Double = 0
    ) async throws {
        try await holdRange(store, run, at: time)
        let before = try #require(try await store.run(id: run.id))
        try await store.appendRangeChunk(
            runID: run.id, index: 0, owner: worker,
            chunk: SnapshotChunk(index: index, keys: keys, outputs: outputs ?? keys.map(output)), failures: failures,
            progress: RangeProgress(
                rangeRowsDone: rowsDone, rowsRead: max(0, rowsDone - before.rowsDone), rowsWritten: keys.count,
                rowsFailed: failures.count, busySeconds: 0.5, at: time))
    }

    /// Completes the run's single range: publishes its snapshot.
    static func publish(_ store: any BatchStore, _ run: BatchRun, at time: Double, retention: Int = 3) async throws
        -> SnapshotInfo
    {
        try await holdRange(store, run, at: time)
        let completion = try await store.completeRange(
            runID: run.id, index: 0, owner: worker, at: time, retention: retention, policy: .unguarded)
        guard case .published(let info) = completion else {
            Issue.record("completing the only range did not publish: \(completion)")
            throw BatchStoreError.runNotRunning(run.id)
        }
        return info
    }

    /// Starts, writes and publishes one run; returns the run as started and the published snapshot.
    @discardableResult
    static func complete(
        _ store: any BatchStore, _ id: String, at time: Double, chunks: [[String]], retention: Int = 3,
        copyFrom: Int64? = nil
    ) async throws -> (run: BatchRun, snapshot: SnapshotInfo) {
        let run = try await start(store, newRun(id, at: time), copyFrom: copyFrom)
        for (index, keys) in chunks.enumerated() {
            try await append(store, run, index: index, keys: keys, at: time + 1)
        }
        let snapshot = try await publish(store, run, at: time + 2, retention: retention)
        return (run, snapshot)
    }

    static func temporaryStorePath() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "freshline-batchstore-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent("store.sqlite").path
    }

    // MARK: Starting runs

    @Test("startRun creates a building snapshot; versions count 1, 2, 3 per feature", arguments: StoreKind.allCases)
    func versions(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let first = try await Self.start(store, Self.newRun("run_1", at: 1000))
        #expect(first.snapshotID > 0)
        #expect(first.state == .running)
        let snapshots = try await store.snapshots(feature: Self.feature, limit: 10)
        #expect(snapshots.count == 1)
        let building = try #require(snapshots.first)
        #expect(building.id == first.snapshotID)
        #expect(building.version == 1)
        #expect(building.state == .building)
        #expect(building.runID == "run_1")
        #expect(building.modelVersion == "mv-run_1")
        #expect(building.inputTime == 995)
        #expect(building.createdAt == 1000)
        #expect(building.publishedAt == nil)
        #expect(building.keyCount == 0)

        _ = try await Self.publish(store, first, at: 1010, retention: 3)
        let second = try await Self.start(store, Self.newRun("run_2", at: 2000))
        try await store.endRun(id: second.id, state: .failed, error: "boom", at: 2010)
        let third = try await Self.start(store, Self.newRun("run_3", at: 3000))
        // Another feature counts its own versions.
        let other = try await Self.start(store, Self.newRun("run_other", feature: "fraud", at: 3000))

        let versions = try await store.snapshots(feature: Self.feature, limit: 10).map(\.version)
        #expect(versions == [3, 2, 1])
        #expect(try await store.snapshots(feature: Self.feature, limit: 10).first?.id == third.snapshotID)
        #expect(try await store.snapshots(feature: Self.feature, limit: 2).count == 2)
        #expect(try await store.snapshots(feature: "fraud", limit: 10).map(\.version) == [1])
        #expect(try await store.snapshots(feature: "fraud", limit: 10).first?.id == other.snapshotID)
        #expect(Set([first.snapshotID, second.snapshotID, third.snapshotID, other.snapshotID]).count == 4)
        await fixture.stop()
    }

    @Test(
        "a second startRun while a live run exists throws runInProgress naming the live run",
        arguments: StoreKind.allCases)
    func runInProgress(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let live = try await Self.start(store, Self.newRun("run_live", at: 1000))
        await #expect(throws: BatchStoreError.runInProgress(runID: "run_live")) {
            _ = try await Self.start(store, Self.newRun("run_next", at: 1030, owner: "host-b:7"))
        }
        // A heartbeat keeps it live past its start-time lease.
        try await store.heartbeat(runID: live.id, at: 1100)
        await #expect(throws: BatchStoreError.runInProgress(runID: "run_live")) {
            _ = try await Self.start(store, Self.newRun("run_next", at: 1150, owner: "host-b:7"))
        }
        // The refused run left nothing behind.
        #expect(try await store.run(id: "run_next") == nil)
        #expect(try await store.snapshots(feature: Self.feature, limit: 10).count == 1)
        // Other features are not blocked.
        _ = try await Self.start(store, Self.newRun("run_fraud", feature: "fraud", at: 1030))
        // A split run stays live even when its starter is gone and its heartbeat old: its ranges are any worker's.
        let fraud = try #require(try await store.runs(feature: "fraud", limit: 1).first)
        _ = try await store.splitRun(runID: fraud.id, rowsTotal: 10, rangeRows: 5, at: 1031)
        await #expect(throws: BatchStoreError.runInProgress(runID: fraud.id)) {
            _ = try await store.startRun(
                Self.newRun("run_fraud_2", feature: "fraud", at: 9000), modelVersion: "mv", inputTime: 9000,
                copyFrom: nil, liveAfter: 8940, isGone: { _ in true })
        }
        // Once the live run ends, a new run may start.
        try await store.endRun(id: live.id, state: .canceled, error: "stopped", at: 1200)
        let next = try await Self.start(store, Self.newRun("run_next", at: 1210))
        #expect(next.state == .running)
        await fixture.stop()
    }

    @Test(
        "a run whose heartbeat is older than liveAfter is interrupted, and may be claimed exactly once",
        arguments: StoreKind.allCases)
    func staleHeartbeatIsInterrupted(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let run = try await Self.start(store, Self.newRun("run_old", at: 1000, owner: "host-a:100"))
        #expect(try await store.interruptedRun(feature: Self.feature, liveAfter: 999, isGone: { _ in false }) == nil)
        // The boundary: a heartbeat at exactly liveAfter is not live.
        let found = try await store.interruptedRun(feature: Self.feature, liveAfter: 1000, isGone: { _ in false })
        #expect(found?.id == run.id)
        #expect(found?.owner == "host-a:100")
        #expect(try await store.interruptedRun(feature: "fraud", liveAfter: 5000, isGone: { _ in true }) == nil)

        // A dead run does not block a new start (it is left for interruptedRun).
        let startedAnyway = try await store.startRun(
            Self.newRun("run_new", at: 2000, owner: "host-b:7"), modelVersion: "mv", inputTime: 2000,
            copyFrom: nil, liveAfter: 1940, isGone: { _ in false })
        try await store.endRun(id: startedAnyway.id, state: .canceled, error: "test", at: 2001)

        let claimed = try #require(
            try await store.claimRun(id: run.id, previousOwner: "host-a:100", owner: "host-b:7", at: 2000))
        #expect(claimed.owner == "host-b:7")
        #expect(claimed.heartbeatAt == 2000)
        #expect(claimed.resumes == 1)
        #expect(claimed.state == .running)
        #expect(claimed.snapshotID == run.snapshotID)
        // A second claim with the old owner loses.
        #expect(try await store.claimRun(id: run.id, previousOwner: "host-a:100", owner: "host-c:9", at: 2001) == nil)
        #expect(try await store.run(id: run.id)?.owner == "host-b:7")
        // Claimed, it is live again.
        #expect(try await store.interruptedRun(feature: Self.feature, liveAfter: 1940, isGone: { _ in false }) == nil)
        await #expect(throws: BatchStoreError.runInProgress(runID: run.id)) {
            _ = try await Self.start(store, Self.newRun("run_later", at: 2010, owner: "host-c:9"))
        }
        // Interrupted again and claimed again: resumes counts every takeover.
        let again = try await store.claimRun(id: run.id, previousOwner: "host-b:7", owner: "host-c:9", at: 3000)
        #expect(again?.resumes == 2)
        // A run that is no longer running cannot be claimed.
        try await store.endRun(id: run.id, state: .failed, error: "x", at: 3001)
        #expect(try await store.claimRun(id: run.id, previousOwner: "host-c:9", owner: "host-d:1", at: 3002) == nil)
        #expect(try await store.claimRun(id: "run_missing", previousOwner: "a", owner: "b", at: 1) == nil)
        await fixture.stop()
    }

    @Test(
        "a run whose owner isGone is interrupted even with a fresh heartbeat, and does not block a start",
        arguments: StoreKind.allCases)
    func goneOwnerIsInterrupted(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let run = try await Self.start(store, Self.newRun("run_dead", at: 1000, owner: "host-a:100"))
        #expect(try await store.interruptedRun(feature: Self.feature, liveAfter: 900, isGone: { _ in false }) == nil)
        let found = try await store.interruptedRun(
            feature: Self.feature, liveAfter: 900, isGone: { $0 == "host-a:100" })
        #expect(found?.id == run.id)
        // Another owner's death says nothing about this run.
        #expect(
            try await store.interruptedRun(feature: Self.feature, liveAfter: 900, isGone: { $0 == "host-z:1" }) == nil)
        let fresh = try await store.startRun(
            Self.newRun("run_fresh", at: 1001, owner: "host-a:200"), modelVersion: "mv", inputTime: 1001,
            copyFrom: nil, liveAfter: 941, isGone: { $0 == "host-a:100" })
        #expect(fresh.state == .running)
        let claimed = try await store.claimRun(id: run.id, previousOwner: "host-a:100", owner: "host-a:200", at: 1002)
        #expect(claimed?.resumes == 1)
        #expect(claimed?.owner == "host-a:200")
        await fixture.stop()
    }

    // MARK: Chunks and checkpoints

    @Test(
        "a range's provider batch is recorded by its holder only, and chunks add their tokens to the run",
        arguments: StoreKind.allCases)
    func providerBatchAndTokens(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let run = try await Self.start(store, Self.newRun("run_pb", at: 1000))
        _ = try await store.splitRun(runID: run.id, rowsTotal: 10, rangeRows: 10, at: 1001)
        try await Self.holdRange(store, run, at: 1002)
        #expect(try await store.ranges(runID: run.id).first?.providerBatch == nil)
        await #expect(throws: BatchStoreError.self) {
            try await store.recordProviderBatch(runID: run.id, index: 0, owner: "someone-else:1", batchID: "batch_x")
        }
        try await store.recordProviderBatch(runID: run.id, index: 0, owner: Self.worker, batchID: "batch_abc")
        #expect(try await store.ranges(runID: run.id).first?.providerBatch == "batch_abc")
        for (rowsDone, tokens) in [(5, (input: 100, output: 40)), (10, (input: 0, output: 0))] {
            try await store.appendRangeChunk(
                runID: run.id, index: 0, owner: Self.worker,
                chunk: SnapshotChunk(index: rowsDone - 5, keys: ["k\(rowsDone)"], outputs: [Self.output("k")]),
                failures: [],
                progress: RangeProgress(
                    rangeRowsDone: rowsDone, rowsRead: 5, rowsWritten: 1, rowsFailed: 0, busySeconds: 0.1, at: 1003,
                    inputTokens: tokens.input, outputTokens: tokens.output))
        }
        let stored = try #require(try await store.run(id: run.id))
        #expect(stored.inputTokens == 100 && stored.outputTokens == 40)
        #expect(try await store.runs(feature: run.feature, limit: 1).first?.inputTokens == 100)
        // A released range keeps its batch for whoever leases it next.
        #expect(try await store.releaseRange(runID: run.id, index: 0, owner: Self.worker))
        let next = try await store.leaseRange(
            features: [run.feature], owner: "next:2", now: 1004, leaseSeconds: 60, isGone: { _ in false })
        #expect(next?.range.providerBatch == "batch_abc")
        await fixture.stop()
    }

    @Test("appendChunk writes the chunk, its failures and the checkpoint together", arguments: StoreKind.allCases)
    func appendChunkWritesProgress(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let run = try await Self.start(store, Self.newRun("run_1", at: 1000))
        _ = try await store.splitRun(runID: run.id, rowsTotal: 10, rangeRows: 10, at: 1001)
        try await Self.holdRange(store, run, at: 1002)
        try await store.appendRangeChunk(
            runID: run.id, index: 0, owner: Self.worker,
            chunk: SnapshotChunk(index: 0, keys: ["a", "b"], outputs: [Self.output("a"), Self.output("b")]),
            failures: [
                RowFailure(ordinal: 4, location: "accounts.csv:5", key: nil, reason: "has 2 fields, the header has 3"),
                RowFailure(ordinal: 2, location: "accounts.csv:3", key: "k2", reason: "column 'x': is empty"),
            ],
            progress: RangeProgress(
                rangeRowsDone: 4, rowsRead: 4, rowsWritten: 2, rowsFailed: 2, busySeconds: 1.25, at: 1010))
        var stored = try #require(try await store.run(id: run.id))
        #expect(try await store.ranges(runID: run.id).first?.rowsDone == 4)
        #expect(stored.rowsTotal == 10)
        #expect(stored.rowsDone == 4)
        #expect(stored.rowsWritten == 2)
        #expect(stored.rowsFailed == 2)
        #expect(stored.busySeconds == 1.25)
        #expect(stored.heartbeatAt == 1010)
        #expect(stored.state == .running)

        try await store.appendRangeChunk(
            runID: run.id, index: 0, owner: Self.worker,
            chunk: SnapshotChunk(index: 4, keys: ["c"], outputs: [Self.output("c")]),
            failures: [RowFailure(ordinal: 3, location: "accounts.csv:4", key: "k3", reason: "'q' is not a number")],
            progress: RangeProgress(
                rangeRowsDone: 6, rowsRead: 2, rowsWritten: 1, rowsFailed: 1, busySeconds: 1.25, at: 1020))
        stored = try #require(try await store.run(id: run.id))
        #expect(stored.rowsDone == 6)
        #expect(stored.rowsWritten == 3)
        #expect(stored.rowsFailed == 3)
        #expect(stored.busySeconds == 2.5)
        #expect(stored.heartbeatAt == 1020)

        let failures = try await store.failures(runID: run.id, limit: 100)
        #expect(failures.map(\.ordinal) == [2, 3, 4])
        #expect(
            failures.first
                == RowFailure(ordinal: 2, location: "accounts.csv:3", key: "k2", reason: "column 'x': is empty"))
        #expect(failures.last?.key == nil)
        #expect(failures.last?.location == "accounts.csv:5")
        #expect(try await store.failures(runID: run.id, limit: 2).map(\.ordinal) == [2, 3])
        #expect(try await store.failures(runID: "run_other", limit: 100).isEmpty)

        let chunks = try await store.chunks(snapshotID: run.snapshotID)
        #expect(chunks.map(\.index) == [0, 4])
        #expect(chunks.flatMap(\.keys) == ["a", "b", "c"])
        await fixture.stop()
    }

    @Test(
        "heartbeat updates the run; splitRun records the total and makes the ranges once", arguments: StoreKind.allCases
    )
    func heartbeatAndTotal(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let run = try await Self.start(store, Self.newRun("run_1", at: 1000))
        #expect(try await store.run(id: run.id)?.rowsTotal == nil)
        try await store.heartbeat(runID: run.id, at: 1234.5)
        var stored = try #require(try await store.run(id: run.id))
        #expect(stored.heartbeatAt == 1234.5)
        let ranges = try await store.splitRun(runID: run.id, rowsTotal: 77, rangeRows: 20, at: 1300)
        #expect(ranges.map(\.rowStart) == [0, 20, 40, 60])
        #expect(ranges.map(\.rowEnd) == [20, 40, 60, 77])
        #expect(ranges.allSatisfy { $0.state == .pending && $0.owner == nil && $0.rowsDone == 0 && $0.leases == 0 })
        #expect(try await store.ranges(runID: run.id) == ranges)
        // Split again (a second process racing): the first split stands.
        #expect(try await store.splitRun(runID: run.id, rowsTotal: 99, rangeRows: 5, at: 1301) == ranges)
        stored = try #require(try await store.run(id: run.id))
        #expect(stored.rowsTotal == 77)
        #expect(stored.heartbeatAt == 1300)
        #expect(stored.rowsDone == 0)
        // A split run is not "interrupted" (its ranges are leased instead), even when its starter is gone.
        #expect(try await store.interruptedRun(feature: Self.feature, liveAfter: 1e12, isGone: { _ in true }) == nil)
        // An empty source gets one empty range, so completing it publishes like any run.
        try await store.endRun(id: run.id, state: .canceled, error: "test", at: 1400)
        let empty = try await Self.start(store, Self.newRun("run_2", at: 2000))
        let none = try await store.splitRun(runID: empty.id, rowsTotal: 0, rangeRows: 100, at: 2001)
        #expect(none.map(\.rows) == [0])
        let published = try await Self.publish(store, empty, at: 2002)
        #expect(published.keyCount == 0)
        await #expect(throws: BatchStoreError.unknownRun("run_nope")) {
            _ = try await store.splitRun(runID: "run_nope", rowsTotal: 1, rangeRows: 1, at: 1)
        }
        await fixture.stop()
    }

    @Test(
        "chunks come back in write order with keys and outputs intact (non-ASCII keys, empty outputs)",
        arguments: StoreKind.allCases)
    func chunkRoundTrip(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let run = try await Self.start(store, Self.newRun("run_1", at: 1000))
        let written = [
            SnapshotChunk(
                index: 0, keys: ["ключ", "日本語", "emoji 🎉", "e\u{301}"],
                outputs: [Self.output("ключ"), [], Array("{\"label\":1}".utf8), [0, 255, 10, 0]]),
            SnapshotChunk(index: 1, keys: [""], outputs: [[]]),
            SnapshotChunk(
                index: 2, keys: (0..<1000).map { "k\($0)" },
                outputs: (0..<1000).map { Array("{\"v\":\($0)}".utf8) }),
            SnapshotChunk(index: 3, keys: ["a,b\n\"c\""], outputs: [Self.output("a,b\n\"c\"")]),
        ]
        for chunk in written {
            try await Self.append(store, run, index: chunk.index, keys: chunk.keys, outputs: chunk.outputs, at: 1000)
        }
        let read = try await store.chunks(snapshotID: run.snapshotID)
        #expect(read == written)
        // Keys are stored byte for byte: the decomposed "é" is not normalized to the composed one.
        #expect(read.first?.keys[3].utf8.count == 3)

        // A chunk without rows (every row failed) stores no chunk but still records its checkpoint.
        try await Self.append(
            store, run, index: 4, keys: [],
            failures: [RowFailure(ordinal: 1003, location: "f.csv:1004", key: nil, reason: "bad")], rowsDone: 1004,
            at: 1050)
        #expect(try await store.chunks(snapshotID: run.snapshotID).count == written.count)
        #expect(try await store.run(id: run.id)?.rowsDone == 1004)
        #expect(try await store.failures(runID: run.id, limit: 10).count == 1)
        // A snapshot id that does not exist has no chunks.
        #expect(try await store.chunks(snapshotID: 987_654).isEmpty)

        let info = try await Self.publish(store, run, at: 1100, retention: 3)
        // "" is a key like any other: 4 + 1 + 1000 + 1.
        #expect(info.keyCount == 1006)
        await fixture.stop()
    }

    // MARK: Publishing

    @Test("building snapshots are never returned by publishedSnapshot", arguments: StoreKind.allCases)
    func buildingIsNotPublished(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        #expect(try await store.publishedSnapshot(feature: Self.feature) == nil)
        let run = try await Self.start(store, Self.newRun("run_1", at: 1000))
        try await Self.append(store, run, index: 0, keys: ["a", "b"], rowsDone: 2, at: 1001)
        #expect(try await store.publishedSnapshot(feature: Self.feature) == nil)
        let published = try await Self.publish(store, run, at: 1002, retention: 3)
        #expect(try await store.publishedSnapshot(feature: Self.feature) == published)

        let next = try await Self.start(store, Self.newRun("run_2", at: 2000))
        try await Self.append(store, next, index: 0, keys: ["c"], rowsDone: 1, at: 2001)
        let current = try await store.publishedSnapshot(feature: Self.feature)
        #expect(current?.id == run.snapshotID)
        #expect(current?.state == .published)
        #expect(try await store.publishedSnapshot(feature: "fraud") == nil)
        await fixture.stop()
    }

    @Test(
        "publish makes exactly one published snapshot, retires the previous, counts distinct keys",
        arguments: StoreKind.allCases)
    func publishRetiresPrevious(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let first = try await Self.start(store, Self.newRun("run_1", at: 1000))
        try await Self.append(store, first, index: 0, keys: ["a", "b", "c"], rowsDone: 3, at: 1001)
        // "c" again in the next chunk (a later row for the same key): counted once.
        try await Self.append(store, first, index: 1, keys: ["c", "d"], rowsDone: 5, at: 1002)
        let v1 = try await Self.publish(store, first, at: 1010, retention: 3)
        #expect(v1.id == first.snapshotID)
        #expect(v1.version == 1)
        #expect(v1.state == .published)
        #expect(v1.publishedAt == 1010)
        #expect(v1.keyCount == 4)
        #expect(v1.runID == first.id)
        #expect(v1.inputTime == 995)
        let succeeded = try #require(try await store.run(id: first.id))
        #expect(succeeded.state == .succeeded)
        #expect(succeeded.finishedAt == 1010)
        #expect(succeeded.error == nil)

        let second = try await Self.start(store, Self.newRun("run_2", at: 2000))
        try await Self.append(store, second, index: 0, keys: ["x", "x", "y"], rowsDone: 3, at: 2001)
        let v2 = try await Self.publish(store, second, at: 2010, retention: 3)
        #expect(v2.version == 2)
        #expect(v2.keyCount == 2)
        #expect(try await store.publishedSnapshot(feature: Self.feature) == v2)

        let all = try await store.snapshots(feature: Self.feature, limit: 10)
        #expect(all.map(\.version) == [2, 1])
        #expect(all.map(\.state) == [.published, .retired])
        #expect(all.filter { $0.state == .published }.count == 1)
        // The retired snapshot keeps its rows until retention drops it.
        #expect(try await store.chunks(snapshotID: first.snapshotID).flatMap(\.keys) == ["a", "b", "c", "c", "d"])
        #expect(try await store.run(id: second.id)?.state == .succeeded)
        await fixture.stop()
    }

    @Test("publishing an unknown run throws unknownRun", arguments: StoreKind.allCases)
    func publishUnknownRun(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        await #expect(throws: BatchStoreError.unknownRun("run_nope")) {
            _ = try await store.completeRange(
                runID: "run_nope", index: 0, owner: Self.worker, at: 1, retention: 3, policy: .unguarded)
        }
        await #expect(throws: BatchStoreError.unknownRun("run_nope")) {
            try await store.endRun(id: "run_nope", state: .failed, error: "x", at: 1)
        }
        await fixture.stop()
    }

    @Test(
        "publish only publishes a running run's building snapshot (abandoned and old snapshots stay unserved)",
        arguments: StoreKind.allCases)
    func publishRequiresRunningRun(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let (_, v1) = try await Self.complete(store, "run_1", at: 1000, chunks: [["a", "b"]])

        // A run that failed (its snapshot abandoned, its rows deleted) must not become the served snapshot.
        let failed = try await Self.start(store, Self.newRun("run_2", at: 2000))
        try await Self.append(store, failed, index: 0, keys: ["c"], rowsDone: 1, at: 2001)
        try await store.endRun(id: failed.id, state: .failed, error: "source unreadable", at: 2002)
        let republished = try? await Self.publish(store, failed, at: 2003, retention: 3)
        #expect(republished == nil, "publish accepted a failed run: \(String(describing: republished))")
        let served = try await store.publishedSnapshot(feature: Self.feature)
        #expect(served?.id == v1.id, "served snapshot: \(String(describing: served))")
        let failedState = try await store.run(id: failed.id)?.state
        #expect(failedState == .failed, "the failed run is now \(String(describing: failedState))")

        // A run published twice (e.g. a process that lost its lease finishing late) must not bring its snapshot
        // back over a newer one.
        let (_, v3) = try await Self.complete(store, "run_3", at: 3000, chunks: [["d"]])
        #expect(try await store.publishedSnapshot(feature: Self.feature)?.id == v3.id)
        _ = try? await store.completeRange(
            runID: "run_1", index: 0, owner: Self.worker, at: 3100, retention: 3, policy: .unguarded)
        let afterReplay = try await store.publishedSnapshot(feature: Self.feature)
        #expect(
            afterReplay?.id == v3.id, "served snapshot after publishing run_1 again: \(String(describing: afterReplay))"
        )
        await fixture.stop()
    }

    @Test(
        "retention keeps the newest N published or retired snapshots and deletes the older ones with their chunks",
        arguments: StoreKind.allCases)
    func retention(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        var runs: [BatchRun] = []
        for i in 1...5 {
            let (run, _) = try await Self.complete(
                store, "run_\(i)", at: Double(i) * 1000, chunks: [["k\(i)a", "k\(i)b"], ["k\(i)c"]], retention: 2)
            runs.append(run)
        }
        let kept = try await store.snapshots(feature: Self.feature, limit: 10)
        #expect(kept.map(\.version) == [5, 4])
        #expect(kept.map(\.state) == [.published, .retired])
        for run in runs.prefix(3) {
            #expect(try await store.chunks(snapshotID: run.snapshotID).isEmpty)
        }
        #expect(try await store.chunks(snapshotID: runs[3].snapshotID).flatMap(\.keys) == ["k4a", "k4b", "k4c"])
        #expect(try await store.chunks(snapshotID: runs[4].snapshotID).flatMap(\.keys) == ["k5a", "k5b", "k5c"])
        // Runs outlive their snapshots (run history), and versions keep counting up.
        #expect(try await store.run(id: "run_1")?.state == .succeeded)
        // A building snapshot (here of a run whose starter died before splitting it, with a copied backfill base)
        // neither counts towards retention nor is deleted by it.
        let sixth = try await Self.start(
            store, Self.newRun("run_6", at: 6000, keys: ["k5a"]), copyFrom: runs[4].snapshotID)
        let (seventh, _) = try await Self.complete(store, "run_7", at: 7000, chunks: [["k7"]], retention: 2)
        let after = try await store.snapshots(feature: Self.feature, limit: 10)
        #expect(after.map(\.version) == [7, 6, 5])
        #expect(after.map(\.state) == [.published, .building, .retired])
        #expect(try await store.chunks(snapshotID: sixth.snapshotID).flatMap(\.keys) == ["k5a", "k5b", "k5c"])
        #expect(try await store.chunks(snapshotID: seventh.snapshotID).flatMap(\.keys) == ["k7"])
        #expect(try await store.chunks(snapshotID: runs[3].snapshotID).isEmpty)

        // Retention below 1 still keeps the published snapshot.
        let fixture2 = try await StoreFixture.make(kind)
        let store2 = fixture2.batch
        let (a, _) = try await Self.complete(store2, "run_a", at: 100, chunks: [["a"]], retention: 0)
        let (b, vb) = try await Self.complete(store2, "run_b", at: 200, chunks: [["b"]], retention: 0)
        #expect(try await store2.snapshots(feature: Self.feature, limit: 10) == [vb])
        #expect(try await store2.publishedSnapshot(feature: Self.feature) == vb)
        #expect(try await store2.chunks(snapshotID: a.snapshotID).isEmpty)
        #expect(try await store2.chunks(snapshotID: b.snapshotID).flatMap(\.keys) == ["b"])
        await fixture.stop()
        await fixture2.stop()
    }

    @Test("retention only counts the feature's own snapshots", arguments: StoreKind.allCases)
    func retentionPerFeature(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let fraudRun = try await Self.start(store, Self.newRun("run_f", feature: "fraud", at: 10))
        try await Self.append(store, fraudRun, index: 0, keys: ["f"], rowsDone: 1, at: 11)
        let fraud = try await Self.publish(store, fraudRun, at: 12, retention: 1)
        for i in 1...3 {
            try await Self.complete(store, "run_\(i)", at: Double(i) * 100, chunks: [["k\(i)"]], retention: 1)
        }
        #expect(try await store.snapshots(feature: Self.feature, limit: 10).map(\.version) == [3])
        #expect(try await store.publishedSnapshot(feature: "fraud") == fraud)
        #expect(try await store.chunks(snapshotID: fraud.id).flatMap(\.keys) == ["f"])
        await fixture.stop()
    }

    @Test("copyFrom starts the new snapshot with the old snapshot's chunks", arguments: StoreKind.allCases)
    func copyFrom(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let (_, v1) = try await Self.complete(store, "run_1", at: 1000, chunks: [["a", "b"], ["c"]])
        let backfill = try await Self.start(
            store, Self.newRun("run_2", at: 2000, trigger: .backfill, keys: ["b", "z"]), copyFrom: v1.id)
        #expect(backfill.snapshotID != v1.id)
        let copied = try await store.chunks(snapshotID: backfill.snapshotID)
        #expect(copied.flatMap(\.keys) == ["a", "b", "c"])
        #expect(copied.flatMap(\.outputs) == ["a", "b", "c"].map(Self.output))
        // The new run's own chunks come after the copy (later keys win when applied in order).
        try await Self.append(
            store, backfill, index: 0, keys: ["b", "z"], outputs: [Array("{\"new\":1}".utf8), Self.output("z")],
            rowsDone: 2, at: 2001)
        let all = try await store.chunks(snapshotID: backfill.snapshotID)
        #expect(all.flatMap(\.keys) == ["a", "b", "c", "b", "z"])
        #expect(all.last?.index == 0)
        #expect(all.last?.outputs.first == Array("{\"new\":1}".utf8))
        let v2 = try await Self.publish(store, backfill, at: 2010, retention: 3)
        #expect(v2.keyCount == 4)
        // The source snapshot is untouched by the copy.
        #expect(try await store.chunks(snapshotID: v1.id).flatMap(\.keys) == ["a", "b", "c"])
        await fixture.stop()
    }

    @Test(
        "endRun(.failed) abandons the snapshot, deletes its chunks, and the published snapshot stays published",
        arguments: StoreKind.allCases)
    func endRunAbandons(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let (_, v1) = try await Self.complete(store, "run_1", at: 1000, chunks: [["a"]])
        let run = try await Self.start(store, Self.newRun("run_2", at: 2000))
        try await Self.append(
            store, run, index: 0, keys: ["x", "y"],
            failures: [RowFailure(ordinal: 3, location: "s.csv:4", key: nil, reason: "bad")], rowsDone: 3, at: 2001)
        try await store.endRun(id: run.id, state: .failed, error: "the source cannot be read", at: 2005)

        let ended = try #require(try await store.run(id: run.id))
        #expect(ended.state == .failed)
        #expect(ended.error == "the source cannot be read")
        #expect(ended.finishedAt == 2005)
        // The checkpoint and failures stay as history.
        #expect(ended.rowsDone == 3)
        #expect(try await store.failures(runID: run.id, limit: 10).count == 1)
        let snapshots = try await store.snapshots(feature: Self.feature, limit: 10)
        #expect(snapshots.map(\.state) == [.abandoned, .published])
        #expect(try await store.chunks(snapshotID: run.snapshotID).isEmpty)
        #expect(try await store.publishedSnapshot(feature: Self.feature) == v1)
        #expect(try await store.chunks(snapshotID: v1.id).flatMap(\.keys) == ["a"])
        #expect(try await store.interruptedRun(feature: Self.feature, liveAfter: 1e12, isGone: { _ in true }) == nil)

        let canceled = try await Self.start(store, Self.newRun("run_3", at: 3000))
        try await store.endRun(id: canceled.id, state: .canceled, error: "shutdown", at: 3001)
        #expect(try await store.run(id: canceled.id)?.state == .canceled)
        #expect(try await store.snapshots(feature: Self.feature, limit: 1).first?.state == .abandoned)
        #expect(try await store.publishedSnapshot(feature: Self.feature) == v1)
        await fixture.stop()
    }

    // MARK: Run records

    @Test("runs(feature:limit:) lists a feature's runs newest first", arguments: StoreKind.allCases)
    func runsNewestFirst(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        for (id, time) in [("run_b", 200.0), ("run_a", 100.0), ("run_c", 300.0)] {
            let run = try await Self.start(store, Self.newRun(id, at: time))
            try await store.endRun(id: run.id, state: .canceled, error: "test", at: time + 1)
        }
        _ = try await Self.start(store, Self.newRun("run_f", feature: "fraud", at: 400))
        #expect(try await store.runs(feature: Self.feature, limit: 10).map(\.id) == ["run_c", "run_b", "run_a"])
        #expect(try await store.runs(feature: Self.feature, limit: 2).map(\.id) == ["run_c", "run_b"])
        #expect(try await store.runs(feature: "fraud", limit: 10).map(\.id) == ["run_f"])
        #expect(try await store.runs(feature: "nothing", limit: 10).isEmpty)
        await fixture.stop()
    }

    @Test("a run's keys, modelPath, trigger and schedule slot round-trip", arguments: StoreKind.allCases)
    func runRoundTrip(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        var run = Self.newRun(
            "run_keys", at: 1000, trigger: .backfill, keys: ["a", "ü/ß", "with \"quote\"", ""],
            modelPath: "/models/churn v2.onnx")
        run.scheduledFor = 960
        let started = try await Self.start(store, run)
        #expect(started.snapshotID > 0)
        var expected = run
        expected.snapshotID = started.snapshotID
        #expect(started == expected)
        #expect(try await store.run(id: run.id) == expected)
        try await store.endRun(id: run.id, state: .canceled, error: "done", at: 1001)

        let plain = try await Self.start(store, Self.newRun("run_plain", at: 2000, trigger: .catchUp))
        let stored = try #require(try await store.run(id: plain.id))
        #expect(stored.keys == nil)
        #expect(stored.modelPath == nil)
        #expect(stored.scheduledFor == nil)
        #expect(stored.trigger == .catchUp)
        try await store.endRun(id: plain.id, state: .canceled, error: "done", at: 2001)

        // An empty subset is not the same as no subset.
        let empty = try await Self.start(store, Self.newRun("run_empty", at: 3000, keys: []))
        #expect(try await store.run(id: empty.id)?.keys == [])
        #expect(try await store.run(id: "run_missing") == nil)
        await fixture.stop()
    }

    // MARK: Ranges (several workers on one run)

    @Test("a schedule slot runs once: a second start for the same slot throws slotTaken", arguments: StoreKind.allCases)
    func slotTaken(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        var first = Self.newRun("run_1", at: 1000, trigger: .schedule)
        first.scheduledFor = 960
        let started = try await Self.start(store, first)
        _ = try await Self.publish(store, started, at: 1001)
        // Another server's scheduler fires for the same slot after the first run already finished.
        var second = Self.newRun("run_2", at: 1002, owner: "host-b:1", trigger: .schedule)
        second.scheduledFor = 960
        await #expect(throws: BatchStoreError.slotTaken(runID: "run_1")) { _ = try await Self.start(store, second) }
        #expect(try await store.run(id: "run_2") == nil)
        // The next slot is free; other features have their own slots.
        second.scheduledFor = 1020
        #expect(try await Self.start(store, second).state == .running)
        var fraud = Self.newRun("run_f", feature: "fraud", at: 1003, trigger: .schedule)
        fraud.scheduledFor = 960
        #expect(try await Self.start(store, fraud).state == .running)
        await fixture.stop()
    }

    @Test(
        "leaseRange hands each range to one worker, oldest run first, pending before lost ones",
        arguments: StoreKind.allCases)
    func leaseOrder(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let old = try await Self.start(store, Self.newRun("run_old", feature: "fraud", at: 900))
        let run = try await Self.start(store, Self.newRun("run_1", at: 1000))
        _ = try await store.splitRun(runID: run.id, rowsTotal: 30, rangeRows: 10, at: 1000)
        _ = try await store.splitRun(runID: old.id, rowsTotal: 5, rangeRows: 10, at: 1000)
        // No split → nothing to lease for that feature; a feature filter applies.
        #expect(
            try await store.leaseRange(
                features: ["other"], owner: "w1", now: 1001, leaseSeconds: 30, isGone: { _ in false }) == nil)
        var leased: [String] = []
        for worker in ["w1", "w2", "w3", "w4"] {
            let lease = try #require(
                try await store.leaseRange(
                    features: [Self.feature, "fraud"], owner: worker, now: 1001, leaseSeconds: 30,
                    isGone: { _ in false }))
            #expect(lease.range.state == .leased)
            #expect(lease.range.owner == worker)
            #expect(lease.range.leaseExpiresAt == 1031)
            #expect(lease.range.leases == 1)
            #expect(lease.run.resumes == 0)
            leased.append("\(lease.run.id)#\(lease.range.index)")
        }
        #expect(leased == ["run_old#0", "run_1#0", "run_1#1", "run_1#2"])
        // Every range is held: nothing more, until a lease runs out or its worker is known gone.
        #expect(
            try await store.leaseRange(
                features: [Self.feature, "fraud"], owner: "w5", now: 1030, leaseSeconds: 30, isGone: { _ in false })
                == nil)
        let gone = try #require(
            try await store.leaseRange(
                features: [Self.feature], owner: "w5", now: 1002, leaseSeconds: 30, isGone: { $0 == "w3" }))
        #expect(gone.range.index == 1)
        #expect(gone.range.leases == 2)
        #expect(gone.run.resumes == 1)
        let expired = try #require(
            try await store.leaseRange(
                features: [Self.feature], owner: "w6", now: 1031, leaseSeconds: 30, isGone: { _ in false }))
        #expect(expired.range.index == 0)
        #expect(expired.range.owner == "w6")
        // Ranges of ended runs are never leased.
        try await store.endRun(id: old.id, state: .canceled, error: "test", at: 1040)
        #expect(
            try await store.leaseRange(
                features: ["fraud"], owner: "w7", now: 5000, leaseSeconds: 30, isGone: { _ in true }) == nil)
        await fixture.stop()
    }

    @Test(
        "a worker that lost its range can neither write nor complete it; renew says so", arguments: StoreKind.allCases)
    func fencing(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let run = try await Self.start(store, Self.newRun("run_1", at: 1000))
        _ = try await store.splitRun(runID: run.id, rowsTotal: 4, rangeRows: 4, at: 1000)
        _ = try await store.leaseRange(
            features: [Self.feature], owner: "slow", now: 1000, leaseSeconds: 30, isGone: { _ in false })
        #expect(try await store.renewRange(runID: run.id, index: 0, owner: "slow", now: 1010, leaseSeconds: 30))
        #expect(try await store.ranges(runID: run.id).first?.leaseExpiresAt == 1040)
        try await store.appendRangeChunk(
            runID: run.id, index: 0, owner: "slow", chunk: SnapshotChunk(index: 0, keys: ["a"], outputs: [[1]]),
            failures: [],
            progress: RangeProgress(
                rangeRowsDone: 1, rowsRead: 1, rowsWritten: 1, rowsFailed: 0, busySeconds: 1, at: 1011))
        // Given back (a worker shutting down), the range is pending again with its checkpoint; only its holder can.
        #expect(try await store.releaseRange(runID: run.id, index: 0, owner: "other") == false)
        #expect(try await store.releaseRange(runID: run.id, index: 0, owner: "slow"))
        let released = try #require(try await store.ranges(runID: run.id).first)
        #expect(released.state == .pending && released.rowsDone == 1 && released.leaseExpiresAt == nil)
        _ = try await store.leaseRange(
            features: [Self.feature], owner: "slow", now: 1010, leaseSeconds: 30, isGone: { _ in false })
        // The lease runs out; another worker takes the range and resumes after the checkpoint.
        let taken = try #require(
            try await store.leaseRange(
                features: [Self.feature], owner: "fast", now: 1041, leaseSeconds: 30, isGone: { _ in false }))
        #expect(taken.range.rowsDone == 1)
        #expect(
            try await store.renewRange(runID: run.id, index: 0, owner: "slow", now: 1042, leaseSeconds: 30) == false)
        await #expect(throws: BatchStoreError.rangeLost(runID: run.id, index: 0)) {
            try await store.appendRangeChunk(
                runID: run.id, index: 0, owner: "slow", chunk: SnapshotChunk(index: 1, keys: ["b"], outputs: [[2]]),
                failures: [],
                progress: RangeProgress(
                    rangeRowsDone: 2, rowsRead: 1, rowsWritten: 1, rowsFailed: 0, busySeconds: 1, at: 1043))
        }
        await #expect(throws: BatchStoreError.rangeLost(runID: run.id, index: 0)) {
            _ = try await store.completeRange(
                runID: run.id, index: 0, owner: "slow", at: 1044, retention: 3, policy: .unguarded)
        }
        // The refused write left nothing behind.
        #expect(try await store.chunks(snapshotID: run.snapshotID).flatMap(\.keys) == ["a"])
        #expect(try await store.run(id: run.id)?.rowsDone == 1)
        try await store.appendRangeChunk(
            runID: run.id, index: 0, owner: "fast",
            chunk: SnapshotChunk(index: 1, keys: ["b", "c", "d"], outputs: [[2], [3], [4]]),
            failures: [],
            progress: RangeProgress(
                rangeRowsDone: 4, rowsRead: 3, rowsWritten: 3, rowsFailed: 0, busySeconds: 1, at: 1045))
        let completion = try await store.completeRange(
            runID: run.id, index: 0, owner: "fast", at: 1046, retention: 3, policy: .unguarded)
        guard case .published(let info) = completion else {
            Issue.record("not published: \(completion)")
            return
        }
        #expect(info.keyCount == 4)
        let done = try #require(try await store.run(id: run.id))
        #expect(done.rowsDone == 4)
        #expect(done.rowsWritten == 4)
        #expect(done.busySeconds == 2)
        #expect(done.resumes == 2)
        // A finished run's range cannot be renewed.
        #expect(
            try await store.renewRange(runID: run.id, index: 0, owner: "fast", now: 1047, leaseSeconds: 30) == false)
        await fixture.stop()
    }

    @Test(
        "the last completed range publishes, once; chunks read back in source order whoever wrote first",
        arguments: StoreKind.allCases)
    func lastRangePublishes(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let store = fixture.batch
        let run = try await Self.start(store, Self.newRun("run_1", at: 1000))
        _ = try await store.splitRun(runID: run.id, rowsTotal: 6, rangeRows: 2, at: 1000)
        var leases: [RangeLease] = []
        for worker in ["w0", "w1", "w2"] {
            leases.append(
                try #require(
                    try await store.leaseRange(
                        features: [Self.feature], owner: worker, now: 1001, leaseSeconds: 30, isGone: { _ in false })))
        }
        // Written back to front: range 2 first. The key "dup" is in ranges 0 and 2: the later source row wins.
        for lease in leases.reversed() {
            let start = lease.range.rowStart
            let keys = lease.range.index == 2 ? ["k4", "dup"] : lease.range.index == 0 ? ["dup", "k1"] : ["k2", "k3"]
            try await store.appendRangeChunk(
                runID: run.id, index: lease.range.index, owner: lease.range.owner!,
                chunk: SnapshotChunk(index: start, keys: keys, outputs: keys.map { Self.output("\($0)@\(start)") }),
                failures: [],
                progress: RangeProgress(
                    rangeRowsDone: 2, rowsRead: 2, rowsWritten: 2, rowsFailed: 0, busySeconds: 1, at: 1002))
        }
        #expect(
            try await store.completeRange(
                runID: run.id, index: 2, owner: "w2", at: 1003, retention: 3, policy: .unguarded) == .remaining(2)
        )
        #expect(
            try await store.completeRange(
                runID: run.id, index: 0, owner: "w0", at: 1004, retention: 3, policy: .unguarded) == .remaining(1)
        )
        #expect(try await store.publishedSnapshot(feature: Self.feature) == nil)
        let completion = try await store.completeRange(
            runID: run.id, index: 1, owner: "w1", at: 1005, retention: 3, policy: .unguarded)
        guard case .published(let info) = completion else {
            Issue.record("not published: \(completion)")
            return
        }
        #expect(info.keyCount == 5)
        #expect(info.publishedAt == 1005)
        let chunks = try await store.chunks(snapshotID: info.id)
        #expect(chunks.map(\.index) == [0, 2, 4])
        #expect(chunks.flatMap(\.keys) == ["dup", "k1", "k2", "k3", "k4", "dup"])
        #expect(try await store.ranges(runID: run.id).map(\.state) == [.done, .done, .done])
        #expect(try await store.run(id: run.id)?.state == .succeeded)
        // Completing again is refused: the run has ended.
        await #expect(throws: BatchStoreError.self) {
            _ = try await store.completeRange(
                runID: run.id, index: 1, owner: "w1", at: 1006, retention: 3, policy: .unguarded)
        }
        #expect(
            try await store.snapshots(feature: Self.feature, limit: 10).filter { $0.state == .published }.count == 1)
        await fixture.stop()
    }

    @Test(
        "workers racing for ranges: every range leased once, completed once, one publish", arguments: StoreKind.allCases
    )
    func racingWorkers(kind: StoreKind) async throws {
        let fixture = try await StoreFixture.make(kind)
        let second = try fixture.secondBatchStore()
        let stores: [any BatchStore] = [fixture.batch, second]
        let run = try await Self.start(fixture.batch, Self.newRun("run_1", at: 1000))
        _ = try await fixture.batch.splitRun(runID: run.id, rowsTotal: 400, rangeRows: 10, at: 1000)
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for worker in 0..<6 {
                group.addTask {
                    let store = stores[worker % 2]
                    var ranges = 0
                    var published = 0
                    while let lease = try await store.leaseRange(
                        features: [Self.feature], owner: "w\(worker)", now: 1001, leaseSeconds: 600,
                        isGone: { _ in false })
                    {
                        let start = lease.range.rowStart
                        let keys = (start..<lease.range.rowEnd).map { "k\($0)" }
                        try await store.appendRangeChunk(
                            runID: run.id, index: lease.range.index, owner: "w\(worker)",
                            chunk: SnapshotChunk(index: start, keys: keys, outputs: keys.map(Self.output)),
                            failures: [],
                            progress: RangeProgress(
                                rangeRowsDone: keys.count, rowsRead: keys.count, rowsWritten: keys.count, rowsFailed: 0,
                                busySeconds: 0.01, at: 1002))
                        let completion = try await store.completeRange(
                            runID: run.id, index: lease.range.index, owner: "w\(worker)", at: 1003, retention: 3,
                            policy: .unguarded)
                        ranges += 1
                        if case .published = completion { published += 1 }
                    }
                    return (ranges, published)
                }
            }
            var all: [(Int, Int)] = []
            for try await result in group { all.append(result) }
            return all
        }
        #expect(results.map(\.0).reduce(0, +) == 40)
        #expect(results.map(\.1).reduce(0, +) == 1)
        let ranges = try await fixture.batch.ranges(runID: run.id)
        #expect(ranges.allSatisfy { $0.leases == 1 && $0.state == .done })
        let published = try #require(try await fixture.batch.publishedSnapshot(feature: Self.feature))
        #expect(published.keyCount == 400)
        #expect(try await fixture.batch.run(id: run.id)?.rowsDone == 400)
        await fixture.stop()
    }

    // MARK: File store

    @Test("a file store keeps runs and snapshots across reopening, and sees another connection's live run")
    func fileStore() async throws {
        let path = try Self.temporaryStorePath()
        defer {
            try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path)
        }
        let snapshotID: Int64
        do {
            let store = try SQLiteStore(path: path)
            let (_, v1) = try await Self.complete(store, "run_1", at: 1000, chunks: [["a", "ключ"], ["b"]])
            snapshotID = v1.id
            let live = try await Self.start(store, Self.newRun("run_2", at: 2000))
            try await Self.append(store, live, index: 0, keys: ["c"], rowsDone: 1, at: 2001)
            // A second store on the same file (another process) sees the live run.
            let other = try SQLiteStore(path: path)
            await #expect(throws: BatchStoreError.runInProgress(runID: "run_2")) {
                _ = try await Self.start(other, Self.newRun("run_3", at: 2010, owner: "host-b:1"))
            }
        }
        let reopened = try SQLiteStore(path: path)
        let published = try #require(try await reopened.publishedSnapshot(feature: Self.feature))
        #expect(published.id == snapshotID)
        #expect(published.keyCount == 3)
        let chunks = try await reopened.chunks(snapshotID: snapshotID)
        #expect(chunks.flatMap(\.keys) == ["a", "ключ", "b"])
        #expect(chunks.flatMap(\.outputs) == ["a", "ключ", "b"].map(Self.output))
        // The interrupted run's range is leased again (its worker is gone) and resumes from its checkpoint.
        let lease = try #require(
            try await reopened.leaseRange(
                features: [Self.feature], owner: "host-b:1", now: 3000, leaseSeconds: 30,
                isGone: { $0 == Self.worker }))
        #expect(lease.run.id == "run_2")
        #expect(lease.range.rowsDone == 1)
        #expect(lease.range.leases == 2)
        #expect(lease.run.resumes == 1)
        #expect(try await reopened.chunks(snapshotID: lease.run.snapshotID).flatMap(\.keys) == ["c"])
        let completion = try await reopened.completeRange(
            runID: "run_2", index: 0, owner: "host-b:1", at: 3002, retention: 3, policy: .unguarded)
        guard case .published(let v2) = completion else {
            Issue.record("not published: \(completion)")
            return
        }
        #expect(v2.version == 2)
        #expect(try await reopened.publishedSnapshot(feature: Self.feature) == v2)
    }
}

/// Small JSON texts for outputs.
private enum JSONText {
    static func object(_ fields: [String: String]) -> [UInt8] {
        let body = fields.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\(escape($0.value))\"" }
        return Array("{\(body.joined(separator: ","))}".utf8)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
