internal import Foundation
public import FreshlineCore
public import FreshlineEngine
internal import FreshlineSnapshot
internal import FreshlineUpstream
public import NIOPosix
internal import Synchronization

/// Runs a batch feature's precompute. A run is started (one live run per feature), its source counted and split
/// into ranges of rows; then any worker process on the same store leases ranges and reads each range's rows in
/// chunks, computing up to `batch.threads` chunks at once (one per thread) and writing each, in source order, with the
/// range's checkpoint in one store transaction; the worker completing the last range publishes the snapshot. A range whose worker dies (even
/// `kill -9`) is leased again and resumes from its checkpoint; until the run publishes, the previous snapshot keeps
/// serving.
public final class BatchRunner: Sendable {
    /// The feature it runs.
    public let feature: FeatureSpec
    let batch: BatchSpec
    /// The engine's model; `nil` when the feature's model runs upstream (`remote`).
    let local: Model?
    /// The upstream model, called at batch priority (after real-time and async callers in its rate-limit budget).
    let remote: (any RemoteModel)?
    let manifestPath: String
    /// The store it writes runs and snapshots to.
    public let store: any BatchStore
    let metrics: ServingMetrics?

    /// Where this process keeps snapshot files: with one, the worker that publishes a run seals its snapshot
    /// (`SnapshotStorage.seal`). `nil`: snapshots stay as chunks in the store.
    let snapshotDirectory: String?

    /// The wall clock a run's input time (its answers' `computed_at`) is read from.
    let clock: any WallClock
    /// Real time, for leases, heartbeats and the stamps other processes compare: never accelerated by
    /// `--clock-speed`, which moves only the stamps the advisor reads.
    let systemClock: any WallClock = SystemWallClock()
    /// How long a run may go without a heartbeat (while it is counted and split) before another process takes it
    /// over.
    public static let lease: Double = 60
    /// How long a range lease lasts without renewal; a worker renews it every third of that while it computes.
    public static let rangeLease: Double = 30
    /// Models of backfills with another model file, loaded once per file.
    let otherModels = Mutex<[String: Model]>([:])
    /// The source reader left where the last range this process computed ended: ranges are leased in order, so the
    /// next one usually starts there and goes on reading instead of opening the source and skipping to its start.
    let parked = Mutex<ParkedReader?>(nil)

    /// A runner for `feature` (which must have a batch section) over `model`.
    public convenience init(
        feature: FeatureSpec, model: Model, manifestPath: String, store: any BatchStore, metrics: ServingMetrics?,
        clock: any WallClock = SystemWallClock(), snapshotDirectory: String? = nil
    ) {
        self.init(
            feature: feature, local: model, remote: nil, manifestPath: manifestPath, store: store, metrics: metrics,
            clock: clock, snapshotDirectory: snapshotDirectory)
    }

    /// A runner for `feature` over `model`, local or upstream.
    public convenience init(
        feature: FeatureSpec, model: ServingModel, manifestPath: String, store: any BatchStore,
        metrics: ServingMetrics?, clock: any WallClock = SystemWallClock(), snapshotDirectory: String? = nil
    ) {
        var remote: (any RemoteModel)?
        if case .remote(let model) = model.backend { remote = model }
        self.init(
            feature: feature, local: model.local, remote: remote, manifestPath: manifestPath, store: store,
            metrics: metrics, clock: clock, snapshotDirectory: snapshotDirectory)
    }

    private init(
        feature: FeatureSpec, local: Model?, remote: (any RemoteModel)?, manifestPath: String, store: any BatchStore,
        metrics: ServingMetrics?, clock: any WallClock, snapshotDirectory: String?
    ) {
        self.clock = clock
        self.snapshotDirectory = snapshotDirectory
        precondition(feature.batch != nil, "a batch runner needs a feature with a batch section")
        precondition(local != nil || remote != nil, "a batch runner needs a model")
        self.feature = feature
        batch = feature.batch!
        self.local = local
        self.remote = remote
        self.manifestPath = manifestPath
        self.store = store
        self.metrics = metrics
    }

