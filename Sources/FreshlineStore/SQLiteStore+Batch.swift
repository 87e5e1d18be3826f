internal import Foundation
public import FreshlineCore
internal import GRDB

extension SQLiteStore {
    /// Snapshots, their chunks, runs and row failures (`v2-batch`). A snapshot's rows are stored as chunks, one
    /// database row per chunk of keys and outputs, so a run writes a few thousand rows per insert; serving never
    /// reads them per request (the server loads the published snapshot into memory).
    static func registerBatchMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v2-batch") { db in
            try db.execute(
                sql: """
                    CREATE TABLE snapshots (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        feature TEXT NOT NULL,
                        version INTEGER NOT NULL,
                        run_id TEXT NOT NULL,
                        model_version TEXT NOT NULL,
                        input_time DOUBLE NOT NULL,
                        created_at DOUBLE NOT NULL,
                        published_at DOUBLE,
                        key_count INTEGER NOT NULL DEFAULT 0,
                        state TEXT NOT NULL,
                        UNIQUE (feature, version)
                    );
                    CREATE UNIQUE INDEX snapshots_one_published ON snapshots (feature) WHERE state = 'published';
                    CREATE TABLE snapshot_chunks (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
                        chunk_index INTEGER NOT NULL,
                        row_count INTEGER NOT NULL,
                        keys BLOB NOT NULL,
                        outputs BLOB NOT NULL
                    );
                    CREATE INDEX snapshot_chunks_snapshot ON snapshot_chunks (snapshot_id, id);
                    CREATE TABLE runs (
                        id TEXT PRIMARY KEY,
                        feature TEXT NOT NULL,
                        trigger TEXT NOT NULL,
                        state TEXT NOT NULL,
                        snapshot_id INTEGER NOT NULL,
                        scheduled_for DOUBLE,
                        started_at DOUBLE NOT NULL,
                        finished_at DOUBLE,
                        heartbeat_at DOUBLE NOT NULL,
                        owner TEXT NOT NULL,
                        rows_total INTEGER,
                        rows_done INTEGER NOT NULL DEFAULT 0,
                        rows_written INTEGER NOT NULL DEFAULT 0,
                        rows_failed INTEGER NOT NULL DEFAULT 0,
                        busy_seconds DOUBLE NOT NULL DEFAULT 0,
                        resumes INTEGER NOT NULL DEFAULT 0,
                        error TEXT,
                        model_path TEXT,
                        keys TEXT
                    );
                    CREATE INDEX runs_feature_started ON runs (feature, started_at);
                    CREATE INDEX runs_feature_state ON runs (feature, state);
                    CREATE TABLE run_failures (
                        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                        ordinal INTEGER NOT NULL,
                        location TEXT NOT NULL,
                        key TEXT,
                        reason TEXT NOT NULL,
                        PRIMARY KEY (run_id, ordinal)
                    );
                    """)
        }
    }
}

/// Length-prefixed byte strings (UInt32 little-endian length, then the bytes), the encoding of a chunk's keys
/// and outputs.
enum ChunkCodec {
    static func encode(_ items: some Sequence<some Collection<UInt8>>) -> Data {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(items.underestimatedCount * 64)
        for item in items {
            let length = UInt32(item.count)
            bytes.append(UInt8(truncatingIfNeeded: length))
            bytes.append(UInt8(truncatingIfNeeded: length >> 8))
            bytes.append(UInt8(truncatingIfNeeded: length >> 16))
            bytes.append(UInt8(truncatingIfNeeded: length >> 24))
            bytes.append(contentsOf: item)
        }
        return Data(bytes)
    }

    static func decode(_ data: Data) throws -> [[UInt8]] {
        var items: [[UInt8]] = []
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < raw.count {
                guard offset + 4 <= raw.count else { throw CorruptChunk() }
                let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                offset += 4
                guard offset + length <= raw.count else { throw CorruptChunk() }
                items.append(Array(raw[offset..<(offset + length)]))
                offset += length
            }
        }
        return items
    }

    struct CorruptChunk: Error, CustomStringConvertible {
        var description: String { "a snapshot chunk in the store is corrupt" }
    }
}

