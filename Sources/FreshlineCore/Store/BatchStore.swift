/// One batch run's output for a feature: versioned, published atomically, served by key lookup.
public struct SnapshotInfo: Sendable, Equatable {
    /// The lifecycle of a snapshot.
    public enum State: String, Sendable, CaseIterable {
        /// Its run is still writing chunks; never served.
        case building
        /// The feature's current snapshot (at most one per feature).
        case published
        /// Replaced by a newer one; kept until retention deletes it.
        case retired
        /// Its run failed or was canceled; never served.
        case abandoned
    }
    /// The store's id.
    public var id: Int64
    /// The feature it belongs to.
    public var feature: String
    /// 1, 2, 3… per feature, in creation order.
    public var version: Int
    /// The run that wrote it.
    public var runID: String
    /// The model version (content hash prefix) that computed it.
    public var modelVersion: String
    /// When the run read its inputs (seconds since 1970): the `computed_at` of every answer it gives.
    public var inputTime: Double
    /// When it was created and, once published, when it was published.
    public var createdAt: Double
    public var publishedAt: Double?
    /// Keys it holds (counted at publish).
    public var keyCount: Int
    public var state: State
    /// The sealed file, once a process has written the snapshot as one file and the store recorded it (its chunks
    /// are then dropped: the file is the snapshot). `nil` while the snapshot is only chunks.
    public var file: SealedFile?
    /// The snapshot a backfill started from (its rows copied in as the snapshot's first rows).
    public var baseID: Int64?

    /// A sealed snapshot file as the store records it.
    public struct SealedFile: Sendable, Equatable {
        /// The file's data checksum (the format's 64-bit FNV-1a over every byte after the metadata).
        public var checksum: UInt64
        /// The file's size in bytes.
        public var size: Int
        public init(checksum: UInt64, size: Int) {
            self.checksum = checksum
            self.size = size
        }
    }

    /// Makes a snapshot record.
    public init(
        id: Int64, feature: String, version: Int, runID: String, modelVersion: String, inputTime: Double,
        createdAt: Double, publishedAt: Double?, keyCount: Int, state: State, file: SealedFile? = nil,
        baseID: Int64? = nil
    ) {
        self.file = file
        self.baseID = baseID
        self.id = id
        self.feature = feature
        self.version = version
        self.runID = runID
        self.modelVersion = modelVersion
        self.inputTime = inputTime
        self.createdAt = createdAt
        self.publishedAt = publishedAt
        self.keyCount = keyCount
        self.state = state
    }
}

/// One chunk of a snapshot as the runner writes it: keys with their outputs as JSON object bytes.
public struct SnapshotChunk: Sendable, Equatable {
    /// The source position of the chunk's first row; chunks are applied in this order, so for a key the source
    /// holds twice the later row wins, whichever worker wrote which chunk first. (A backfill's copy of the previous
    /// snapshot is chunk -1.)
    public var index: Int
    /// Entity keys, one per row.
    public var keys: [String]
    /// Each row's outputs, packed as the stores keep them (what the runner writes, with no array per row).
    public var packedOutputs: PackedRows

    /// Each row's outputs, a serialized JSON object (`{"label":1,"probabilities":[…]}`); unpacked on each read.
    public var outputs: [[UInt8]] {
        get { packedOutputs.rows }
        set { packedOutputs = PackedRows(newValue) }
    }

    /// Makes a chunk; `keys` and `outputs` have the same length.
    public init(index: Int, keys: [String], outputs: [[UInt8]]) {
        self.init(index: index, keys: keys, packedOutputs: PackedRows(outputs))
    }

    /// Makes a chunk from packed outputs, one row per key.
    public init(index: Int, keys: [String], packedOutputs: PackedRows) {
        precondition(keys.count == packedOutputs.count, "one output per key")
        self.index = index
        self.keys = keys
        self.packedOutputs = packedOutputs
    }
}

/// Where a page of a snapshot's chunks ends: a chunk's index and its row id in the store.
public struct ChunkCursor: Sendable, Equatable {
    public var index: Int
    public var id: Int64
    public init(index: Int, id: Int64) {
        self.index = index
        self.id = id
    }
}

