import Foundation
import FreshlineCore
import FreshlineStore
import Testing

@Suite("Batch store (SQLite)")
struct BatchStoreTests {
    static let feature = "churn"

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
        _ store: SQLiteStore, _ run: BatchRun, copyFrom: Int64? = nil,
        isGone: @Sendable (String) -> Bool = { _ in false }
    ) async throws -> BatchRun {
        try await store.startRun(
            run, modelVersion: "mv-\(run.id)", inputTime: run.startedAt - 5, copyFrom: copyFrom,
            liveAfter: run.startedAt - 60, isGone: isGone)
    }

    /// The output bytes the tests store for a key.
    static func output(_ key: String) -> [UInt8] {
        JSONText.object(["key": key])
    }

    /// Writes one chunk of `keys` (outputs from `output(_:)`) with a progress record.
    static func append(
        _ store: SQLiteStore, _ run: BatchRun, index: Int, keys: [String], failures: [RowFailure] = [],
        rowsDone: Int = 0, at time: Double = 0
    ) async throws {
        try await store.appendChunk(
            runID: run.id, snapshotID: run.snapshotID,
            chunk: SnapshotChunk(index: index, keys: keys, outputs: keys.map(output)), failures: failures,
            progress: RunProgress(
                rowsDone: rowsDone, rowsWritten: keys.count, rowsFailed: failures.count, busySeconds: 0.5,
                heartbeatAt: time))
    }

    /// Starts, writes and publishes one run; returns the run as started and the published snapshot.
    @discardableResult
    static func complete(
        _ store: SQLiteStore, _ id: String, at time: Double, chunks: [[String]], retention: Int = 3,
        copyFrom: Int64? = nil
    ) async throws -> (run: BatchRun, snapshot: SnapshotInfo) {
        let run = try await start(store, newRun(id, at: time), copyFrom: copyFrom)
        for (index, keys) in chunks.enumerated() {
            try await append(store, run, index: index, keys: keys, at: time + 1)
        }
        let snapshot = try await store.publish(runID: run.id, at: time + 2, retention: retention)
        return (run, snapshot)
    }

    static func temporaryStorePath() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "freshline-batchstore-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent("store.sqlite").path
    }

    // MARK: Starting runs

    @Test("startRun creates a building snapshot; versions count 1, 2, 3 per feature")
    func versions() async throws {
        let store = try SQLiteStore()
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

        _ = try await store.publish(runID: first.id, at: 1010, retention: 3)
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
    }

    @Test("a second startRun while a live run exists throws runInProgress naming the live run")
    func runInProgress() async throws {
        let store = try SQLiteStore()
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
        // Once the live run ends, a new run may start.
        try await store.endRun(id: live.id, state: .canceled, error: "stopped", at: 1200)
        let next = try await Self.start(store, Self.newRun("run_next", at: 1210))
        #expect(next.state == .running)
    }

    @Test("a run whose heartbeat is older than liveAfter is interrupted, and may be claimed exactly once")
    func staleHeartbeatIsInterrupted() async throws {
        let store = try SQLiteStore()
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
    }

    @Test("a run whose owner isGone is interrupted even with a fresh heartbeat, and does not block a start")
    func goneOwnerIsInterrupted() async throws {
        let store = try SQLiteStore()
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
    }

    // MARK: Chunks and checkpoints

    @Test("appendChunk writes the chunk, its failures and the checkpoint together")
    func appendChunkWritesProgress() async throws {
        let store = try SQLiteStore()
        let run = try await Self.start(store, Self.newRun("run_1", at: 1000))
        try await store.setRowsTotal(runID: run.id, rows: 10)
        try await store.appendChunk(
            runID: run.id, snapshotID: run.snapshotID,
            chunk: SnapshotChunk(index: 0, keys: ["a", "b"], outputs: [Self.output("a"), Self.output("b")]),
            failures: [
                RowFailure(ordinal: 4, location: "accounts.csv:5", key: nil, reason: "has 2 fields, the header has 3"),
                RowFailure(ordinal: 2, location: "accounts.csv:3", key: "k2", reason: "column 'x': is empty"),
            ],
            progress: RunProgress(rowsDone: 4, rowsWritten: 2, rowsFailed: 2, busySeconds: 1.25, heartbeatAt: 1010))
        var stored = try #require(try await store.run(id: run.id))
        #expect(stored.rowsTotal == 10)
        #expect(stored.rowsDone == 4)
        #expect(stored.rowsWritten == 2)
        #expect(stored.rowsFailed == 2)
        #expect(stored.busySeconds == 1.25)
        #expect(stored.heartbeatAt == 1010)
        #expect(stored.state == .running)

        try await store.appendChunk(
            runID: run.id, snapshotID: run.snapshotID,
            chunk: SnapshotChunk(index: 1, keys: ["c"], outputs: [Self.output("c")]),
            failures: [RowFailure(ordinal: 3, location: "accounts.csv:4", key: "k3", reason: "'q' is not a number")],
            progress: RunProgress(rowsDone: 6, rowsWritten: 3, rowsFailed: 3, busySeconds: 2.5, heartbeatAt: 1020))
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
        #expect(chunks.map(\.index) == [0, 1])
        #expect(chunks.flatMap(\.keys) == ["a", "b", "c"])
    }

    @Test("heartbeat and setRowsTotal update the run")
    func heartbeatAndTotal() async throws {
        let store = try SQLiteStore()
        let run = try await Self.start(store, Self.newRun("run_1", at: 1000))
        #expect(try await store.run(id: run.id)?.rowsTotal == nil)
        try await store.heartbeat(runID: run.id, at: 1234.5)
        try await store.setRowsTotal(runID: run.id, rows: 77)
        let stored = try #require(try await store.run(id: run.id))
        #expect(stored.heartbeatAt == 1234.5)
        #expect(stored.rowsTotal == 77)
        #expect(stored.rowsDone == 0)
    }

    @Test("chunks come back in write order with keys and outputs intact (non-ASCII keys, empty outputs)")
    func chunkRoundTrip() async throws {
        let store = try SQLiteStore()
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
            try await store.appendChunk(
                runID: run.id, snapshotID: run.snapshotID, chunk: chunk, failures: [],
                progress: RunProgress(rowsDone: 0, rowsWritten: 0, rowsFailed: 0, busySeconds: 0, heartbeatAt: 1000))
        }
        let read = try await store.chunks(snapshotID: run.snapshotID)
        #expect(read == written)
        // Keys are stored byte for byte: the decomposed "é" is not normalized to the composed one.
        #expect(read.first?.keys[3].utf8.count == 3)

        // A chunk without rows (every row failed) stores no chunk but still records its checkpoint.
        try await store.appendChunk(
            runID: run.id, snapshotID: run.snapshotID, chunk: SnapshotChunk(index: 4, keys: [], outputs: []),
            failures: [RowFailure(ordinal: 1003, location: "f.csv:1004", key: nil, reason: "bad")],
            progress: RunProgress(rowsDone: 1004, rowsWritten: 1003, rowsFailed: 1, busySeconds: 3, heartbeatAt: 1050))
        #expect(try await store.chunks(snapshotID: run.snapshotID).count == written.count)
        #expect(try await store.run(id: run.id)?.rowsDone == 1004)
        #expect(try await store.failures(runID: run.id, limit: 10).count == 1)
        // A snapshot id that does not exist has no chunks.
        #expect(try await store.chunks(snapshotID: 987_654).isEmpty)

        let info = try await store.publish(runID: run.id, at: 1100, retention: 3)
        // "" is a key like any other: 4 + 1 + 1000 + 1.
        #expect(info.keyCount == 1006)
    }

    // MARK: Publishing

    @Test("building snapshots are never returned by publishedSnapshot")
    func buildingIsNotPublished() async throws {
        let store = try SQLiteStore()
        #expect(try await store.publishedSnapshot(feature: Self.feature) == nil)
        let run = try await Self.start(store, Self.newRun("run_1", at: 1000))
        try await Self.append(store, run, index: 0, keys: ["a", "b"], rowsDone: 2, at: 1001)
        #expect(try await store.publishedSnapshot(feature: Self.feature) == nil)
        let published = try await store.publish(runID: run.id, at: 1002, retention: 3)
        #expect(try await store.publishedSnapshot(feature: Self.feature) == published)

        let next = try await Self.start(store, Self.newRun("run_2", at: 2000))
        try await Self.append(store, next, index: 0, keys: ["c"], rowsDone: 1, at: 2001)
        let current = try await store.publishedSnapshot(feature: Self.feature)
        #expect(current?.id == run.snapshotID)
        #expect(current?.state == .published)
        #expect(try await store.publishedSnapshot(feature: "fraud") == nil)
    }

    @Test("publish makes exactly one published snapshot, retires the previous, counts distinct keys")
    func publishRetiresPrevious() async throws {
        let store = try SQLiteStore()
        let first = try await Self.start(store, Self.newRun("run_1", at: 1000))
        try await Self.append(store, first, index: 0, keys: ["a", "b", "c"], rowsDone: 3, at: 1001)
        // "c" again in the next chunk (a later row for the same key): counted once.
        try await Self.append(store, first, index: 1, keys: ["c", "d"], rowsDone: 5, at: 1002)
        let v1 = try await store.publish(runID: first.id, at: 1010, retention: 3)
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
        let v2 = try await store.publish(runID: second.id, at: 2010, retention: 3)
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
    }

    @Test("publishing an unknown run throws unknownRun")
    func publishUnknownRun() async throws {
        let store = try SQLiteStore()
        await #expect(throws: BatchStoreError.unknownRun("run_nope")) {
            _ = try await store.publish(runID: "run_nope", at: 1, retention: 3)
        }
        await #expect(throws: BatchStoreError.unknownRun("run_nope")) {
            try await store.endRun(id: "run_nope", state: .failed, error: "x", at: 1)
        }
    }

    @Test("publish only publishes a running run's building snapshot (abandoned and old snapshots stay unserved)")
    func publishRequiresRunningRun() async throws {
        let store = try SQLiteStore()
        let (_, v1) = try await Self.complete(store, "run_1", at: 1000, chunks: [["a", "b"]])

        // A run that failed (its snapshot abandoned, its rows deleted) must not become the served snapshot.
        let failed = try await Self.start(store, Self.newRun("run_2", at: 2000))
        try await Self.append(store, failed, index: 0, keys: ["c"], rowsDone: 1, at: 2001)
        try await store.endRun(id: failed.id, state: .failed, error: "source unreadable", at: 2002)
        let republished = try? await store.publish(runID: failed.id, at: 2003, retention: 3)
        #expect(republished == nil, "publish accepted a failed run: \(String(describing: republished))")
        let served = try await store.publishedSnapshot(feature: Self.feature)
        #expect(served?.id == v1.id, "served snapshot: \(String(describing: served))")
        let failedState = try await store.run(id: failed.id)?.state
        #expect(failedState == .failed, "the failed run is now \(String(describing: failedState))")

        // A run published twice (e.g. a process that lost its lease finishing late) must not bring its snapshot
        // back over a newer one.
        let (_, v3) = try await Self.complete(store, "run_3", at: 3000, chunks: [["d"]])
        #expect(try await store.publishedSnapshot(feature: Self.feature)?.id == v3.id)
        _ = try? await store.publish(runID: "run_1", at: 3100, retention: 3)
        let afterReplay = try await store.publishedSnapshot(feature: Self.feature)
        #expect(
            afterReplay?.id == v3.id, "served snapshot after publishing run_1 again: \(String(describing: afterReplay))"
        )
    }

    @Test("retention keeps the newest N published or retired snapshots and deletes the older ones with their chunks")
    func retention() async throws {
        let store = try SQLiteStore()
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
        // A building snapshot (here an interrupted run's) neither counts towards retention nor is deleted by it.
        let sixth = try await Self.start(store, Self.newRun("run_6", at: 6000))
        try await Self.append(store, sixth, index: 0, keys: ["k6"], rowsDone: 1, at: 6001)
        let (seventh, _) = try await Self.complete(store, "run_7", at: 7000, chunks: [["k7"]], retention: 2)
        let after = try await store.snapshots(feature: Self.feature, limit: 10)
        #expect(after.map(\.version) == [7, 6, 5])
        #expect(after.map(\.state) == [.published, .building, .retired])
        #expect(try await store.chunks(snapshotID: sixth.snapshotID).flatMap(\.keys) == ["k6"])
        #expect(try await store.chunks(snapshotID: seventh.snapshotID).flatMap(\.keys) == ["k7"])
        #expect(try await store.chunks(snapshotID: runs[3].snapshotID).isEmpty)

        // Retention below 1 still keeps the published snapshot.
        let store2 = try SQLiteStore()
        let (a, _) = try await Self.complete(store2, "run_a", at: 100, chunks: [["a"]], retention: 0)
        let (b, vb) = try await Self.complete(store2, "run_b", at: 200, chunks: [["b"]], retention: 0)
        #expect(try await store2.snapshots(feature: Self.feature, limit: 10) == [vb])
        #expect(try await store2.publishedSnapshot(feature: Self.feature) == vb)
        #expect(try await store2.chunks(snapshotID: a.snapshotID).isEmpty)
        #expect(try await store2.chunks(snapshotID: b.snapshotID).flatMap(\.keys) == ["b"])
    }

    @Test("retention only counts the feature's own snapshots")
    func retentionPerFeature() async throws {
        let store = try SQLiteStore()
        let fraudRun = try await Self.start(store, Self.newRun("run_f", feature: "fraud", at: 10))
        try await Self.append(store, fraudRun, index: 0, keys: ["f"], rowsDone: 1, at: 11)
        let fraud = try await store.publish(runID: fraudRun.id, at: 12, retention: 1)
        for i in 1...3 {
            try await Self.complete(store, "run_\(i)", at: Double(i) * 100, chunks: [["k\(i)"]], retention: 1)
        }
        #expect(try await store.snapshots(feature: Self.feature, limit: 10).map(\.version) == [3])
        #expect(try await store.publishedSnapshot(feature: "fraud") == fraud)
        #expect(try await store.chunks(snapshotID: fraud.id).flatMap(\.keys) == ["f"])
    }

    @Test("copyFrom starts the new snapshot with the old snapshot's chunks")
    func copyFrom() async throws {
        let store = try SQLiteStore()
        let (_, v1) = try await Self.complete(store, "run_1", at: 1000, chunks: [["a", "b"], ["c"]])
        let backfill = try await Self.start(
            store, Self.newRun("run_2", at: 2000, trigger: .backfill, keys: ["b", "z"]), copyFrom: v1.id)
        #expect(backfill.snapshotID != v1.id)
        let copied = try await store.chunks(snapshotID: backfill.snapshotID)
        #expect(copied.flatMap(\.keys) == ["a", "b", "c"])
        #expect(copied.flatMap(\.outputs) == ["a", "b", "c"].map(Self.output))
        // The new run's own chunks come after the copy (later keys win when applied in order).
        try await store.appendChunk(
            runID: backfill.id, snapshotID: backfill.snapshotID,
            chunk: SnapshotChunk(index: 0, keys: ["b", "z"], outputs: [Array("{\"new\":1}".utf8), Self.output("z")]),
            failures: [],
            progress: RunProgress(rowsDone: 2, rowsWritten: 2, rowsFailed: 0, busySeconds: 0, heartbeatAt: 2001))
        let all = try await store.chunks(snapshotID: backfill.snapshotID)
        #expect(all.flatMap(\.keys) == ["a", "b", "c", "b", "z"])
        #expect(all.last?.index == 0)
        #expect(all.last?.outputs.first == Array("{\"new\":1}".utf8))
        let v2 = try await store.publish(runID: backfill.id, at: 2010, retention: 3)
        #expect(v2.keyCount == 4)
        // The source snapshot is untouched by the copy.
        #expect(try await store.chunks(snapshotID: v1.id).flatMap(\.keys) == ["a", "b", "c"])
    }

    @Test("endRun(.failed) abandons the snapshot, deletes its chunks, and the published snapshot stays published")
    func endRunAbandons() async throws {
        let store = try SQLiteStore()
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
    }

    // MARK: Run records

    @Test("runs(feature:limit:) lists a feature's runs newest first")
    func runsNewestFirst() async throws {
        let store = try SQLiteStore()
        for (id, time) in [("run_b", 200.0), ("run_a", 100.0), ("run_c", 300.0)] {
            let run = try await Self.start(store, Self.newRun(id, at: time))
            try await store.endRun(id: run.id, state: .canceled, error: "test", at: time + 1)
        }
        _ = try await Self.start(store, Self.newRun("run_f", feature: "fraud", at: 400))
        #expect(try await store.runs(feature: Self.feature, limit: 10).map(\.id) == ["run_c", "run_b", "run_a"])
        #expect(try await store.runs(feature: Self.feature, limit: 2).map(\.id) == ["run_c", "run_b"])
        #expect(try await store.runs(feature: "fraud", limit: 10).map(\.id) == ["run_f"])
        #expect(try await store.runs(feature: "nothing", limit: 10).isEmpty)
    }

    @Test("a run's keys, modelPath, trigger and schedule slot round-trip")
    func runRoundTrip() async throws {
        let store = try SQLiteStore()
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
        // The interrupted run is found and resumed from its checkpoint.
        let interrupted = try #require(
            try await reopened.interruptedRun(feature: Self.feature, liveAfter: 3000, isGone: { _ in false }))
        #expect(interrupted.id == "run_2")
        #expect(interrupted.rowsDone == 1)
        let claimed = try #require(
            try await reopened.claimRun(id: "run_2", previousOwner: "host-a:100", owner: "host-b:1", at: 3001))
        #expect(try await reopened.chunks(snapshotID: claimed.snapshotID).flatMap(\.keys) == ["c"])
        let v2 = try await reopened.publish(runID: claimed.id, at: 3002, retention: 3)
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
