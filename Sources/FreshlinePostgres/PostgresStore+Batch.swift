public import FreshlineCore
internal import PostgresNIO

// Lock order, to keep concurrent workers free of deadlocks: a range row before its run row (leaseRange, renewRange,
// appendRangeChunk and completeRange all take them in this order), then the feature's publish lock.

extension PostgresStore: BatchStore {
    public func startRun(
        _ run: BatchRun, modelVersion: String, inputTime: Double, copyFrom: Int64?, liveAfter: Double,
        isGone: @escaping @Sendable (String) -> Bool
    ) async throws -> BatchRun {
        try await transaction { tx in
            // One starter per feature at a time: the next one sees this one's run once it commits.
            try await tx.lock("run", run.feature)
            // A split run is live whoever is gone (any worker resumes its ranges); one not yet split is live while
            // its starter is.
            for row in try await tx.rows(
                """
                SELECT *, EXISTS (SELECT 1 FROM run_ranges WHERE run_id = runs.id) AS split FROM runs
                WHERE feature = \(run.feature) AND state = 'running' ORDER BY seq
                """)
            {
                let running = try Self.run(from: row)
                let split = try row.makeRandomAccess()["split"].decode(Bool.self)
                if split || (running.heartbeatAt > liveAfter && !isGone(running.owner)) {
                    throw BatchStoreError.runInProgress(runID: running.id)
                }
            }
            if let slot = run.scheduledFor,
                let taken = try await tx.rows(
                    "SELECT id FROM runs WHERE feature = \(run.feature) AND scheduled_for = \(slot) LIMIT 1"
                ).first?.decode(String.self)
            {
                throw BatchStoreError.slotTaken(runID: taken)
            }
            var started = run
            started.snapshotID = try await tx.rows(
                """
                INSERT INTO snapshots (feature, version, run_id, model_version, input_time, created_at, state,
                    base_id)
                SELECT \(run.feature), COALESCE(MAX(version), 0) + 1, \(run.id), \(modelVersion), \(inputTime),
                    \(run.startedAt), 'building', \(copyFrom)
                FROM snapshots WHERE feature = \(run.feature)
                RETURNING id
                """
            ).one().decode(Int64.self)
            if let copyFrom {
                try await tx.rows(
                    """
                    INSERT INTO snapshot_chunks (snapshot_id, chunk_index, row_count, keys, outputs)
                    SELECT \(started.snapshotID), -1, row_count, keys, outputs FROM snapshot_chunks
                    WHERE snapshot_id = \(copyFrom) ORDER BY chunk_index, id
                    """)
            }
            try await tx.rows(
                """
                INSERT INTO runs (id, feature, trigger, state, snapshot_id, scheduled_for, started_at, finished_at,
                    heartbeat_at, owner, rows_total, rows_done, rows_written, rows_failed, busy_seconds, resumes, error,
                    model_path, keys)
                VALUES (\(started.id), \(started.feature), \(started.trigger.rawValue), \(started.state.rawValue),
                    \(started.snapshotID), \(started.scheduledFor), \(started.startedAt), \(started.finishedAt),
                    \(started.heartbeatAt), \(started.owner), \(started.rowsTotal), \(started.rowsDone),
                    \(started.rowsWritten), \(started.rowsFailed), \(started.busySeconds), \(started.resumes),
                    \(started.error), \(started.modelPath), \(started.keys))
                """)
            return started
        }
    }

    public func interruptedRun(feature: String, liveAfter: Double, isGone: @escaping @Sendable (String) -> Bool)
        async throws
        -> BatchRun?
    {
        try await rows(
            """
            SELECT * FROM runs WHERE feature = \(feature) AND state = 'running'
            AND NOT EXISTS (SELECT 1 FROM run_ranges WHERE run_id = runs.id)
            ORDER BY seq
            """
        ).map(Self.run(from:)).first { $0.heartbeatAt <= liveAfter || isGone($0.owner) }
    }

    public func claimRun(id: String, previousOwner: String, owner: String, at: Double) async throws -> BatchRun? {
        try await rows(
            """
            UPDATE runs SET owner = \(owner), heartbeat_at = \(at), resumes = resumes + 1
            WHERE id = \(id) AND owner = \(previousOwner) AND state = 'running'
            RETURNING *
            """
        ).first.map(Self.run(from:))
    }