/// Rows of bytes in one buffer, as the stores keep a snapshot chunk's outputs: each row is its length as four
/// little-endian bytes, then its bytes.
public struct PackedRows: Sendable, Equatable {
    /// The packed form.
    public private(set) var bytes: [UInt8]
    /// How many rows.
    public private(set) var count: Int

    public init() {
        bytes = []
        count = 0
    }

    public init(_ rows: some Sequence<some Collection<UInt8>>) {
        self.init()
        for row in rows { append(row) }
    }

    /// Bytes already in the packed form (a chunk's outputs as the engine writes them); `nil` when their lengths do
    /// not add up.
    public init?(packed bytes: [UInt8]) {
        var count = 0
        var offset = 0
        while offset < bytes.count {
            guard offset + 4 <= bytes.count else { return nil }
            offset += 4 + Self.length(bytes, at: offset)
            guard offset <= bytes.count else { return nil }
            count += 1
        }
        self.bytes = bytes
        self.count = count
    }

    public mutating func append(_ row: some Collection<UInt8>) {
        let length = UInt32(row.count)
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: length >> (8 * UInt32(i)))) }
        bytes.append(contentsOf: row)
        count += 1
    }

    public mutating func append(contentsOf other: PackedRows) {
        bytes.append(contentsOf: other.bytes)
        count += other.count
    }

    /// The rows, each as its own array.
    public var rows: [[UInt8]] {
        var rows: [[UInt8]] = []
        rows.reserveCapacity(count)
        var offset = 0
        while offset < bytes.count {
            let length = Self.length(bytes, at: offset)
            rows.append(Array(bytes[(offset + 4)..<(offset + 4 + length)]))
            offset += 4 + length
        }
        return rows
    }

    private static func length(_ bytes: [UInt8], at offset: Int) -> Int {
        (0..<4).reduce(0) { $0 | Int(bytes[offset + $1]) << (8 * $1) }
    }
}

/// A batch run: what started it, how far it got (its checkpoint) and how it ended.
public struct BatchRun: Sendable, Equatable {
    /// The lifecycle of a run.
    public enum State: String, Sendable, CaseIterable {
        /// Writing chunks (or interrupted: its owner stopped heart-beating and the next run resumes it).
        case running
        /// Published its snapshot.
        case succeeded
        /// Stopped on an error that is not about one row (the source cannot be read, the store failed).
        case failed
        /// Canceled by an operator or by shutdown before it could finish.
        case canceled
    }
    /// What started a run.
    public enum Trigger: String, Sendable, CaseIterable {
        case schedule, manual, backfill
        /// At start-up, for slots missed while no server ran.
        case catchUp = "catch_up"
    }
    /// The run's id (`run_` + random hex).
    public var id: String
    public var feature: String
    public var trigger: Trigger
    public var state: State
    /// The snapshot it writes.
    public var snapshotID: Int64
    /// The schedule slot it is for (seconds since 1970), if the scheduler started it.
    public var scheduledFor: Double?
    public var startedAt: Double
    public var finishedAt: Double?
    /// The last sign of life from the process running it; a run whose owner is gone is resumed.
    public var heartbeatAt: Double
    /// `host:pid` of the process running it.
    public var owner: String
    /// Source rows in all, when known (for progress and ETA).
    public var rowsTotal: Int?
    /// Source rows read, computed and written, summed over its ranges (each range keeps its own checkpoint).
    public var rowsDone: Int
    /// Rows written to the snapshot.
    public var rowsWritten: Int
    /// Rows that failed (bad data): recorded with reasons, not in the snapshot.
    public var rowsFailed: Int
    /// Seconds spent computing and writing, summed over every attempt (for throughput).
    public var busySeconds: Double
    /// How many times it was taken over after an interruption: a range re-leased from a worker that stopped, or the
    /// run claimed before it was split.
    public var resumes: Int
    /// Why it failed, for failed and canceled runs.
    public var error: String?
    /// The model file it runs when not the feature's own (backfill with another model version).
    public var modelPath: String?
    /// A backfill's key subset (`nil`: every source row).
    public var keys: [String]?
    /// Tokens the run's rows used, summed over its chunks (upstream LLM models; 0 for others): what the run cost.
    public var inputTokens = 0
    public var outputTokens = 0

