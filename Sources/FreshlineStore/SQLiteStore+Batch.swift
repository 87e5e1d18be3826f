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

extension SQLiteStore {
    /// A run's ranges (`v7-run-ranges`): the unit of work several workers share.
    static func registerRangesMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v7-run-ranges") { db in
            try db.execute(
                sql: """
                    CREATE TABLE run_ranges (
                        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                        idx INTEGER NOT NULL,
                        row_start INTEGER NOT NULL,
                        row_end INTEGER NOT NULL,
                        state TEXT NOT NULL,
                        owner TEXT,
                        lease_expires_at DOUBLE,
                        rows_done INTEGER NOT NULL DEFAULT 0,
                        leases INTEGER NOT NULL DEFAULT 0,
                        finished_at DOUBLE,
                        PRIMARY KEY (run_id, idx)
                    );
                    CREATE INDEX run_ranges_open ON run_ranges (state, run_id);
                    """)
        }
    }

    /// The provider batch computing a range (`batch.provider_batch`), and the tokens a run's rows used
    /// (`v9-provider-batches`).
    static func registerProviderBatchesMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v9-provider-batches") { db in
            try db.execute(
                sql: """
                    ALTER TABLE run_ranges ADD COLUMN provider_batch TEXT;
                    ALTER TABLE runs ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE runs ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0;
                    """)
        }
    }
}

extension SQLiteStore {
    /// A sealed snapshot's file (its checksum and size; the file itself lives in the snapshot folder) and a
    /// backfill's base snapshot (`v11-sealed-snapshots`).
    static func registerSealedSnapshotsMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v11-sealed-snapshots") { db in
            try db.execute(
                sql: """
                    ALTER TABLE snapshots ADD COLUMN file_checksum INTEGER;
                    ALTER TABLE snapshots ADD COLUMN file_size INTEGER;
                    ALTER TABLE snapshots ADD COLUMN base_id INTEGER;
                    CREATE INDEX snapshot_chunks_order ON snapshot_chunks (snapshot_id, chunk_index, id);
                    """)
        }
    }
}

/// A chunk's keys as the store keeps them: `PackedRows`' layout (UInt32 little-endian length, then the bytes), as
/// the outputs are kept.
enum ChunkCodec {
    static func encode(_ items: some Sequence<some Collection<UInt8>>) -> Data { Data(PackedRows(items).bytes) }

    static func decode(_ data: Data) throws -> [[UInt8]] {
        guard let rows = PackedRows(packed: Array(data)) else { throw CorruptChunk() }
        return rows.rows
    }

    struct CorruptChunk: Error, CustomStringConvertible {
        var description: String { "a snapshot chunk in the store is corrupt" }
    }
}

extension SQLiteStore: BatchStore {
    public func startRun(
        _ run: BatchRun, modelVersion: String, inputTime: Double, copyFrom: Int64?, liveAfter: Double,
        isGone: @escaping @Sendable (String) -> Bool
    ) async throws -> BatchRun {
        try await writer.write { db in
            // A split run is live whoever is gone (any worker resumes its ranges); one not yet split is live while
            // its starter is.
            let split = try Set(
                String.fetchAll(
                    db,
                    sql: """
                        SELECT DISTINCT runs.id FROM runs JOIN run_ranges ON run_ranges.run_id = runs.id
                        WHERE runs.feature = ? AND runs.state = 'running'
                        """,
                    arguments: [run.feature]))
            if let live = try Self.runningRuns(db, feature: run.feature).first(where: {
                split.contains($0.id) || ($0.heartbeatAt > liveAfter && !isGone($0.owner))
            }) {
                throw BatchStoreError.runInProgress(runID: live.id)
            }
            if let slot = run.scheduledFor,
                let taken = try String.fetchOne(
                    db, sql: "SELECT id FROM runs WHERE feature = ? AND scheduled_for = ? LIMIT 1",
                    arguments: [run.feature, slot])
            {
                throw BatchStoreError.slotTaken(runID: taken)
            }
            let version =
                try Int.fetchOne(
                    db, sql: "SELECT COALESCE(MAX(version), 0) + 1 FROM snapshots WHERE feature = ?",
                    arguments: [run.feature]) ?? 1
            try db.execute(
                sql: """
                    INSERT INTO snapshots (feature, version, run_id, model_version, input_time, created_at, state,
                        base_id)
                    VALUES (?, ?, ?, ?, ?, ?, 'building', ?)
                    """,
                arguments: [run.feature, version, run.id, modelVersion, inputTime, run.startedAt, copyFrom])
            var started = run
            started.snapshotID = db.lastInsertedRowID
            if let copyFrom {
                try db.execute(
                    sql: """
                        INSERT INTO snapshot_chunks (snapshot_id, chunk_index, row_count, keys, outputs)
                        SELECT ?, -1, row_count, keys, outputs FROM snapshot_chunks WHERE snapshot_id = ?
                        ORDER BY chunk_index, id
                        """,
                    arguments: [started.snapshotID, copyFrom])
            }
            try Self.insert(started, db)
            return started
        }
    }