    public func heartbeat(runID: String, at: Double) async throws {
        try await rows("UPDATE runs SET heartbeat_at = \(at) WHERE id = \(runID)")
    }

    public func splitRun(runID: String, rowsTotal: Int, rangeRows: Int, at: Double) async throws -> [RunRange] {
        try await transaction { tx in
            // Locking the run serialises two processes splitting it at once: the second returns the first's ranges.
            guard let run = try await Self.fetchRun(tx, id: runID, forUpdate: true) else {
                throw BatchStoreError.unknownRun(runID)
            }
            guard run.state == .running else { throw BatchStoreError.runNotRunning(runID) }
            let existing = try await Self.fetchRanges(tx, runID: runID)
            if !existing.isEmpty { return existing }
            let ranges = RunRange.split(runID: runID, rowsTotal: rowsTotal, rangeRows: rangeRows)
            try await tx.rows(
                """
                INSERT INTO run_ranges (run_id, idx, row_start, row_end, state)
                SELECT \(runID), idx, row_start, row_end, 'pending'
                FROM UNNEST(\(ranges.map(\.index)), \(ranges.map(\.rowStart)), \(ranges.map(\.rowEnd)))
                    AS r (idx, row_start, row_end)
                """)
            try await tx.rows("UPDATE runs SET rows_total = \(rowsTotal), heartbeat_at = \(at) WHERE id = \(runID)")
            try await tx.notify(.rangesAvailable(feature: run.feature))
            return ranges
        }
    }

    public func leaseRange(
        features: [String], owner: String, now: Double, leaseSeconds: Double,
        isGone: @escaping @Sendable (String) -> Bool
    ) async throws -> RangeLease? {
        guard !features.isEmpty else { return nil }
        return try await transaction { tx in
            // Open ranges of running runs, oldest run first, pending before leased; a leased one only when its lease
            // ran out or its owner is gone (checked in Swift).
            let open = try await tx.rows(
                """
                SELECT r.* FROM run_ranges r JOIN runs ON runs.id = r.run_id
                WHERE runs.state = 'running' AND runs.feature = ANY(\(features))
                AND r.state IN ('pending', 'leased')
                ORDER BY runs.started_at, runs.id COLLATE "C", r.state = 'leased', r.idx
                """
            ).map(Self.range(from:))
            for candidate in open where RangeLeaseRules.isAvailable(candidate, now: now, isGone: isGone) {
                // Lock this one range only (not every candidate, which would hide them all from other workers until
                // this transaction ends); a range another worker is leasing right now is skipped. The locked row is
                // the latest committed version, so check it again.
                guard
                    let range = try await tx.rows(
                        """
                        SELECT r.* FROM run_ranges r JOIN runs ON runs.id = r.run_id
                        WHERE r.run_id = \(candidate.runID) AND r.idx = \(candidate.index)
                        AND runs.state = 'running' AND r.state IN ('pending', 'leased')
                        FOR UPDATE OF r SKIP LOCKED
                        """
                    ).first.map(Self.range(from:)),
                    let (next, takenOver) = RangeLeaseRules.lease(
                        range, owner: owner, now: now, leaseSeconds: leaseSeconds, isGone: isGone)
                else { continue }
                // The run row is not locked by the candidate query: it may have ended since (then try the next).
                guard
                    let run = try await tx.rows(
                        """
                        UPDATE runs SET heartbeat_at = \(now), resumes = resumes + \(takenOver ? 1 : 0)
                        WHERE id = \(range.runID) AND state = 'running'
                        RETURNING *
                        """
                    ).first
                else { continue }
                let leased = try await tx.rows(
                    """
                    UPDATE run_ranges SET state = \(next.state.rawValue), owner = \(next.owner),
                        lease_expires_at = \(next.leaseExpiresAt), leases = \(next.leases)
                    WHERE run_id = \(next.runID) AND idx = \(next.index)
                    RETURNING *
                    """
                ).one()
                return RangeLease(run: try Self.run(from: run), range: try Self.range(from: leased))
            }
            return nil
        }
    }