    /// Makes a run record.
    public init(
        id: String, feature: String, trigger: Trigger, state: State = .running, snapshotID: Int64,
        scheduledFor: Double? = nil, startedAt: Double, finishedAt: Double? = nil, heartbeatAt: Double, owner: String,
        rowsTotal: Int? = nil, rowsDone: Int = 0, rowsWritten: Int = 0, rowsFailed: Int = 0, busySeconds: Double = 0,
        resumes: Int = 0, error: String? = nil, modelPath: String? = nil, keys: [String]? = nil
    ) {
        self.id = id
        self.feature = feature
        self.trigger = trigger
        self.state = state
        self.snapshotID = snapshotID
        self.scheduledFor = scheduledFor
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.heartbeatAt = heartbeatAt
        self.owner = owner
        self.rowsTotal = rowsTotal
        self.rowsDone = rowsDone
        self.rowsWritten = rowsWritten
        self.rowsFailed = rowsFailed
        self.busySeconds = busySeconds
        self.resumes = resumes
        self.error = error
        self.modelPath = modelPath
        self.keys = keys
    }
}

/// A source row the run could not use, and why.
public struct RowFailure: Sendable, Equatable {
    /// The row's position in the source (1-based, after the header).
    public var ordinal: Int
    /// Where it is (`accounts.csv:1042`).
    public var location: String
    /// Its key, when it could be read.
    public var key: String?
    public var reason: String

    /// Makes a failure record.
    public init(ordinal: Int, location: String, key: String?, reason: String) {
        self.ordinal = ordinal
        self.location = location
        self.key = key
        self.reason = reason
    }
}

/// Why the store refused a run. A code (which callers test) with the ids it concerns; new codes can be added
/// without breaking callers.
public struct BatchStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let description: String
        private init(_ name: String) { description = name }
        /// The feature already has a live run (another process is heart-beating it): `runID` names it.
        public static let runInProgress = Code("run_in_progress")
        /// No run with this id.
        public static let unknownRun = Code("unknown_run")
        /// The run has ended (succeeded, failed or canceled): it can no longer write or publish.
        public static let runNotRunning = Code("run_not_running")
        /// The schedule slot already has a run (another server's scheduler started it): `runID` names it.
        public static let slotTaken = Code("slot_taken")
        /// The worker no longer holds the range (its lease ran out and another worker took it): stop writing.
        public static let rangeLost = Code("range_lost")
        /// The snapshot cannot change this way in its state: base rows go only into a building snapshot, and only
        /// a published or retired one is sealed.
        public static let snapshotState = Code("snapshot_state")
        /// The store does not keep snapshot files (SQLite: they live beside the database).
        public static let filesNotHeld = Code("files_not_held")
        /// The stored file of a sealed snapshot is missing a part.
        public static let missingFilePart = Code("missing_file_part")
    }

    public var code: Code
    /// The run it concerns, if any.
    public var runID: String?
    /// The range it concerns (`rangeLost`), or the file part (`missingFilePart`).
    public var index: Int?
    /// The snapshot it concerns, if any.
    public var snapshotID: Int64?
    public let description: String

    public init(_ code: Code, _ description: String, runID: String? = nil, index: Int? = nil, snapshotID: Int64? = nil)
    {
        self.code = code
        self.description = description
        self.runID = runID
        self.index = index
        self.snapshotID = snapshotID
    }

    public static func runInProgress(runID: String) -> BatchStoreError {
        BatchStoreError(.runInProgress, "a run is already in progress (\(runID))", runID: runID)
    }
    public static func unknownRun(_ runID: String) -> BatchStoreError {
        BatchStoreError(.unknownRun, "no run with id \(runID)", runID: runID)
    }
    public static func runNotRunning(_ runID: String) -> BatchStoreError {
        BatchStoreError(.runNotRunning, "run \(runID) has ended and cannot write or publish", runID: runID)
    }
    public static func slotTaken(runID: String) -> BatchStoreError {
        BatchStoreError(.slotTaken, "this schedule slot already has a run (\(runID))", runID: runID)
    }
    public static func rangeLost(runID: String, index: Int) -> BatchStoreError {
        BatchStoreError(
            .rangeLost, "range \(index) of run \(runID) was leased by another worker", runID: runID, index: index)
    }
    public static func snapshotState(id: Int64, state: String) -> BatchStoreError {
        BatchStoreError(.snapshotState, "snapshot \(id) is \(state): it cannot change this way", snapshotID: id)
    }
    public static let filesNotHeld = BatchStoreError(
        .filesNotHeld, "this store does not keep snapshot files (they live in the snapshot folder)")
    public static func missingFilePart(snapshotID: Int64, index: Int) -> BatchStoreError {
        BatchStoreError(
            .missingFilePart, "part \(index) of snapshot \(snapshotID)'s file is missing from the store",
            index: index, snapshotID: snapshotID)
    }
}