extension SQLiteStore: BatchStore {
    public func startRun(
        _ run: BatchRun, modelVersion: String, inputTime: Double, copyFrom: Int64?, liveAfter: Double,
        isGone: @Sendable (String) -> Bool
    ) async throws -> BatchRun {
        try await writer.write { db in
            if let live = try Self.runningRuns(db, feature: run.feature).first(where: {
                $0.heartbeatAt > liveAfter && !isGone($0.owner)
            }) {
                throw BatchStoreError.runInProgress(runID: live.id)
            }
            let version =
                try Int.fetchOne(
                    db, sql: "SELECT COALESCE(MAX(version), 0) + 1 FROM snapshots WHERE feature = ?",
                    arguments: [run.feature]) ?? 1
            try db.execute(
                sql: """
                    INSERT INTO snapshots (feature, version, run_id, model_version, input_time, created_at, state)
                    VALUES (?, ?, ?, ?, ?, ?, 'building')
                    """,
                arguments: [run.feature, version, run.id, modelVersion, inputTime, run.startedAt])
            var started = run
            started.snapshotID = db.lastInsertedRowID
            if let copyFrom {
                try db.execute(
                    sql: """
                        INSERT INTO snapshot_chunks (snapshot_id, chunk_index, row_count, keys, outputs)
                        SELECT ?, -1, row_count, keys, outputs FROM snapshot_chunks WHERE snapshot_id = ? ORDER BY id
                        """,
                    arguments: [started.snapshotID, copyFrom])
            }
            try Self.insert(started, db)
            return started
        }
    }

    public func interruptedRun(feature: String, liveAfter: Double, isGone: @Sendable (String) -> Bool) async throws
        -> BatchRun?
    {
        try await writer.read { db in
            try Self.runningRuns(db, feature: feature).first { $0.heartbeatAt <= liveAfter || isGone($0.owner) }
        }
    }

    public func claimRun(id: String, previousOwner: String, owner: String, at: Double) async throws -> BatchRun? {
        try await writer.write { db in
            try db.execute(
                sql: """
                    UPDATE runs SET owner = ?, heartbeat_at = ?, resumes = resumes + 1
                    WHERE id = ? AND owner = ? AND state = 'running'
                    """,
                arguments: [owner, at, id, previousOwner])
            guard db.changesCount == 1 else { return nil }
            return try Self.fetchRun(db, id: id)
        }
    }

    public func appendChunk(
        runID: String, snapshotID: Int64, chunk: SnapshotChunk, failures: [RowFailure], progress: RunProgress
    ) async throws {
        let keys = ChunkCodec.encode(chunk.keys.lazy.map(\.utf8))
        let outputs = ChunkCodec.encode(chunk.outputs)
        try await writer.write { db in
            let state = try String.fetchOne(db, sql: "SELECT state FROM runs WHERE id = ?", arguments: [runID])
            guard let state else { throw BatchStoreError.unknownRun(runID) }
            guard state == BatchRun.State.running.rawValue else { throw BatchStoreError.runNotRunning(runID) }
            if !chunk.keys.isEmpty {
                try db.execute(
                    sql: """
                        INSERT INTO snapshot_chunks (snapshot_id, chunk_index, row_count, keys, outputs)
                        VALUES (?, ?, ?, ?, ?)
                        """,
                    arguments: [snapshotID, chunk.index, chunk.keys.count, keys, outputs])
            }
            for failure in failures {
                try db.execute(
                    sql:
                        "INSERT OR REPLACE INTO run_failures (run_id, ordinal, location, key, reason) VALUES (?,?,?,?,?)",
                    arguments: [runID, failure.ordinal, failure.location, failure.key, failure.reason])
            }
            try db.execute(
                sql: """
                    UPDATE runs SET rows_done = ?, rows_written = ?, rows_failed = ?, busy_seconds = ?, heartbeat_at = ?
                    WHERE id = ?
                    """,
                arguments: [
                    progress.rowsDone, progress.rowsWritten, progress.rowsFailed, progress.busySeconds,
                    progress.heartbeatAt, runID,
                ])
        }
    }