    public func renewRange(runID: String, index: Int, owner: String, now: Double, leaseSeconds: Double) async throws
        -> Bool
    {
        try await transaction { tx in
            let renewed = try await tx.rows(
                """
                UPDATE run_ranges SET lease_expires_at = \(now + leaseSeconds)
                WHERE run_id = \(runID) AND idx = \(index) AND owner = \(owner) AND state = 'leased'
                AND EXISTS (SELECT 1 FROM runs WHERE id = \(runID) AND state = 'running')
                RETURNING idx
                """)
            guard !renewed.isEmpty else { return false }
            try await tx.rows("UPDATE runs SET heartbeat_at = \(now) WHERE id = \(runID)")
            return true
        }
    }

    public func recordProviderBatch(runID: String, index: Int, owner: String, batchID: String) async throws {
        try await transaction { tx in
            let recorded = try await tx.rows(
                """
                UPDATE run_ranges SET provider_batch = \(batchID)
                WHERE run_id = \(runID) AND idx = \(index) AND owner = \(owner) AND state = 'leased'
                AND EXISTS (SELECT 1 FROM runs WHERE id = \(runID) AND state = 'running')
                RETURNING idx
                """)
            guard !recorded.isEmpty else { throw BatchStoreError.rangeLost(runID: runID, index: index) }
        }
    }

    public func releaseRange(runID: String, index: Int, owner: String) async throws -> Bool {
        try await transaction { tx in
            let released = try await tx.rows(
                """
                UPDATE run_ranges SET state = 'pending', lease_expires_at = NULL
                WHERE run_id = \(runID) AND idx = \(index) AND owner = \(owner) AND state = 'leased'
                RETURNING (SELECT feature FROM runs WHERE id = \(runID))
                """)
            guard let feature = try released.first?.decode(String.self) else { return false }
            try await tx.notify(.rangesAvailable(feature: feature))
            return true
        }
    }

    public func appendRangeChunk(
        runID: String, index: Int, owner: String, chunk: SnapshotChunk, failures: [RowFailure],
        progress: RangeProgress
    ) async throws {
        let keys = ChunkCodec.encode(chunk.keys.lazy.map(\.utf8))
        let outputs = ByteBuffer(bytes: chunk.packedOutputs.bytes)  // already the codec's form
        // INSERT OR REPLACE semantics: the last failure recorded for an ordinal wins.
        var byOrdinal: [Int: RowFailure] = [:]
        for failure in failures { byOrdinal[failure.ordinal] = failure }
        let rowFailures = byOrdinal.values.sorted { $0.ordinal < $1.ordinal }
        try await transaction { tx in
            // The range's lock fences the write: a worker re-leasing it waits (skips it) until this commits.
            let holder = try await Self.lockRange(tx, runID: runID, index: index)
            guard let run = try await Self.fetchRun(tx, id: runID, forUpdate: false) else {
                throw BatchStoreError.unknownRun(runID)
            }
            guard run.state == .running else { throw BatchStoreError.runNotRunning(runID) }
            guard RangeLeaseRules.holds(holder, owner: owner) else {
                throw BatchStoreError.rangeLost(runID: runID, index: index)
            }
            if !chunk.keys.isEmpty {
                try await tx.rows(
                    """
                    INSERT INTO snapshot_chunks (snapshot_id, chunk_index, row_count, keys, outputs)
                    VALUES (\(run.snapshotID), \(chunk.index), \(chunk.keys.count), \(keys), \(outputs))
                    """)
            }
            if !rowFailures.isEmpty {
                try await tx.rows(
                    """
                    INSERT INTO run_failures (run_id, ordinal, location, key, reason)
                    SELECT \(runID), * FROM UNNEST(\(rowFailures.map(\.ordinal)), \(rowFailures.map(\.location)),
                        \(NullableArray(rowFailures.map(\.key))), \(rowFailures.map(\.reason)))
                    ON CONFLICT (run_id, ordinal) DO UPDATE
                    SET location = EXCLUDED.location, key = EXCLUDED.key, reason = EXCLUDED.reason
                    """)
            }
            try await tx.rows(
                "UPDATE run_ranges SET rows_done = \(progress.rangeRowsDone) WHERE run_id = \(runID) AND idx = \(index)"
            )
            // The run was read without a lock: if it ended since (endRun), this finds it ended and the whole write
            // rolls back, so no chunk outlives its abandoned snapshot's cleanup.
            let updated = try await tx.rows(
                """
                UPDATE runs SET rows_done = rows_done + \(progress.rowsRead),
                    rows_written = rows_written + \(progress.rowsWritten),
                    rows_failed = rows_failed + \(progress.rowsFailed),
                    busy_seconds = busy_seconds + \(progress.busySeconds), heartbeat_at = \(progress.at),
                    input_tokens = input_tokens + \(progress.inputTokens),
                    output_tokens = output_tokens + \(progress.outputTokens)
                WHERE id = \(runID) AND state = 'running'
                RETURNING id
                """)
            guard !updated.isEmpty else { throw BatchStoreError.runNotRunning(runID) }
        }
    }