    /// What a worker reports after each chunk.
    public struct Report: Sendable {
        /// The run's totals as this worker last wrote them (other workers' chunks included up to then).
        public var run: BatchRun
        /// Rows per second over this worker's busy time on the run.
        public var rowsPerSecond: Double
        /// Seconds left at that rate, when the total is known.
        public var secondsLeft: Double?
    }

    /// Starts a new run, refusing (`BatchStoreError.runInProgress`) while another is live, or
    /// (`BatchStoreError.slotTaken`) when the schedule slot already has one. A run over a key subset starts from a
    /// copy of the published snapshot, so keys outside the subset keep their values. The run still has to be
    /// `split` before workers can take its ranges.
    public func start(
        trigger: BatchRun.Trigger, scheduledFor: Double? = nil, keys: [String]? = nil, modelPath: String? = nil
    ) async throws -> BatchRun {
        let now = systemClock.now
        var modelVersion = metadata.version
        if let modelPath {
            guard local != nil else {
                throw BatchRunnerError(message: "a backfill with another model file needs a local (ONNX) model")
            }
            modelVersion = try self.model(at: modelPath).metadata.version
        }
        let copyFrom = keys == nil ? nil : try await store.publishedSnapshot(feature: feature.name)?.id
        let run = BatchRun(
            id: RandomID.make("run_"), feature: feature.name, trigger: trigger, snapshotID: 0,
            scheduledFor: scheduledFor,
            startedAt: now, heartbeatAt: now, owner: RunOwner.current, modelPath: modelPath, keys: keys)
        return try await store.startRun(
            run, modelVersion: modelVersion, inputTime: clock.now, copyFrom: copyFrom, liveAfter: now - Self.lease,
            isGone: RunOwner.isGone)
    }

    /// Claims the feature's interrupted run (started, never split, its owner gone), if there is one, for `split`.
    public func claimInterrupted() async throws -> BatchRun? {
        let now = systemClock.now
        guard
            let run = try await store.interruptedRun(
                feature: feature.name, liveAfter: now - Self.lease, isGone: RunOwner.isGone)
        else { return nil }
        return try await store.claimRun(id: run.id, previousOwner: run.owner, owner: RunOwner.current, at: now)
    }

    /// Counts the run's source rows and splits the run into ranges (`batch.range_rows`, else about 16 ranges of
    /// whole chunks). A source that cannot be read ends the run `failed`.
    public func split(_ run: BatchRun) async throws -> BatchRun {
        let (source, manifestPath) = (batch.source, manifestPath)
        let total: Int
        do {
            // Counting a large source can take a while: keep the run's heartbeat fresh meanwhile.
            total = try await Self.withTicks(every: .seconds(10)) { [store, systemClock] in
                try? await store.heartbeat(runID: run.id, at: systemClock.now)
            } body: {
                try await NIOThreadPool.singleton.runIfActive {
                    try EntitySources.count(source, manifestPath: manifestPath)
                }
            }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            metrics?.runFinished(feature: feature.name, outcome: "failed")
            try? await store.endRun(id: run.id, state: .failed, error: "\(error)", at: systemClock.now)
            throw error
        }
        if run.keys != nil { try await copySealedBase(of: run) }
        _ = try await store.splitRun(
            runID: run.id, rowsTotal: total, rangeRows: batch.rangeRows(rowsTotal: total), at: systemClock.now)
        return try await store.run(id: run.id) ?? run
    }