    public func heartbeat(runID: String, at: Double) async throws {
        try await writer.write { db in
            try db.execute(sql: "UPDATE runs SET heartbeat_at = ? WHERE id = ?", arguments: [at, runID])
        }
    }

    public func setRowsTotal(runID: String, rows: Int) async throws {
        try await writer.write { db in
            try db.execute(sql: "UPDATE runs SET rows_total = ? WHERE id = ?", arguments: [rows, runID])
        }
    }

    public func publish(runID: String, at: Double, retention: Int) async throws -> SnapshotInfo {
        let published = try await writer.write { db -> SnapshotInfo in
            guard let run = try Self.fetchRun(db, id: runID) else { throw BatchStoreError.unknownRun(runID) }
            guard run.state == .running else { throw BatchStoreError.runNotRunning(runID) }
            // Count distinct keys over every chunk (later chunks may repeat keys).
            var keys: Set<[UInt8]> = []
            let blobs = try Data.fetchAll(
                db, sql: "SELECT keys FROM snapshot_chunks WHERE snapshot_id = ?", arguments: [run.snapshotID])
            for blob in blobs { keys.formUnion(try ChunkCodec.decode(blob)) }
            try db.execute(
                sql: "UPDATE snapshots SET state = 'retired' WHERE feature = ? AND state = 'published'",
                arguments: [run.feature])
            try db.execute(
                sql: """
                    UPDATE snapshots SET state = 'published', published_at = ?, key_count = ?
                    WHERE id = ? AND state = 'building'
                    """,
                arguments: [at, keys.count, run.snapshotID])
            guard db.changesCount == 1 else { throw BatchStoreError.runNotRunning(runID) }
            try db.execute(
                sql: "UPDATE runs SET state = 'succeeded', finished_at = ?, heartbeat_at = ? WHERE id = ?",
                arguments: [at, at, runID])
            guard let info = try Self.fetchSnapshot(db, id: run.snapshotID) else {
                throw BatchStoreError.unknownRun(runID)
            }
            return info
        }
        try await writer.write { db in
            // Retention: keep the newest `retention` published or retired snapshots; drop the rest's rows.
            let keep = max(1, retention)
            let old = try Int64.fetchAll(
                db,
                sql: """
                    SELECT id FROM snapshots WHERE feature = ? AND state IN ('published', 'retired')
                    ORDER BY version DESC LIMIT -1 OFFSET ?
                    """,
                arguments: [published.feature, keep])
            for id in old {
                try db.execute(sql: "DELETE FROM snapshot_chunks WHERE snapshot_id = ?", arguments: [id])
                try db.execute(sql: "DELETE FROM snapshots WHERE id = ?", arguments: [id])
            }
        }
        return published
    }