    public func completeRange(
        runID: String, index: Int, owner: String, at: Double, retention: Int, policy: PublishPolicy
    ) async throws -> RangeCompletion {
        // Bulk: the last range's completion publishes, counting the keys of every chunk of the snapshot.
        let completion = try await transaction(bulk: true) { tx -> RangeCompletion in
            let holder = try await Self.lockRange(tx, runID: runID, index: index)
            // Locking the run serialises the completions of its last ranges: each counts the open ranges after the
            // previous one committed, so exactly one finds none left and publishes.
            guard let run = try await Self.fetchRun(tx, id: runID, forUpdate: true) else {
                throw BatchStoreError.unknownRun(runID)
            }
            guard run.state == .running else { throw BatchStoreError.runNotRunning(runID) }
            guard RangeLeaseRules.holds(holder, owner: owner) else {
                throw BatchStoreError.rangeLost(runID: runID, index: index)
            }
            try await tx.rows(
                """
                UPDATE run_ranges SET state = 'done', finished_at = \(at), lease_expires_at = NULL
                WHERE run_id = \(runID) AND idx = \(index)
                """)
            let open = try await tx.rows(
                "SELECT COUNT(*) FROM run_ranges WHERE run_id = \(runID) AND state <> 'done'"
            ).one().decode(Int.self)
            if open > 0 { return .remaining(open) }
            return try await Self.publish(tx, run: run, at: at, policy: policy)
        }
        if case .published(let info) = completion {
            // Bulk: dropping a snapshot deletes its chunks.
            try await transaction(bulk: true) { tx in
                try await Self.applyRetention(tx, feature: info.feature, retention: retention)
            }
        }
        return completion
    }

    public func ranges(runID: String) async throws -> [RunRange] {
        try await rows("SELECT * FROM run_ranges WHERE run_id = \(runID) ORDER BY idx").map(Self.range(from:))
    }

    public func endRun(id: String, state: BatchRun.State, error: String, at: Double) async throws {
        try await transaction { tx in
            guard let run = try await Self.fetchRun(tx, id: id, forUpdate: true) else {
                throw BatchStoreError.unknownRun(id)
            }
            try await Self.end(tx, run: run, state: state, error: error, at: at)
        }
    }

    /// Ends `run` without publishing: its state and error recorded, its snapshot abandoned and its rows deleted.
    private static func end(_ tx: Transaction, run: BatchRun, state: BatchRun.State, error: String, at: Double)
        async throws
    {
        try await tx.rows(
            "UPDATE runs SET state = \(state.rawValue), error = \(error), finished_at = \(at) WHERE id = \(run.id)")
        try await tx.rows(
            "UPDATE snapshots SET state = 'abandoned' WHERE id = \(run.snapshotID) AND state = 'building'")
        try await tx.rows("DELETE FROM snapshot_chunks WHERE snapshot_id = \(run.snapshotID)")
    }

    public func run(id: String) async throws -> BatchRun? {
        try await rows("SELECT * FROM runs WHERE id = \(id)").first.map(Self.run(from:))
    }