/// Snapshots, runs and their ranges: SQLite (`SQLiteStore`) and PostgreSQL (`PostgresStore`) implement it, with
/// the same behaviour tests. Every method is one transaction, so a process killed at any moment leaves the previous
/// snapshot published and each range's checkpoint consistent with the chunks written for it.
///
/// A run's life: `startRun` (one live run per feature; one run per schedule slot) → `splitRun` once the source's
/// row count is known → workers `leaseRange`, `appendRangeChunk` (fenced by the lease), `completeRange`; the
/// completion of the last range publishes. A run that was never split (its starter died while counting) is found by
/// `interruptedRun` and taken over with `claimRun`.
public protocol BatchStore: Sendable {
    /// Starts a run and its (building) snapshot, unless the feature has a live run — one in state `running`
    /// that is split (any worker resumes its ranges), or not yet split but whose heartbeat is newer than `liveAfter`
    /// and whose owner `isGone` does not know to be dead (`BatchStoreError.runInProgress`) — or, for a run with `scheduledFor`, that slot already has a run
    /// (`BatchStoreError.slotTaken`). With `copyFrom`, the new snapshot starts as a copy of that snapshot's rows (a
    /// backfill over a subset).
    func startRun(
        _ run: BatchRun, modelVersion: String, inputTime: Double, copyFrom: Int64?, liveAfter: Double,
        isGone: @escaping @Sendable (String) -> Bool
    ) async throws -> BatchRun
    /// A run in state `running`, not yet split into ranges, whose owner is gone (heartbeat at or before
    /// `liveAfter`, or `isGone` says its process ended), which the caller may take over.
    func interruptedRun(feature: String, liveAfter: Double, isGone: @escaping @Sendable (String) -> Bool) async throws
        -> BatchRun?
    /// Takes over an interrupted run: new owner and heartbeat, `resumes + 1`. Returns the run as claimed, or
    /// `nil` if another process claimed it first.
    func claimRun(id: String, previousOwner: String, owner: String, at: Double) async throws -> BatchRun?
    /// Records a heartbeat of the run's owner (while it counts the source).
    func heartbeat(runID: String, at: Double) async throws
    /// Records the source's row count and splits the run into ranges of `rangeRows`. A run already split keeps its
    /// ranges (the call returns them).
    func splitRun(runID: String, rowsTotal: Int, rangeRows: Int, at: Double) async throws -> [RunRange]
    /// Leases the first available range (pending; or leased with its lease expired, or its owner gone) of a running
    /// run of one of `features`, oldest run first, for `leaseSeconds`.
    func leaseRange(
        features: [String], owner: String, now: Double, leaseSeconds: Double,
        isGone: @escaping @Sendable (String) -> Bool
    ) async throws -> RangeLease?
    /// Extends a range's lease (and the run's heartbeat); `false` when `owner` lost it or the run ended.
    func renewRange(runID: String, index: Int, owner: String, now: Double, leaseSeconds: Double) async throws -> Bool
    /// Gives a leased range back (a worker shutting down): pending again at once, its checkpoint kept, other
    /// workers told; `false` when `owner` did not hold it.
    func releaseRange(runID: String, index: Int, owner: String) async throws -> Bool
    /// Writes one chunk of a leased range, its row failures, the range's checkpoint and the run's totals in one
    /// transaction; `BatchStoreError.rangeLost` when `owner` no longer holds the range.
    func appendRangeChunk(
        runID: String, index: Int, owner: String, chunk: SnapshotChunk, failures: [RowFailure],
        progress: RangeProgress
    ) async throws
    /// Records the provider batch (an upstream's Batch API job) that computes a leased range, so that whoever holds
    /// the range next polls that batch instead of submitting another; `BatchStoreError.rangeLost` when `owner` no
    /// longer holds the range.
    func recordProviderBatch(runID: String, index: Int, owner: String, batchID: String) async throws
    /// Marks a leased range done. When it was the run's last open range, decides with `policy` over the run's final
    /// totals (`PublishPolicy.refusal`) in the same transaction: either publishes the run's snapshot (the previous
    /// one retires), marks the run succeeded and then deletes the rows of published snapshots beyond the newest
    /// `retention`; or ends the run `failed` with the refusal as its error, abandons its snapshot (its rows deleted)
    /// and leaves the published one as it was (`RangeCompletion.refused`).
    func completeRange(runID: String, index: Int, owner: String, at: Double, retention: Int, policy: PublishPolicy)
        async throws -> RangeCompletion
    /// A run's ranges, in order.
    func ranges(runID: String) async throws -> [RunRange]
    /// Ends a run without publishing (`failed` or `canceled`); its snapshot is abandoned and its rows deleted.
    func endRun(id: String, state: BatchRun.State, error: String, at: Double) async throws
    /// One run.
    func run(id: String) async throws -> BatchRun?
    /// A feature's runs, newest first.
    func runs(feature: String, limit: Int) async throws -> [BatchRun]
    /// A run's row failures, in source order, at most `limit`.
    func failures(runID: String, limit: Int) async throws -> [RowFailure]
    /// The feature's published snapshot.
    func publishedSnapshot(feature: String) async throws -> SnapshotInfo?
    /// A feature's snapshots (every state), newest first.
    func snapshots(feature: String, limit: Int) async throws -> [SnapshotInfo]
    /// Reads a snapshot's chunks in order (by chunk index, then by write order); none once it is sealed.
    func chunks(snapshotID: Int64) async throws -> [SnapshotChunk]
    /// Reads up to `limit` chunks after `cursor` (from the first when `nil`), in `chunks(snapshotID:)`'s order, and
    /// the cursor of the last one read (`nil` when none was): a large snapshot read a page at a time.
    func chunks(snapshotID: Int64, after cursor: ChunkCursor?, limit: Int) async throws -> (
        chunks: [SnapshotChunk], next: ChunkCursor?
    )