    public func interruptedRun(feature: String, liveAfter: Double, isGone: @escaping @Sendable (String) -> Bool)
        async throws
        -> BatchRun?
    {
        try await writer.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM runs WHERE feature = ? AND state = 'running'
                    AND NOT EXISTS (SELECT 1 FROM run_ranges WHERE run_id = runs.id)
                    """,
                arguments: [feature]
            ).map(Self.run(from:)).first { $0.heartbeatAt <= liveAfter || isGone($0.owner) }
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

    public func heartbeat(runID: String, at: Double) async throws {
        try await writer.write { db in
            try db.execute(sql: "UPDATE runs SET heartbeat_at = ? WHERE id = ?", arguments: [at, runID])
        }
    }

    public func splitRun(runID: String, rowsTotal: Int, rangeRows: Int, at: Double) async throws -> [RunRange] {
        try await writer.write { db in
            guard let run = try Self.fetchRun(db, id: runID) else { throw BatchStoreError.unknownRun(runID) }
            guard run.state == .running else { throw BatchStoreError.runNotRunning(runID) }
            let existing = try Self.fetchRanges(db, runID: runID)
            if !existing.isEmpty { return existing }
            let ranges = RunRange.split(runID: runID, rowsTotal: rowsTotal, rangeRows: rangeRows)
            for range in ranges {
                try db.execute(
                    sql:
                        "INSERT INTO run_ranges (run_id, idx, row_start, row_end, state) VALUES (?, ?, ?, ?, 'pending')",
                    arguments: [runID, range.index, range.rowStart, range.rowEnd])
            }
            try db.execute(
                sql: "UPDATE runs SET rows_total = ?, heartbeat_at = ? WHERE id = ?", arguments: [rowsTotal, at, runID])
            return ranges
        }
    }

    public func leaseRange(
        features: [String], owner: String, now: Double, leaseSeconds: Double,
        isGone: @escaping @Sendable (String) -> Bool
    ) async throws -> RangeLease? {
        guard !features.isEmpty else { return nil }
        return try await writer.write { db in
            let marks = Array(repeating: "?", count: features.count).joined(separator: ", ")
            let arguments = StatementArguments(features)
            // Open ranges of running runs, oldest run first; a leased one only when its lease ran out or its owner is
            // gone (checked below, in Swift).
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT r.* FROM run_ranges r JOIN runs ON runs.id = r.run_id
                    WHERE runs.state = 'running' AND runs.feature IN (\(marks))
                    AND (r.state = 'pending' OR r.state = 'leased')
                    ORDER BY runs.started_at, runs.id, r.state = 'leased', r.idx
                    """,
                arguments: arguments)
            for row in rows {
                guard
                    let (leased, takenOver) = RangeLeaseRules.lease(
                        Self.range(from: row), owner: owner, now: now, leaseSeconds: leaseSeconds, isGone: isGone)
                else { continue }
                try db.execute(
                    sql: """
                        UPDATE run_ranges SET state = ?, owner = ?, lease_expires_at = ?, leases = ?
                        WHERE run_id = ? AND idx = ?
                        """,
                    arguments: [
                        leased.state.rawValue, leased.owner, leased.leaseExpiresAt, leased.leases, leased.runID,
                        leased.index,
                    ])
                try db.execute(
                    sql: "UPDATE runs SET heartbeat_at = ?, resumes = resumes + ? WHERE id = ?",
                    arguments: [now, takenOver ? 1 : 0, leased.runID])
                guard let run = try Self.fetchRun(db, id: leased.runID),
                    let stored = try Self.fetchRange(db, runID: leased.runID, index: leased.index)
                else { continue }
                return RangeLease(run: run, range: stored)
            }
            return nil
        }
    }

    public func renewRange(runID: String, index: Int, owner: String, now: Double, leaseSeconds: Double) async throws
        -> Bool
    {
        try await writer.write { db in
            try db.execute(
                sql: """
                    UPDATE run_ranges SET lease_expires_at = ?
                    WHERE run_id = ? AND idx = ? AND owner = ? AND state = 'leased'
                    AND EXISTS (SELECT 1 FROM runs WHERE id = ? AND state = 'running')
                    """,
                arguments: [now + leaseSeconds, runID, index, owner, runID])
            guard db.changesCount == 1 else { return false }
            try db.execute(sql: "UPDATE runs SET heartbeat_at = ? WHERE id = ?", arguments: [now, runID])
            return true
        }
    }

    public func recordProviderBatch(runID: String, index: Int, owner: String, batchID: String) async throws {
        try await writer.write { db in
            try db.execute(
                sql: """
                    UPDATE run_ranges SET provider_batch = ?
                    WHERE run_id = ? AND idx = ? AND owner = ? AND state = 'leased'
                    AND EXISTS (SELECT 1 FROM runs WHERE id = ? AND state = 'running')
                    """,
                arguments: [batchID, runID, index, owner, runID])
            guard db.changesCount == 1 else { throw BatchStoreError.rangeLost(runID: runID, index: index) }
        }
    }

    public func releaseRange(runID: String, index: Int, owner: String) async throws -> Bool {
        try await writer.write { db in
            try db.execute(
                sql: """
                    UPDATE run_ranges SET state = 'pending', lease_expires_at = NULL
                    WHERE run_id = ? AND idx = ? AND owner = ? AND state = 'leased'
                    """,
                arguments: [runID, index, owner])
            return db.changesCount == 1
        }
    }

    public func appendRangeChunk(
        runID: String, index: Int, owner: String, chunk: SnapshotChunk, failures: [RowFailure],
        progress: RangeProgress
    ) async throws {
        let keys = ChunkCodec.encode(chunk.keys.lazy.map(\.utf8))
        let outputs = Data(chunk.packedOutputs.bytes)  // already the codec's form
        try await writer.write { db in
            guard let run = try Self.fetchRun(db, id: runID) else { throw BatchStoreError.unknownRun(runID) }
            guard run.state == .running else { throw BatchStoreError.runNotRunning(runID) }
            try Self.requireLease(db, runID: runID, index: index, owner: owner)
            if !chunk.keys.isEmpty {
                try db.execute(
                    sql: """
                        INSERT INTO snapshot_chunks (snapshot_id, chunk_index, row_count, keys, outputs)
                        VALUES (?, ?, ?, ?, ?)
                        """,
                    arguments: [run.snapshotID, chunk.index, chunk.keys.count, keys, outputs])
            }
            for failure in failures {
                try db.execute(
                    sql:
                        "INSERT OR REPLACE INTO run_failures (run_id, ordinal, location, key, reason) VALUES (?,?,?,?,?)",
                    arguments: [runID, failure.ordinal, failure.location, failure.key, failure.reason])
            }
            try db.execute(
                sql: "UPDATE run_ranges SET rows_done = ? WHERE run_id = ? AND idx = ?",
                arguments: [progress.rangeRowsDone, runID, index])
            try db.execute(
                sql: """
                    UPDATE runs SET rows_done = rows_done + ?, rows_written = rows_written + ?,
                        rows_failed = rows_failed + ?, busy_seconds = busy_seconds + ?, heartbeat_at = ?,
                        input_tokens = input_tokens + ?, output_tokens = output_tokens + ?
                    WHERE id = ?
                    """,
                arguments: [
                    progress.rowsRead, progress.rowsWritten, progress.rowsFailed, progress.busySeconds, progress.at,
                    progress.inputTokens, progress.outputTokens, runID,
                ])
        }
    }

    public func completeRange(
        runID: String, index: Int, owner: String, at: Double, retention: Int, policy: PublishPolicy
    ) async throws -> RangeCompletion {
        let completion = try await writer.write { db -> RangeCompletion in
            guard let run = try Self.fetchRun(db, id: runID) else { throw BatchStoreError.unknownRun(runID) }
            guard run.state == .running else { throw BatchStoreError.runNotRunning(runID) }
            guard
                let done = RangeLeaseRules.complete(
                    try Self.fetchRange(db, runID: runID, index: index), owner: owner, at: at)
            else { throw BatchStoreError.rangeLost(runID: runID, index: index) }
            try db.execute(
                sql:
                    "UPDATE run_ranges SET state = ?, finished_at = ?, lease_expires_at = ? WHERE run_id = ? AND idx = ?",
                arguments: [done.state.rawValue, done.finishedAt, done.leaseExpiresAt, runID, index])
            let open =
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM run_ranges WHERE run_id = ? AND state <> 'done'",
                    arguments: [runID]) ?? 0
            if open > 0 { return .remaining(open) }
            return try Self.publish(db, run: run, at: at, policy: policy)
        }
        if case .published(let info) = completion {
            try await writer.write { db in try Self.applyRetention(db, feature: info.feature, retention: retention) }
        }
        return completion
    }

    public func ranges(runID: String) async throws -> [RunRange] {
        try await writer.read { db in try Self.fetchRanges(db, runID: runID) }
    }

    /// Publishes `run`'s snapshot (the previous one retires) and marks the run succeeded; or, when `policy` refuses
    /// the run, ends it failed and leaves the published snapshot as it was.
    private static func publish(_ db: Database, run: BatchRun, at: Double, policy: PublishPolicy) throws
        -> RangeCompletion
    {
        // Count distinct keys over every chunk (later chunks may repeat keys).
        var keys = DistinctKeyCounter(expected: run.rowsWritten)
        let blobs = try Data.fetchAll(
            db, sql: "SELECT keys FROM snapshot_chunks WHERE snapshot_id = ?", arguments: [run.snapshotID])
        for blob in blobs {
            guard blob.withUnsafeBytes({ keys.add(encodedKeys: $0) }) else { throw ChunkCodec.CorruptChunk() }
        }
        let previous = try Row.fetchOne(
            db, sql: "SELECT * FROM snapshots WHERE feature = ? AND state = 'published'", arguments: [run.feature]
        ).map(snapshot(from:))
        let firstFailure = try Row.fetchOne(
            db, sql: "SELECT * FROM run_failures WHERE run_id = ? ORDER BY ordinal LIMIT 1", arguments: [run.id]
        ).map { row in
            RowFailure(ordinal: row["ordinal"], location: row["location"], key: row["key"], reason: row["reason"])
        }
        if let reason = policy.refusal(
            run: run, keyCount: keys.distinctCount(), previous: previous, firstFailure: firstFailure)
        {
            try end(db, run: run, state: .failed, error: reason, at: at)
            return .refused(reason)
        }
        try db.execute(
            sql: "UPDATE snapshots SET state = 'retired' WHERE feature = ? AND state = 'published'",
            arguments: [run.feature])
        try db.execute(
            sql: """
                UPDATE snapshots SET state = 'published', published_at = ?, key_count = ?
                WHERE id = ? AND state = 'building'
                """,
            arguments: [at, keys.distinctCount(), run.snapshotID])
        guard db.changesCount == 1 else { throw BatchStoreError.runNotRunning(run.id) }
        try db.execute(
            sql: "UPDATE runs SET state = 'succeeded', finished_at = ?, heartbeat_at = ? WHERE id = ?",
            arguments: [at, at, run.id])
        guard let info = try fetchSnapshot(db, id: run.snapshotID) else { throw BatchStoreError.unknownRun(run.id) }
        return .published(info)
    }

    /// Keeps the newest `retention` published or retired snapshots of `feature`; drops the rest and their rows.
    private static func applyRetention(_ db: Database, feature: String, retention: Int) throws {
        let old = try Int64.fetchAll(
            db,
            sql: """
                SELECT id FROM snapshots WHERE feature = ? AND state IN ('published', 'retired')
                ORDER BY version DESC LIMIT -1 OFFSET ?
                """,
            arguments: [feature, max(1, retention)])
        for id in old {
            try db.execute(sql: "DELETE FROM snapshot_chunks WHERE snapshot_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM snapshots WHERE id = ?", arguments: [id])
        }
    }

    private static func requireLease(_ db: Database, runID: String, index: Int, owner: String) throws {
        guard RangeLeaseRules.holds(try fetchRange(db, runID: runID, index: index), owner: owner) else {
            throw BatchStoreError.rangeLost(runID: runID, index: index)
        }
    }

    public func endRun(id: String, state: BatchRun.State, error: String, at: Double) async throws {
        try await writer.write { db in
            guard let run = try Self.fetchRun(db, id: id) else { throw BatchStoreError.unknownRun(id) }
            try Self.end(db, run: run, state: state, error: error, at: at)
        }
    }

    /// Ends `run` without publishing: its state and error recorded, its snapshot abandoned and its rows deleted.
    private static func end(_ db: Database, run: BatchRun, state: BatchRun.State, error: String, at: Double) throws {
        try db.execute(
            sql: "UPDATE runs SET state = ?, error = ?, finished_at = ? WHERE id = ?",
            arguments: [state.rawValue, error, at, run.id])
        try db.execute(
            sql: "UPDATE snapshots SET state = 'abandoned' WHERE id = ? AND state = 'building'",
            arguments: [run.snapshotID])
        try db.execute(sql: "DELETE FROM snapshot_chunks WHERE snapshot_id = ?", arguments: [run.snapshotID])
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
                db,
                sql: """
                    SELECT chunk_index, keys, outputs FROM snapshot_chunks WHERE snapshot_id = ?
                    ORDER BY chunk_index, id
                    """,
                arguments: [snapshotID])
            while let row = try rows.next() {
                result.append(try Self.chunk(from: row))
            }
            return result
        }
    }

    public func chunks(snapshotID: Int64, after cursor: ChunkCursor?, limit: Int) async throws -> (
        chunks: [SnapshotChunk], next: ChunkCursor?
    ) {
        let (index, id) = cursor.map { ($0.index, $0.id) } ?? (Int(Int32.min), Int64.min)
        return try await writer.read { db in
            var result: [SnapshotChunk] = []
            var next: ChunkCursor?
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT id, chunk_index, keys, outputs FROM snapshot_chunks
                    WHERE snapshot_id = ? AND (chunk_index > ? OR (chunk_index = ? AND id > ?))
                    ORDER BY chunk_index, id LIMIT ?
                    """,
                arguments: [snapshotID, index, index, id, max(1, limit)])
            while let row = try rows.next() {
                result.append(try Self.chunk(from: row))
                next = ChunkCursor(index: row["chunk_index"], id: row["id"])
            }
            return (result, next)
        }
    }

    /// A `snapshot_chunks` row (`chunk_index`, `keys`, `outputs`) as a chunk.
    private static func chunk(from row: Row) throws -> SnapshotChunk {
        let keys = try ChunkCodec.decode(row["keys"]).map { String(decoding: $0, as: UTF8.self) }
        let blob: Data = row["outputs"]
        guard let outputs = PackedRows(packed: Array(blob)), keys.count == outputs.count else {
            throw ChunkCodec.CorruptChunk()
        }
        return SnapshotChunk(index: row["chunk_index"], keys: keys, packedOutputs: outputs)
    }

    // MARK: Sealed files

    public func snapshot(id: Int64) async throws -> SnapshotInfo? {
        try await writer.read { db in try Self.fetchSnapshot(db, id: id) }
    }

    public func replaceBaseRows(snapshotID: Int64, chunk: SnapshotChunk, first: Bool) async throws {
        try await writer.write { db in
            let state = try String.fetchOne(
                db, sql: "SELECT state FROM snapshots WHERE id = ?", arguments: [snapshotID])
            guard state == SnapshotInfo.State.building.rawValue else {
                throw BatchStoreError.snapshotState(id: snapshotID, state: state ?? "unknown")
            }
            if first {
                try db.execute(
                    sql: "DELETE FROM snapshot_chunks WHERE snapshot_id = ? AND chunk_index = -1",
                    arguments: [snapshotID])
            }
            try db.execute(
                sql: """
                    INSERT INTO snapshot_chunks (snapshot_id, chunk_index, row_count, keys, outputs)
                    VALUES (?, -1, ?, ?, ?)
                    """,
                arguments: [
                    snapshotID, chunk.keys.count, ChunkCodec.encode(chunk.keys.map { Array($0.utf8) }),
                    Data(chunk.packedOutputs.bytes),
                ])
        }
    }

    /// SQLite records a sealed file; the file is the one in the snapshot folder beside the database.
    public var holdsSnapshotFiles: Bool { false }

    public func putSnapshotFilePart(snapshotID: Int64, uploader: String, index: Int, bytes: [UInt8]) async throws {
        throw BatchStoreError.filesNotHeld
    }

    public func sealSnapshot(id: Int64, file: SnapshotInfo.SealedFile, uploader: String) async throws
        -> SnapshotInfo
    {
        try await writer.write { db in
            guard let info = try Self.fetchSnapshot(db, id: id) else {
                throw BatchStoreError.snapshotState(id: id, state: "unknown")
            }
            if info.file != nil { return info }
            guard info.state == .published || info.state == .retired else {
                throw BatchStoreError.snapshotState(id: id, state: info.state.rawValue)
            }
            try db.execute(
                sql: "UPDATE snapshots SET file_checksum = ?, file_size = ? WHERE id = ?",
                arguments: [Int64(bitPattern: file.checksum), file.size, id])
            try db.execute(sql: "DELETE FROM snapshot_chunks WHERE snapshot_id = ?", arguments: [id])
            guard let sealed = try Self.fetchSnapshot(db, id: id) else {
                throw BatchStoreError.snapshotState(id: id, state: "unknown")
            }
            return sealed
        }
    }

    public func snapshotFilePartCount(snapshotID: Int64) async throws -> Int { 0 }

    public func snapshotFilePart(snapshotID: Int64, index: Int) async throws -> [UInt8] {
        throw BatchStoreError.filesNotHeld
    }

    // MARK: Rows

    private static func runningRuns(_ db: Database, feature: String) throws -> [BatchRun] {
        try Row.fetchAll(db, sql: "SELECT * FROM runs WHERE feature = ? AND state = 'running'", arguments: [feature])
            .map(run(from:))
    }

    private static func fetchRun(_ db: Database, id: String) throws -> BatchRun? {
        try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ?", arguments: [id]).map(run(from:))
    }

    private static func fetchRanges(_ db: Database, runID: String) throws -> [RunRange] {
        try Row.fetchAll(db, sql: "SELECT * FROM run_ranges WHERE run_id = ? ORDER BY idx", arguments: [runID])
            .map(range(from:))
    }

    private static func fetchRange(_ db: Database, runID: String, index: Int) throws -> RunRange? {
        try Row.fetchOne(
            db, sql: "SELECT * FROM run_ranges WHERE run_id = ? AND idx = ?", arguments: [runID, index]
        ).map(range(from:))
    }

    private static func range(from row: Row) -> RunRange {
        RunRange(
            runID: row["run_id"], index: row["idx"], rowStart: row["row_start"], rowEnd: row["row_end"],
            state: RunRange.State(rawValue: row["state"]) ?? .pending, owner: row["owner"],
            leaseExpiresAt: row["lease_expires_at"], rowsDone: row["rows_done"], leases: row["leases"],
            finishedAt: row["finished_at"], providerBatch: row["provider_batch"])
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
        var run = BatchRun(
            id: row["id"], feature: row["feature"],
            trigger: BatchRun.Trigger(rawValue: row["trigger"]) ?? .manual,
            state: BatchRun.State(rawValue: row["state"]) ?? .failed, snapshotID: row["snapshot_id"],
            scheduledFor: row["scheduled_for"], startedAt: row["started_at"], finishedAt: row["finished_at"],
            heartbeatAt: row["heartbeat_at"], owner: row["owner"], rowsTotal: row["rows_total"],
            rowsDone: row["rows_done"], rowsWritten: row["rows_written"], rowsFailed: row["rows_failed"],
            busySeconds: row["busy_seconds"], resumes: row["resumes"], error: row["error"],
            modelPath: row["model_path"], keys: keys)
        run.inputTokens = row["input_tokens"]
        run.outputTokens = row["output_tokens"]
        return run
    }

    private static func snapshot(from row: Row) -> SnapshotInfo {
        SnapshotInfo(
            id: row["id"], feature: row["feature"], version: row["version"], runID: row["run_id"],
            modelVersion: row["model_version"], inputTime: row["input_time"], createdAt: row["created_at"],
            publishedAt: row["published_at"], keyCount: row["key_count"],
            state: SnapshotInfo.State(rawValue: row["state"]) ?? .abandoned,
            file: (row["file_checksum"] as Int64?).flatMap { checksum in
                (row["file_size"] as Int?).map {
                    SnapshotInfo.SealedFile(checksum: UInt64(bitPattern: checksum), size: $0)
                }
            },
            baseID: row["base_id"])
    }
}