    public func runs(feature: String, limit: Int) async throws -> [BatchRun] {
        try await rows(
            "SELECT * FROM runs WHERE feature = \(feature) ORDER BY started_at DESC, seq DESC LIMIT \(limit)"
        ).map(Self.run(from:))
    }

    public func failures(runID: String, limit: Int) async throws -> [RowFailure] {
        try await rows(
            """
            SELECT ordinal, location, key, reason FROM run_failures WHERE run_id = \(runID)
            ORDER BY ordinal LIMIT \(limit)
            """
        ).map { row in
            let (ordinal, location, key, reason) = try row.decode((Int, String, String?, String).self)
            return RowFailure(ordinal: ordinal, location: location, key: key, reason: reason)
        }
    }

    public func publishedSnapshot(feature: String) async throws -> SnapshotInfo? {
        try await rows("SELECT * FROM snapshots WHERE feature = \(feature) AND state = 'published'")
            .first.map(Self.snapshot(from:))
    }

    public func snapshots(feature: String, limit: Int) async throws -> [SnapshotInfo] {
        try await rows("SELECT * FROM snapshots WHERE feature = \(feature) ORDER BY version DESC LIMIT \(limit)")
            .map(Self.snapshot(from:))
    }

    public func chunks(snapshotID: Int64) async throws -> [SnapshotChunk] {
        // Bulk: the whole snapshot.
        try await transaction(bulk: true) { tx in
            var result: [SnapshotChunk] = []
            let rows = try await tx.stream(
                """
                SELECT chunk_index, keys, outputs FROM snapshot_chunks WHERE snapshot_id = \(snapshotID)
                ORDER BY chunk_index, id
                """)
            for try await (index, keyBytes, outputBytes) in rows.decode((Int, ByteBuffer, ByteBuffer).self) {
                let keys = try ChunkCodec.decode(keyBytes).map { String(decoding: $0, as: UTF8.self) }
                guard let outputs = PackedRows(packed: Array(buffer: outputBytes)), keys.count == outputs.count else {
                    throw PostgresStoreError.corruptChunk
                }
                result.append(SnapshotChunk(index: index, keys: keys, packedOutputs: outputs))
            }
            return result
        }
    }

    public func chunks(snapshotID: Int64, after cursor: ChunkCursor?, limit: Int) async throws -> (
        chunks: [SnapshotChunk], next: ChunkCursor?
    ) {
        let (index, id) = cursor.map { ($0.index, $0.id) } ?? (Int(Int32.min), Int64.min)
        return try await transaction(bulk: true) { tx in
            var result: [SnapshotChunk] = []
            var next: ChunkCursor?
            let rows = try await tx.stream(
                """
                SELECT id, chunk_index, keys, outputs FROM snapshot_chunks
                WHERE snapshot_id = \(snapshotID) AND (chunk_index, id) > (\(index), \(id))
                ORDER BY chunk_index, id LIMIT \(max(1, limit))
                """)
            for try await (rowID, chunkIndex, keyBytes, outputBytes) in rows.decode(
                (Int64, Int, ByteBuffer, ByteBuffer).self)
            {
                let keys = try ChunkCodec.decode(keyBytes).map { String(decoding: $0, as: UTF8.self) }
                guard let outputs = PackedRows(packed: Array(buffer: outputBytes)), keys.count == outputs.count else {
                    throw PostgresStoreError.corruptChunk
                }
                result.append(SnapshotChunk(index: chunkIndex, keys: keys, packedOutputs: outputs))
                next = ChunkCursor(index: chunkIndex, id: rowID)
            }
            return (result, next)
        }
    }

    // MARK: Sealed files

    public func snapshot(id: Int64) async throws -> SnapshotInfo? {
        try await rows("SELECT * FROM snapshots WHERE id = \(id)").first.map(Self.snapshot(from:))
    }

