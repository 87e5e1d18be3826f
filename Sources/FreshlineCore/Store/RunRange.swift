/// One range of a batch run: a contiguous span of source rows that any worker process may lease, compute and
/// write. A run is split into ranges once its row count is known; the worker that completes the last open range
/// publishes the snapshot, in the same transaction, so a run publishes exactly once however many workers share it.
public struct RunRange: Sendable, Equatable {
    /// The lifecycle of a range.
    public enum State: String, Sendable, CaseIterable {
        /// Not yet leased (or given back).
        case pending
        /// A worker holds it until `leaseExpiresAt`; a worker that dies has it re-leased after that (or at once, when
        /// its process is known to be gone).
        case leased
        /// Every row written.
        case done
    }
    public var runID: String
    /// 0, 1, 2… in source order.
    public var index: Int
    /// Source rows `rowStart..<rowEnd` (0-based positions in the source, after any header).
    public var rowStart: Int
    public var rowEnd: Int
    public var state: State
    /// `host:pid` of the worker holding (or last holding) it.
    public var owner: String?
    public var leaseExpiresAt: Double?
    /// The checkpoint: rows of this range already read, computed and written; a re-leased range resumes after them.
    public var rowsDone: Int
    /// How many times it was leased (1 for a range no worker lost).
    public var leases: Int
    public var finishedAt: Double?
    /// The provider batch computing it (`batch.provider_batch`), once submitted: the id the upstream's Batch API
    /// gave it. A worker that takes the range over polls this batch; it never submits a second one.
    public var providerBatch: String?

    /// Makes a range record.
    public init(
        runID: String, index: Int, rowStart: Int, rowEnd: Int, state: State = .pending, owner: String? = nil,
        leaseExpiresAt: Double? = nil, rowsDone: Int = 0, leases: Int = 0, finishedAt: Double? = nil,
        providerBatch: String? = nil
    ) {
        self.providerBatch = providerBatch
        self.runID = runID
        self.index = index
        self.rowStart = rowStart
        self.rowEnd = rowEnd
        self.state = state
        self.owner = owner
        self.leaseExpiresAt = leaseExpiresAt
        self.rowsDone = rowsDone
        self.leases = leases
        self.finishedAt = finishedAt
    }

    /// Source rows in the range.
    public var rows: Int { rowEnd - rowStart }

    /// Splits `rowsTotal` source rows into ranges of `rangeRows` (the last one shorter); an empty source gets one
    /// empty range, so that completing it publishes the (empty) snapshot like any other run.
    public static func split(runID: String, rowsTotal: Int, rangeRows: Int) -> [RunRange] {
        let size = max(1, rangeRows)
        guard rowsTotal > 0 else { return [RunRange(runID: runID, index: 0, rowStart: 0, rowEnd: 0)] }
        return stride(from: 0, to: rowsTotal, by: size).enumerated().map { index, start in
            RunRange(runID: runID, index: index, rowStart: start, rowEnd: min(rowsTotal, start + size))
        }
    }

    /// The rows per range a run uses when the manifest does not say: whole chunks, about `perWorkerShare` ranges
    /// for every worker that might share the run (so a worker that joins late still finds work, and a range lost to
    /// a crash costs little), never fewer rows than one chunk.
    public static func defaultRangeRows(rowsTotal: Int, chunkRows: Int, ranges: Int = 16) -> Int {
        let chunk = max(1, chunkRows)
        let chunks = (max(0, rowsTotal) + chunk - 1) / chunk
        let chunksPerRange = max(1, (chunks + max(1, ranges) - 1) / max(1, ranges))
        return chunksPerRange * chunk
    }
}

/// A range a worker leased, with its run.
public struct RangeLease: Sendable, Equatable {
    public var run: BatchRun
    public var range: RunRange

    public init(run: BatchRun, range: RunRange) {
        self.run = run
        self.range = range
    }
}

/// What one written chunk adds: the range's new checkpoint and the increments to the run's totals.
public struct RangeProgress: Sendable, Equatable {
    /// The range's checkpoint after this chunk (rows of the range done, from its start).
    public var rangeRowsDone: Int
    /// Source rows this chunk read, rows it wrote, rows that failed, seconds it took.
    public var rowsRead: Int
    public var rowsWritten: Int
    public var rowsFailed: Int
    public var busySeconds: Double
    /// When it was written: the run's heartbeat.
    public var at: Double
    /// Tokens the chunk's rows used (upstream LLM models), added to the run's totals.
    public var inputTokens = 0
    public var outputTokens = 0

    public init(
        rangeRowsDone: Int, rowsRead: Int, rowsWritten: Int, rowsFailed: Int, busySeconds: Double, at: Double,
        inputTokens: Int = 0, outputTokens: Int = 0
    ) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.rangeRowsDone = rangeRowsDone
        self.rowsRead = rowsRead
        self.rowsWritten = rowsWritten
        self.rowsFailed = rowsFailed
        self.busySeconds = busySeconds
        self.at = at
    }
}

/// How completing a range ended.
public enum RangeCompletion: Sendable, Equatable {
    /// Other ranges are still open (pending or leased); whoever completes the last one publishes.
    case remaining(Int)
    /// This was the run's last open range: its snapshot is published.
    case published(SnapshotInfo)
    /// This was the run's last open range, but its publish policy refused it (too many failed rows, or an empty
    /// snapshot over a non-empty one): the run ended `failed` with this reason, and the previous snapshot serves on.
    case refused(String)
}

/// Changes committed to a shared store, delivered to every process that listens (PostgreSQL `LISTEN/NOTIFY`): idle
/// workers wake when jobs are queued or ranges become available, servers swap snapshots when one is published.
public enum StoreEvent: Sendable, Equatable {
    case jobsQueued(feature: String)
    /// A job reached a final state (its result recorded, dead-lettered, canceled or expired): waiters on any server
    /// answer at once.
    case jobEnded(id: String)
    case snapshotPublished(feature: String)
    case rangesAvailable(feature: String)
}

/// A store that tells other processes what changed. The embedded SQLite store has none (one process: in-process
/// signals and polling suffice).
public protocol StoreEventSource: Sendable {
    /// Calls `handler` with every event until the task is cancelled; reconnects by itself after a lost connection
    /// (events sent while disconnected are lost: callers keep polling as a backstop).
    func listen(_ handler: @escaping @Sendable (StoreEvent) async -> Void) async throws
}