    public func endRun(id: String, state: BatchRun.State, error: String, at: Double) async throws {
        try await writer.write { db in
            guard let run = try Self.fetchRun(db, id: id) else { throw BatchStoreError.unknownRun(id) }
            try db.execute(
                sql: "UPDATE runs SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                arguments: [state.rawValue, error, at, id])
            try db.execute(
                sql: "UPDATE snapshots SET state = 'abandoned' WHERE id = ? AND state = 'building'",
                arguments: [run.snapshotID])
            try db.execute(sql: "DELETE FROM snapshot_chunks WHERE snapshot_id = ?", arguments: [run.snapshotID])
        }
    }

    public func run(id: String) async throws -> BatchRun? {
        try await writer.read { db in try Self.fetchRun(db, id: id) }
    }

    public func runs(feature: String, limit: Int) async throws -> [BatchRun] {
        try await writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM runs WHERE feature = ? ORDER BY started_at DESC, rowid DESC LIMIT ?",
                arguments: [feature, limit]
            ).map(Self.run(from:))
        }
    }

    public func failures(runID: String, limit: Int) async throws -> [RowFailure] {
        try await writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM run_failures WHERE run_id = ? ORDER BY ordinal LIMIT ?",
                arguments: [runID, limit]
            ).map { row in
                RowFailure(ordinal: row["ordinal"], location: row["location"], key: row["key"], reason: row["reason"])
            }
        }
    }

    public func publishedSnapshot(feature: String) async throws -> SnapshotInfo? {
        try await writer.read { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM snapshots WHERE feature = ? AND state = 'published'", arguments: [feature]
            ).map(Self.snapshot(from:))
        }
    }

    public func snapshots(feature: String, limit: Int) async throws -> [SnapshotInfo] {
        try await writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM snapshots WHERE feature = ? ORDER BY version DESC LIMIT ?",
                arguments: [feature, limit]
            ).map(Self.snapshot(from:))
        }
    }

    public func chunks(snapshotID: Int64) async throws -> [SnapshotChunk] {
        try await writer.read { db in
            var result: [SnapshotChunk] = []
            let rows = try Row.fetchCursor(
                db, sql: "SELECT chunk_index, keys, outputs FROM snapshot_chunks WHERE snapshot_id = ? ORDER BY id",
                arguments: [snapshotID])
            while let row = try rows.next() {
                let keys = try ChunkCodec.decode(row["keys"]).map { String(decoding: $0, as: UTF8.self) }
                let outputs = try ChunkCodec.decode(row["outputs"])
                guard keys.count == outputs.count else { throw ChunkCodec.CorruptChunk() }
                result.append(SnapshotChunk(index: row["chunk_index"], keys: keys, outputs: outputs))
            }
            return result
        }
    }

    // MARK: Rows

    private static func runningRuns(_ db: Database, feature: String) throws -> [BatchRun] {
        try Row.fetchAll(db, sql: "SELECT * FROM runs WHERE feature = ? AND state = 'running'", arguments: [feature])
            .map(run(from:))
    }

    private static func fetchRun(_ db: Database, id: String) throws -> BatchRun? {
        try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ?", arguments: [id]).map(run(from:))
    }

    private static func fetchSnapshot(_ db: Database, id: Int64) throws -> SnapshotInfo? {
        try Row.fetchOne(db, sql: "SELECT * FROM snapshots WHERE id = ?", arguments: [id]).map(snapshot(from:))
    }

    private static func insert(_ run: BatchRun, _ db: Database) throws {
        let keys = try run.keys.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        try db.execute(
            sql: """
                INSERT INTO runs (id, feature, trigger, state, snapshot_id, scheduled_for, started_at, finished_at,
                    heartbeat_at, owner, rows_total, rows_done, rows_written, rows_failed, busy_seconds, resumes, error,
                    model_path, keys)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                run.id, run.feature, run.trigger.rawValue, run.state.rawValue, run.snapshotID, run.scheduledFor,
                run.startedAt, run.finishedAt, run.heartbeatAt, run.owner, run.rowsTotal, run.rowsDone,
                run.rowsWritten, run.rowsFailed, run.busySeconds, run.resumes, run.error, run.modelPath, keys,
            ])
    }

    private static func run(from row: Row) throws -> BatchRun {
        let keysText: String? = row["keys"]
        let keys = try keysText.map { try JSONDecoder().decode([String].self, from: Data($0.utf8)) }
        return BatchRun(
            id: row["id"], feature: row["feature"],
            trigger: BatchRun.Trigger(rawValue: row["trigger"]) ?? .manual,
            state: BatchRun.State(rawValue: row["state"]) ?? .failed, snapshotID: row["snapshot_id"],
            scheduledFor: row["scheduled_for"], startedAt: row["started_at"], finishedAt: row["finished_at"],
            heartbeatAt: row["heartbeat_at"], owner: row["owner"], rowsTotal: row["rows_total"],
            rowsDone: row["rows_done"], rowsWritten: row["rows_written"], rowsFailed: row["rows_failed"],
            busySeconds: row["busy_seconds"], resumes: row["resumes"], error: row["error"],
            modelPath: row["model_path"], keys: keys)
    }

    private static func snapshot(from row: Row) -> SnapshotInfo {
        SnapshotInfo(
            id: row["id"], feature: row["feature"], version: row["version"], runID: row["run_id"],
            modelVersion: row["model_version"], inputTime: row["input_time"], createdAt: row["created_at"],
            publishedAt: row["published_at"], keyCount: row["key_count"],
            state: SnapshotInfo.State(rawValue: row["state"]) ?? .abandoned)
    }
}