    /// Runs `run` to the end from this process: splits it if it is not yet split, works on its ranges (and any
    /// other open range of this feature) until none is left to lease, then waits for ranges other workers hold.
    /// Returns the published snapshot. On an error that is not about one row the run ends `failed`; on task
    /// cancellation (shutdown) it stops after the chunk in hand and stays resumable.
    public func execute(_ run: BatchRun, report: (@Sendable (Report) -> Void)? = nil) async throws -> SnapshotInfo {
        var run = run
        if try await store.ranges(runID: run.id).isEmpty {
            if case .sql = batch.source {
                // An SQL source's reader fetches its first page on a thread of its own: open it while the query's
                // rows are counted (its own pass over the query), and park it for the lane that leases range 0.
                let (source, manifestPath) = (batch.source, manifestPath)
                async let opening = try? NIOThreadPool.singleton.runIfActive {
                    try ReaderBox(EntitySources.open(source, manifestPath: manifestPath, skipping: 0))
                }
                do { run = try await split(run) } catch {
                    _ = await opening  // dropped here: its thread stops
                    throw error
                }
                if let reader = await opening {
                    let id = run.id
                    parked.withLock { $0 = ParkedReader(runID: id, position: 0, reader: reader) }
                }
            } else {
                run = try await split(run)
            }
        }
        defer { dropParkedReader(runID: run.id) }
        return try await Self.withThreadPool(threads: max(1, batch.threads)) { pool in
            let tally = WorkerTally()
            let gate = ReadGate()
            let progress = report.map { MonotonicReport($0) }
            let runID = run.id
            while true {
                try Task.checkCancellation()
                // Any open range of the feature (this run's own, or one whose worker died), in two lanes that take
                // ranges in turn: while one range's last chunks compute and write, the next range is leased and read
                // (ReadGate), so the runner threads do not idle at every range's end (measured: a 300k-row run in 16
                // ranges took 15–20% longer than the same run in one range when ranges were worked one at a time).
                let published = try await withThrowingTaskGroup(of: SnapshotInfo?.self, returning: SnapshotInfo?.self) {
                    group in
                    for _ in 0..<lanes {
                        group.addTask {
                            try await self.lane(gate: gate, pool: pool, tally: tally, report: progress?.forward) {
                                lease, snapshot in lease.run.id == runID ? snapshot : nil
                            }
                        }
                    }
                    defer { group.cancelAll() }
                    while let result = try await group.next() {
                        if let snapshot = result { return snapshot }
                    }
                    return nil
                }
                if let published { return published }
                // Nothing to lease: other workers hold the rest of this run's ranges. Wait for them.
                guard let current = try await store.run(id: run.id) else { throw BatchStoreError.unknownRun(run.id) }
                switch current.state {
                case .succeeded:
                    guard
                        let snapshot = try await store.snapshots(feature: feature.name, limit: 50).first(where: {
                            $0.id == current.snapshotID
                        })
                    else { throw BatchStoreError.unknownRun(run.id) }
                    return snapshot
                case .failed, .canceled:
                    throw BatchRunFailed(
                        runID: run.id, feature: feature.name, reason: current.error ?? current.state.rawValue)
                case .running:
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
        }
    }

    /// Runs `body` with a pool of `threads` dedicated threads (the runner's compute threads), shut down before it
    /// returns or throws.
    static func withThreadPool<T: Sendable>(
        threads: Int, _ body: (NIOThreadPool) async throws -> T
    ) async throws -> T {
        let pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
        let result: Result<T, any Error>
        do { result = .success(try await body(pool)) } catch { result = .failure(error) }
        try? await pool.shutdownGracefully()
        return try result.get()
    }

    /// Copies the rows of a backfill's base snapshot into its snapshot when the base is sealed (its chunks gone, so
    /// the store could not copy them when the run started): read from the base's file, written as the snapshot's
    /// base rows in parts. Done before the run is split, so a starter that dies meanwhile leaves a run that is
    /// claimed and copied again from the start (the first part replaces what was copied).
    func copySealedBase(of run: BatchRun) async throws {
        guard let building = try await store.snapshot(id: run.snapshotID), let baseID = building.baseID,
            let base = try await store.snapshot(id: baseID), base.file != nil
        else { return }
        guard let directory = snapshotDirectory else {
            throw BatchRunnerError(
                message:
                    "the backfill's base snapshot v\(base.version) is sealed; this process has no snapshot folder to read it from"
            )
        }
        let file = try await SnapshotStorage(store: store, directory: directory).open(base)
        let partRows = 20_000
        var first = true
        var keys: [String] = []
        var outputs = PackedRows()
        func flush() async throws {
            try await store.replaceBaseRows(
                snapshotID: run.snapshotID, chunk: SnapshotChunk(index: -1, keys: keys, packedOutputs: outputs),
                first: first)
            try? await store.heartbeat(runID: run.id, at: systemClock.now)
            (first, keys, outputs) = (false, [], PackedRows())
        }
        for row in file.rows where file.isLive(row: row) {
            keys.append(file.key(row: row))
            outputs.append(file.json(row: row))
            if keys.count == partRows { try await flush() }
        }
        if first || !keys.isEmpty { try await flush() }
    }

    /// Ranges one process works on at once: two (one reads while the other computes); with a provider batch,
    /// where a range waits hours for the provider rather than computing, up to eight batches are in flight.
    var lanes: Int { batch.providerBatch == nil ? 2 : 8 }

    /// One lane of ranges: takes the read turn, leases a range of the feature, computes it (giving the turn up
    /// as soon as the range has been read), and repeats until there is nothing to lease (`nil`) or `done` picks a
    /// result from a published snapshot.
    func lane(
        gate: ReadGate, pool: NIOThreadPool, tally: WorkerTally, report: (@Sendable (Report) -> Void)?,
        done: @Sendable (RangeLease, SnapshotInfo) -> SnapshotInfo?
    ) async throws -> SnapshotInfo? {
        while true {
            guard
                let (lease, turn) = try await gate.leasing({
                    try Task.checkCancellation()
                    return try await self.store.leaseRange(
                        features: [self.feature.name], owner: RunOwner.current, now: systemClock.now,
                        leaseSeconds: Self.rangeLease, isGone: RunOwner.isGone)
                })
            else { return nil }
            if case .published(let snapshot) = try await process(
                lease, pool: pool, tally: tally, report: report, turn: turn),
                let result = done(lease, snapshot)
            {
                return result
            }
        }
    }

    /// Drops a reader parked for `runID` (at a range's end, or opened early): of no use once the run is over here
    /// or its range is given up, and an SQL reader holds a connection, a page and a thread.
    func dropParkedReader(runID: String) {
        parked.withLock { slot in if slot?.runID == runID { slot = nil } }
    }

    /// Computes one leased range chunk by chunk from its checkpoint, renewing the lease meanwhile, then completes
    /// it (publishing when it was the run's last). An error that is not about one row ends the run `failed`; a lost
    /// lease (`BatchStoreError.rangeLost`) and cancellation leave the range to be leased again. When the run's
    /// publish policy (`batch.max_failed_share`, `batch.allow_empty`) refuses it, the store has ended it `failed`
    /// and this throws `BatchRunFailed` with the store's reason; the previous snapshot keeps serving.
    public func process(
        _ lease: RangeLease, pool: NIOThreadPool, tally: WorkerTally = WorkerTally(),
        report: (@Sendable (Report) -> Void)? = nil, turn: ReadGate.Turn? = nil
    ) async throws -> RangeCompletion {
        let (store, runID, index, owner) = (store, lease.run.id, lease.range.index, RunOwner.current)
        let policy = batch.publishPolicy
        // However the range ends, its reading has.
        defer { turn?.end() }
        let completion: RangeCompletion
        do {
            _ = try await Self.withTicks(every: .seconds(Self.rangeLease / 3)) {
                let held = try await store.renewRange(
                    runID: runID, index: index, owner: owner, now: self.systemClock.now, leaseSeconds: Self.rangeLease)
                if !held { throw BatchStoreError.rangeLost(runID: runID, index: index) }
            } body: {
                if self.batch.providerBatch != nil {
                    try await self.providerBatchRange(lease, pool: pool, tally: tally, report: report, turn: turn)
                } else {
                    try await self.chunks(lease, pool: pool, tally: tally, report: report, turn: turn)
                }
                return true
            }
            // After the renewals stop (the lease was renewed within the last third of its time): a renewal racing
            // the completion found the range done and failed a run that had published — seen at 50M rows, whose
            // publish held SQLite's writer for seconds while it counted the keys.
            completion = try await store.completeRange(
                runID: runID, index: index, owner: owner, at: systemClock.now, retention: batch.retention,
                policy: policy)
        } catch is CancellationError {
            dropParkedReader(runID: runID)
            // Shutdown: give the range back (its checkpoint stays) so another worker takes it now, not after the
            // lease runs out. Not cancellable itself: the task is already cancelled.
            _ = try? await Task.detached { try await store.releaseRange(runID: runID, index: index, owner: owner) }
                .value
            throw CancellationError()
        } catch {
            dropParkedReader(runID: runID)
            switch (error as? BatchStoreError)?.code {
            case .rangeLost?, .runNotRunning?:
                // Another worker holds the range now, or the run has ended: nothing of this worker's to fail.
                throw error
            default:
                try? await store.endRun(id: runID, state: .failed, error: "\(error)", at: systemClock.now)
                metrics?.runFinished(feature: feature.name, outcome: "failed")
                throw error
            }
        }
        // Outside the `do` above: a refused run is already ended by the store, with its reason; ending it again
        // there would overwrite the reason.
        switch completion {
        case .published(let info):
            metrics?.runFinished(feature: feature.name, outcome: "succeeded")
            dropParkedReader(runID: runID)
            if let directory = snapshotDirectory {
                // Published already: a seal that fails leaves the snapshot as chunks, and a server seals it later.
                if let sealed = try? await SnapshotStorage(store: store, directory: directory).seal(info) {
                    return .published(sealed)
                }
            }
        case .refused(let reason):
            metrics?.runFinished(feature: feature.name, outcome: "failed")
            dropParkedReader(runID: runID)
            throw BatchRunFailed(runID: runID, feature: feature.name, reason: reason)
        case .remaining:
            break
        }
        return completion
    }

    /// Runs `body` with `tick` repeated every `interval` beside it (a heartbeat, a lease renewal) until `body`
    /// returns; a tick that throws ends both with its error.
    static func withTicks<T: Sendable>(
        every interval: Duration, _ tick: @escaping @Sendable () async throws -> Void,
        body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                while true {
                    try await Task.sleep(for: interval)
                    try await tick()
                }
            }
            group.addTask { try await body() }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let value = result { return value }
            }
            throw CancellationError()
        }
    }

    /// Inputs, outputs and version of the feature's model.
    var metadata: ModelMetadata {
        local?.metadata ?? remote?.metadata
            ?? ModelMetadata(
                remoteInputs: [], outputs: [], producer: "", version: "")
    }

}