    public func replaceBaseRows(snapshotID: Int64, chunk: SnapshotChunk, first: Bool) async throws {
        let keys = ChunkCodec.encode(chunk.keys.lazy.map(\.utf8))
        let outputs = ByteBuffer(bytes: chunk.packedOutputs.bytes)
        try await transaction { tx in
            let state = try await tx.rows("SELECT state FROM snapshots WHERE id = \(snapshotID) FOR UPDATE")
                .first?.decode(String.self)
            guard state == SnapshotInfo.State.building.rawValue else {
                throw BatchStoreError.snapshotState(id: snapshotID, state: state ?? "unknown")
            }
            if first {
                try await tx.rows("DELETE FROM snapshot_chunks WHERE snapshot_id = \(snapshotID) AND chunk_index = -1")
            }
            try await tx.rows(
                """
                INSERT INTO snapshot_chunks (snapshot_id, chunk_index, row_count, keys, outputs)
                VALUES (\(snapshotID), -1, \(chunk.keys.count), \(keys), \(outputs))
                """)
        }
    }

    /// PostgreSQL keeps each sealed file, in parts: a server on any host materialises it from here.
    public var holdsSnapshotFiles: Bool { true }

    public func putSnapshotFilePart(snapshotID: Int64, uploader: String, index: Int, bytes: [UInt8]) async throws {
        let buffer = ByteBuffer(bytes: bytes)
        try await transaction(bulk: true) { tx in
            _ = try await tx.rows(
                """
                INSERT INTO snapshot_file_parts (snapshot_id, uploader, idx, bytes)
                VALUES (\(snapshotID), \(uploader), \(index), \(buffer))
                ON CONFLICT (snapshot_id, uploader, idx) DO UPDATE SET bytes = EXCLUDED.bytes
                """)
        }
    }

    public func sealSnapshot(id: Int64, file: SnapshotInfo.SealedFile, uploader: String) async throws
        -> SnapshotInfo
    {
        try await transaction(bulk: true) { tx in
            guard let row = try await tx.rows("SELECT * FROM snapshots WHERE id = \(id) FOR UPDATE").first else {
                throw BatchStoreError.snapshotState(id: id, state: "unknown")
            }
            let info = try Self.snapshot(from: row)
            if info.file != nil {
                try await tx.rows(
                    """
                    DELETE FROM snapshot_file_parts WHERE snapshot_id = \(id) AND uploader = \(uploader)
                        AND uploader IS DISTINCT FROM (SELECT file_uploader FROM snapshots WHERE id = \(id))
                    """)
                return info
            }
            guard info.state == .published || info.state == .retired else {
                throw BatchStoreError.snapshotState(id: id, state: info.state.rawValue)
            }
            let parts = try await tx.rows(
                """
                SELECT COALESCE(SUM(length(bytes)), 0)::bigint FROM snapshot_file_parts
                WHERE snapshot_id = \(id) AND uploader = \(uploader)
                """
            ).one().decode(Int.self)
            guard parts == file.size else {
                throw PostgresStoreError.database(
                    operation: "sealSnapshot",
                    message: "the uploaded parts hold \(parts) bytes, the file \(file.size)")
            }
            try await tx.rows(
                """
                UPDATE snapshots SET file_checksum = \(Int64(bitPattern: file.checksum)), file_size = \(file.size),
                    file_uploader = \(uploader)
                WHERE id = \(id)
                """)
            try await tx.rows("DELETE FROM snapshot_chunks WHERE snapshot_id = \(id)")
            try await tx.rows("DELETE FROM snapshot_file_parts WHERE snapshot_id = \(id) AND uploader <> \(uploader)")
            guard let sealed = try await tx.rows("SELECT * FROM snapshots WHERE id = \(id)").first else {
                throw BatchStoreError.snapshotState(id: id, state: "unknown")
            }
            return try Self.snapshot(from: sealed)
        }
    }

    public func snapshotFilePartCount(snapshotID: Int64) async throws -> Int {
        try await rows(
            """
            SELECT COUNT(*)::bigint FROM snapshot_file_parts p JOIN snapshots s ON s.id = p.snapshot_id
            WHERE p.snapshot_id = \(snapshotID) AND p.uploader = s.file_uploader
            """
        ).one().decode(Int.self)
    }