    // MARK: Sealed files (docs/snapshots.md)

    /// One snapshot, whatever its state.
    func snapshot(id: Int64) async throws -> SnapshotInfo?
    /// Replaces the base rows (chunk -1) of a building snapshot: with `first`, the ones already there are deleted
    /// before `chunk` is added. A backfill copies a sealed base's rows this way, in several calls.
    func replaceBaseRows(snapshotID: Int64, chunk: SnapshotChunk, first: Bool) async throws
    /// Whether the store keeps sealed files itself (PostgreSQL: servers on other hosts materialise them from it) or
    /// only records them (SQLite: the file in the folder beside the database is the snapshot).
    var holdsSnapshotFiles: Bool { get }
    /// Writes part `index` of a snapshot's file as `uploader` uploads it (stores that hold files).
    func putSnapshotFilePart(snapshotID: Int64, uploader: String, index: Int, bytes: [UInt8]) async throws
    /// Seals a published or retired snapshot in one transaction: records its file, drops its chunks and, in a store
    /// that holds files, keeps `uploader`'s parts as the file. A snapshot already sealed keeps its first file (this
    /// uploader's parts are dropped); either way the call returns the snapshot as sealed.
    func sealSnapshot(id: Int64, file: SnapshotInfo.SealedFile, uploader: String) async throws -> SnapshotInfo
    /// How many parts a sealed snapshot's stored file has (0 when the store does not hold files).
    func snapshotFilePartCount(snapshotID: Int64) async throws -> Int
    /// One part of a sealed snapshot's stored file.
    func snapshotFilePart(snapshotID: Int64, index: Int) async throws -> [UInt8]
}