/// Passes on progress reports whose row count does not go back: two lanes report from their own ranges' view of
/// the run, a little apart.
final class MonotonicReport: Sendable {
    private let report: @Sendable (BatchRunner.Report) -> Void
    private let shown = Mutex(-1)

    init(_ report: @escaping @Sendable (BatchRunner.Report) -> Void) { self.report = report }

    @Sendable func forward(_ value: BatchRunner.Report) {
        let newer = shown.withLock { shown in
            guard value.run.rowsDone >= shown else { return false }
            shown = value.run.rowsDone
            return true
        }
        if newer { report(value) }
    }
}

/// A run ended failed: its publish policy refused it when its last range completed here, or it failed while this
/// process waited for other workers' ranges.
public struct BatchRunFailed: Error, CustomStringConvertible {
    public var runID: String
    /// The feature it ran.
    public var feature: String
    /// The run's recorded error.
    public var reason: String
    public var description: String { "run \(runID) failed: \(reason)" }
}

/// One worker's rows and busy seconds over the ranges it computed, for its rate in progress reports.
public final class WorkerTally: Sendable {
    private let totals = Mutex((rows: 0, seconds: 0.0))

    public init() {}

    /// Adds a chunk; returns rows per second so far.
    func add(rows: Int, seconds: Double) -> Double {
        totals.withLock {
            $0.rows += rows
            $0.seconds += seconds
            return $0.seconds > 0 ? Double($0.rows) / $0.seconds : 0
        }
    }
}

/// Who runs a run: `host:pid`. A run whose owner is on this host and whose process is gone is resumed at once;
/// on another host, only after its lease runs out.
enum RunOwner {
    static let host = ProcessInfo.processInfo.hostName
    static let current = "\(host):\(getpid())"

    @Sendable static func isGone(_ owner: String) -> Bool {
        guard let colon = owner.lastIndex(of: ":"), owner[..<colon] == host,
            let pid = Int32(owner[owner.index(after: colon)...])
        else { return false }
        if pid == getpid() { return false }
        return kill(pid, 0) != 0 && errno == ESRCH
    }
}

/// Why a batch runner refused a request.
struct BatchRunnerError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