    public func snapshotFilePart(snapshotID: Int64, index: Int) async throws -> [UInt8] {
        let found = try await transaction(bulk: true) { tx in
            try await tx.rows(
                """
                SELECT p.bytes FROM snapshot_file_parts p JOIN snapshots s ON s.id = p.snapshot_id
                WHERE p.snapshot_id = \(snapshotID) AND p.uploader = s.file_uploader AND p.idx = \(index)
                """
            ).first?.decode(ByteBuffer.self)
        }
        guard let found else { throw BatchStoreError.missingFilePart(snapshotID: snapshotID, index: index) }
        return Array(buffer: found)
    }

    // MARK: Publishing

    /// Publishes `run`'s snapshot (the previous one retires), marks the run succeeded and tells listeners; or, when
    /// `policy` refuses the run, ends it failed and leaves the published snapshot as it was.
    private static func publish(_ tx: Transaction, run: BatchRun, at: Double, policy: PublishPolicy) async throws
        -> RangeCompletion
    {
        // Two runs of one feature publishing at once (one taken for dead but still alive) take turns, so the second
        // retires the first's snapshot instead of colliding with it on the one-published index.
        try await tx.lock("publish", run.feature)
        // Count distinct keys over every chunk (later chunks may repeat keys).
        var keys = DistinctKeyCounter(expected: run.rowsWritten)
        for try await blob in try await tx.stream(
            "SELECT keys FROM snapshot_chunks WHERE snapshot_id = \(run.snapshotID)"
        ).decode(ByteBuffer.self) {
            guard blob.withUnsafeReadableBytes({ keys.add(encodedKeys: $0) }) else {
                throw PostgresStoreError.corruptChunk
            }
        }
        let previous = try await tx.rows(
            "SELECT * FROM snapshots WHERE feature = \(run.feature) AND state = 'published'"
        ).first.map(snapshot(from:))
        let firstFailure = try await tx.rows(
            """
            SELECT ordinal, location, key, reason FROM run_failures WHERE run_id = \(run.id)
            ORDER BY ordinal LIMIT 1
            """
        ).first.map { row in
            let (ordinal, location, key, reason) = try row.decode((Int, String, String?, String).self)
            return RowFailure(ordinal: ordinal, location: location, key: key, reason: reason)
        }
        if let reason = policy.refusal(
            run: run, keyCount: keys.distinctCount(), previous: previous, firstFailure: firstFailure)
        {
            try await end(tx, run: run, state: .failed, error: reason, at: at)
            return .refused(reason)
        }
        try await tx.rows(
            "UPDATE snapshots SET state = 'retired' WHERE feature = \(run.feature) AND state = 'published'")
        guard
            let published = try await tx.rows(
                """
                UPDATE snapshots SET state = 'published', published_at = \(at), key_count = \(keys.distinctCount())
                WHERE id = \(run.snapshotID) AND state = 'building'
                RETURNING *
                """
            ).first
        else { throw BatchStoreError.runNotRunning(run.id) }
        try await tx.rows(
            "UPDATE runs SET state = 'succeeded', finished_at = \(at), heartbeat_at = \(at) WHERE id = \(run.id)")
        try await tx.notify(.snapshotPublished(feature: run.feature))
        return .published(try snapshot(from: published))
    }

    /// Keeps the newest `retention` published or retired snapshots of `feature`; drops the rest (their chunks go
    /// with them: the foreign key cascades).
    private static func applyRetention(_ tx: Transaction, feature: String, retention: Int) async throws {
        try await tx.rows(
            """
            DELETE FROM snapshots WHERE id IN (
                SELECT id FROM snapshots WHERE feature = \(feature) AND state IN ('published', 'retired')
                ORDER BY version DESC OFFSET \(max(1, retention))
            )
            """)
    }

    // MARK: Rows

    private static func fetchRun(_ tx: Transaction, id: String, forUpdate: Bool) async throws -> BatchRun? {
        if forUpdate {
            return try await tx.rows("SELECT * FROM runs WHERE id = \(id) FOR UPDATE").first.map(run(from:))
        }
        return try await tx.rows("SELECT * FROM runs WHERE id = \(id)").first.map(run(from:))
    }

    /// Locks a range row (the fence of appends and completions); `nil` when the run has no such range.
    private static func lockRange(_ tx: Transaction, runID: String, index: Int) async throws -> RunRange? {
        try await tx.rows("SELECT * FROM run_ranges WHERE run_id = \(runID) AND idx = \(index) FOR UPDATE")
            .first.map(range(from:))
    }

    private static func fetchRanges(_ tx: Transaction, runID: String) async throws -> [RunRange] {
        try await tx.rows("SELECT * FROM run_ranges WHERE run_id = \(runID) ORDER BY idx").map(range(from:))
    }

    private static func range(from row: PostgresRow) throws -> RunRange {
        let column = row.makeRandomAccess()
        return RunRange(
            runID: try column["run_id"].decode(String.self), index: try column["idx"].decode(Int.self),
            rowStart: try column["row_start"].decode(Int.self), rowEnd: try column["row_end"].decode(Int.self),
            state: RunRange.State(rawValue: try column["state"].decode(String.self)) ?? .pending,
            owner: try column["owner"].decode(String?.self),
            leaseExpiresAt: try column["lease_expires_at"].decode(Double?.self),
            rowsDone: try column["rows_done"].decode(Int.self), leases: try column["leases"].decode(Int.self),
            finishedAt: try column["finished_at"].decode(Double?.self),
            providerBatch: try column["provider_batch"].decode(String?.self))
    }

    private static func run(from row: PostgresRow) throws -> BatchRun {
        let column = row.makeRandomAccess()
        var run = BatchRun(
            id: try column["id"].decode(String.self), feature: try column["feature"].decode(String.self),
            trigger: BatchRun.Trigger(rawValue: try column["trigger"].decode(String.self)) ?? .manual,
            state: BatchRun.State(rawValue: try column["state"].decode(String.self)) ?? .failed,
            snapshotID: try column["snapshot_id"].decode(Int64.self),
            scheduledFor: try column["scheduled_for"].decode(Double?.self),
            startedAt: try column["started_at"].decode(Double.self),
            finishedAt: try column["finished_at"].decode(Double?.self),
            heartbeatAt: try column["heartbeat_at"].decode(Double.self), owner: try column["owner"].decode(String.self),
            rowsTotal: try column["rows_total"].decode(Int?.self), rowsDone: try column["rows_done"].decode(Int.self),
            rowsWritten: try column["rows_written"].decode(Int.self),
            rowsFailed: try column["rows_failed"].decode(Int.self),
            busySeconds: try column["busy_seconds"].decode(Double.self),
            resumes: try column["resumes"].decode(Int.self),
            error: try column["error"].decode(String?.self), modelPath: try column["model_path"].decode(String?.self),
            keys: try column["keys"].decode([String]?.self))
        run.inputTokens = try column["input_tokens"].decode(Int.self)
        run.outputTokens = try column["output_tokens"].decode(Int.self)
        return run
    }

    private static func snapshot(from row: PostgresRow) throws -> SnapshotInfo {
        let column = row.makeRandomAccess()
        return SnapshotInfo(
            id: try column["id"].decode(Int64.self), feature: try column["feature"].decode(String.self),
            version: try column["version"].decode(Int.self), runID: try column["run_id"].decode(String.self),
            modelVersion: try column["model_version"].decode(String.self),
            inputTime: try column["input_time"].decode(Double.self),
            createdAt: try column["created_at"].decode(Double.self),
            publishedAt: try column["published_at"].decode(Double?.self),
            keyCount: try column["key_count"].decode(Int.self),
            state: SnapshotInfo.State(rawValue: try column["state"].decode(String.self)) ?? .abandoned,
            file: try column["file_checksum"].decode(Int64?.self).flatMap { checksum in
                try column["file_size"].decode(Int?.self).map {
                    SnapshotInfo.SealedFile(checksum: UInt64(bitPattern: checksum), size: $0)
                }
            },
            baseID: try column["base_id"].decode(Int64?.self))
    }
}

extension Array where Element == PostgresRow {
    /// The one row a statement returns (`INSERT … RETURNING`, `COUNT(*)`).
    func one(_ function: String = #function) throws -> PostgresRow {
        guard let row = first else {
            throw PostgresStoreError.database(operation: function, message: "a statement returned no row")
        }
        return row
    }
}
