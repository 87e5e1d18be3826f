internal import Foundation
public import FreshlineCore
public import FreshlineEngine
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

    /// The wall clock a run's input time (its answers' `computed_at`) is read from; leases use the system clock.
    let clock: any WallClock
    /// How long a run may go without a heartbeat (while it is counted and split) before another process takes it
    /// over.
    public static let lease: Double = 60
    /// How long a range lease lasts without renewal; a worker renews it every third of that while it computes.
    public static let rangeLease: Double = 30
    /// Models of backfills with another model file, loaded once per file.
    private let otherModels = Mutex<[String: Model]>([:])
    /// The source reader left where the last range this process computed ended: ranges are leased in order, so the
    /// next one usually starts there and goes on reading instead of opening the source and skipping to its start.
    private let parked = Mutex<ParkedReader?>(nil)

    /// A runner for `feature` (which must have a batch section) over `model`.
    public convenience init(
        feature: FeatureSpec, model: Model, manifestPath: String, store: any BatchStore, metrics: ServingMetrics?,
        clock: any WallClock = SystemWallClock()
    ) {
        self.init(
            feature: feature, local: model, remote: nil, manifestPath: manifestPath, store: store, metrics: metrics,
            clock: clock)
    }

    /// A runner for `feature` over `model`, local or upstream.
    public convenience init(
        feature: FeatureSpec, model: ServingModel, manifestPath: String, store: any BatchStore,
        metrics: ServingMetrics?, clock: any WallClock = SystemWallClock()
    ) {
        var remote: (any RemoteModel)?
        if case .remote(let model) = model.backend { remote = model }
        self.init(
            feature: feature, local: model.local, remote: remote, manifestPath: manifestPath, store: store,
            metrics: metrics, clock: clock)
    }

    private init(
        feature: FeatureSpec, local: Model?, remote: (any RemoteModel)?, manifestPath: String, store: any BatchStore,
        metrics: ServingMetrics?, clock: any WallClock
    ) {
        self.clock = clock
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
        let now = Clock.unixNow
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
        let now = Clock.unixNow
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
            total = try await Self.withTicks(every: .seconds(10)) { [store] in
                try? await store.heartbeat(runID: run.id, at: Clock.unixNow)
            } body: {
                try await Task.detached { try EntitySources.count(source, manifestPath: manifestPath) }.value
            }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            metrics?.runFinished(feature: feature.name, outcome: "failed")
            try? await store.endRun(id: run.id, state: .failed, error: "\(error)", at: Clock.unixNow)
            throw error
        }
        _ = try await store.splitRun(
            runID: run.id, rowsTotal: total, rangeRows: batch.rangeRows(rowsTotal: total), at: Clock.unixNow)
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
                let opening = Task.detached {
                    try? ReaderBox(EntitySources.open(source, manifestPath: manifestPath, skipping: 0))
                }
                do { run = try await split(run) } catch {
                    _ = await opening.value  // dropped here: its thread stops
                    throw error
                }
                if let reader = await opening.value {
                    let id = run.id
                    parked.withLock { $0 = ParkedReader(runID: id, position: 0, reader: reader) }
                }
            } else {
                run = try await split(run)
            }
        }
        defer { dropParkedReader(runID: run.id) }
        let pool = NIOThreadPool(numberOfThreads: max(1, batch.threads))
        pool.start()
        defer { Task { try? await pool.shutdownGracefully() } }
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
                        features: [self.feature.name], owner: RunOwner.current, now: Clock.unixNow,
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
    private func dropParkedReader(runID: String) {
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
            completion = try await Self.withTicks(every: .seconds(Self.rangeLease / 3)) {
                let held = try await store.renewRange(
                    runID: runID, index: index, owner: owner, now: Clock.unixNow, leaseSeconds: Self.rangeLease)
                if !held { throw BatchStoreError.rangeLost(runID: runID, index: index) }
            } body: {
                if self.batch.providerBatch != nil {
                    try await self.providerBatchRange(lease, pool: pool, tally: tally, report: report, turn: turn)
                } else {
                    try await self.chunks(lease, pool: pool, tally: tally, report: report, turn: turn)
                }
                return try await store.completeRange(
                    runID: runID, index: index, owner: owner, at: Clock.unixNow, retention: self.batch.retention,
                    policy: policy)
            }
        } catch is CancellationError {
            dropParkedReader(runID: runID)
            // Shutdown: give the range back (its checkpoint stays) so another worker takes it now, not after the
            // lease runs out. Not cancellable itself: the task is already cancelled.
            _ = try? await Task.detached { try await store.releaseRange(runID: runID, index: index, owner: owner) }
                .value
            throw CancellationError()
        } catch {
            dropParkedReader(runID: runID)
            switch error as? BatchStoreError {
            case .rangeLost?, .runNotRunning?:
                // Another worker holds the range now, or the run has ended: nothing of this worker's to fail.
                throw error
            default:
                try? await store.endRun(id: runID, state: .failed, error: "\(error)", at: Clock.unixNow)
                metrics?.runFinished(feature: feature.name, outcome: "failed")
                throw error
            }
        }
        // Outside the `do` above: a refused run is already ended by the store, with its reason; ending it again
        // there would overwrite the reason.
        switch completion {
        case .published:
            metrics?.runFinished(feature: feature.name, outcome: "succeeded")
            dropParkedReader(runID: runID)
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

    /// How one chunk's rows are run: the engine's model on the runner thread, or one call of the upstream model
    /// that the runner thread waits for (runner threads are an `NIOThreadPool`'s, not the cooperative pool's, so
    /// waiting there holds no task executor).
    static func call(local: Model?, remote: (any RemoteModel)?) -> ChunkCall {
        if let local {
            return ChunkCall(metadata: local.metadata) { feeds, _ in (try local.run(feeds), []) }
        }
        guard let remote else { preconditionFailure("a batch runner needs a model") }
        return ChunkCall(metadata: remote.metadata) { feeds, rows in
            let answer = try BlockingWait.result {
                try await remote.infer(feeds, rows: rows, priority: .batch, deadline: nil)
            }
            return (answer.outputs, answer.usage)
        }
    }

    /// The model at `path` (a backfill with another model file), loaded once.
    private func model(at path: String) throws -> Model {
        if let model = otherModels.withLock({ $0[path] }) { return model }
        let model = try Model(contentsOf: URL(fileURLWithPath: path))
        otherModels.withLock { $0[path] = model }
        return model
    }

    /// Reads, computes and writes a range's rows after its checkpoint. `batch.threads` chunks are in flight at
    /// once, each read from the shared reader in turn and computed whole on one runner thread (so the engine runs
    /// at `chunk_rows` per call while another thread reads); chunks are written in source order, each with the
    /// range's checkpoint, the next write overlapping the computing.
    private func chunks(
        _ lease: RangeLease, pool: NIOThreadPool, tally: WorkerTally, report: (@Sendable (Report) -> Void)?,
        turn: ReadGate.Turn?
    ) async throws {
        let run = lease.run
        let range = lease.range
        let model: Model? = try run.modelPath.map { try self.model(at: $0) } ?? local
        let call = Self.call(local: model, remote: remote)
        let mapper = EntityRowMapper(batch: batch, model: call.metadata)
        let (source, manifestPath) = (batch.source, manifestPath)
        let start = range.rowStart + range.rowsDone
        guard start < range.rowEnd else { return }
        let reader: ReaderBox
        if let resumed = parked.withLock({ slot -> ReaderBox? in
            guard let p = slot, p.runID == run.id, p.position == start else { return nil }
            slot = nil
            return p.reader
        }) {
            reader = resumed
        } else {
            reader = try await pool.runIfActive {
                ReaderBox(try EntitySources.open(source, manifestPath: manifestPath, skipping: start))
            }
        }
        // CSV and SQL sources whose inputs are numeric columns take the columnar path (cells parsed from the
        // mapped bytes, or the query's values, straight into tensors); everything else reads records of named fields.
        // (Local models only: an upstream model's rows go through records, one call per chunk.)
        let plan: CSVColumnarPlan? =
            switch model == nil ? nil : reader.reader {
            case let csv as CSVEntityReader: CSVColumnarPlan(mapper: mapper, header: csv.header)
            case let sql as SQLEntityReader: CSVColumnarPlan(mapper: mapper, header: sql.columns)
            default: nil
            }
        let feed = ChunkFeed(reader: reader, position: start, end: range.rowEnd, chunkRows: batch.chunkRows)
        let keySet = run.keys.map(Set.init)
        let selected = feature.outputs
        let threads = max(1, batch.threads)
        // Once the range's last chunk has been read: the reader is left for the range that follows (which the
        // other lane may lease now), and the read turn is given up. Once only: the reader moves on after that.
        let readingEnded = Mutex(false)
        let endReading: @Sendable () -> Void = { [self] in
            let first = readingEnded.withLock { ended in
                defer { ended = true }
                return !ended
            }
            guard first else { return }
            if feed.position == range.rowEnd {
                self.parked.withLock { $0 = ParkedReader(runID: run.id, position: range.rowEnd, reader: reader) }
            }
            turn?.end()
        }
        let work: @Sendable () async throws -> ComputedChunk? = {
            try await pool.runIfActive {
                guard let read = try feed.next(columnar: plan != nil) else {
                    endReading()
                    return nil
                }
                if read.position + read.rowsRead >= range.rowEnd { endReading() }
                let part: ChunkPart
                switch read.rows {
                case .csv(let raw):
                    part = Self.computeColumnar(
                        raw, range: 0..<raw.rows, plan: plan!, mapper: mapper, model: model!, keys: keySet,
                        outputs: selected)
                case .table(let table, let firstOrdinal, let name):
                    part = Self.computeTable(
                        table, firstOrdinal: firstOrdinal, name: name, plan: plan!, mapper: mapper, model: model!,
                        keys: keySet, outputs: selected)
                case .records(let records):
                    part = Self.compute(records, mapper: mapper, call: call, keys: keySet, outputs: selected)
                }
                return ComputedChunk(
                    sequence: read.sequence, position: read.position, rowsRead: read.rowsRead, part: part)
            }
        }
        var totals = run
        var pendingWrite: Task<Void, any Error>?
        defer { pendingWrite?.cancel() }
        var lastMark = ContinuousClock.now
        try await withThrowingTaskGroup(of: ComputedChunk?.self) { group in
            var inFlight = 0
            var exhausted = false
            var finished: [Int: ComputedChunk] = [:]
            var nextToWrite = 0
            func refill() {
                // At most `threads` computing, and at most as many computed ahead of the chunk written next.
                while !exhausted, inFlight < threads, finished.count < threads {
                    group.addTask(operation: work)
                    inFlight += 1
                }
            }
            refill()
            while let result = try await group.next() {
                inFlight -= 1
                try Task.checkCancellation()
                if let chunk = result { finished[chunk.sequence] = chunk } else { exhausted = true }
                while let chunk = finished.removeValue(forKey: nextToWrite) {
                    nextToWrite += 1
                    refill()
                    let now = ContinuousClock.now
                    let busy = (now - lastMark).seconds
                    lastMark = now
                    let part = chunk.part
                    let snapshotChunk = SnapshotChunk(
                        index: chunk.position, keys: part.keys, packedOutputs: part.outputs)
                    let progress = RangeProgress(
                        rangeRowsDone: chunk.position + chunk.rowsRead - range.rowStart, rowsRead: chunk.rowsRead,
                        rowsWritten: part.keys.count, rowsFailed: part.failures.count, busySeconds: busy,
                        at: Clock.unixNow, inputTokens: part.inputTokens, outputTokens: part.outputTokens)
                    // One write at a time, in order; the next chunks compute meanwhile.
                    try await pendingWrite?.value
                    let store = self.store
                    pendingWrite = Task {
                        try await store.appendRangeChunk(
                            runID: run.id, index: range.index, owner: RunOwner.current, chunk: snapshotChunk,
                            failures: part.failures, progress: progress)
                    }
                    totals.rowsDone += chunk.rowsRead
                    totals.rowsWritten += part.keys.count
                    totals.rowsFailed += part.failures.count
                    totals.busySeconds += busy
                    metrics?.runRows(feature: feature.name, rows: part.keys.count, failed: part.failures.count)
                    let rate = tally.add(rows: chunk.rowsRead, seconds: busy)
                    if let report {
                        let left = totals.rowsTotal.map { max(0, $0 - totals.rowsDone) }
                        report(
                            Report(
                                run: totals, rowsPerSecond: rate,
                                secondsLeft: left.map { rate > 0 ? Double($0) / rate : 0 }))
                    }
                }
                refill()
            }
        }
        try await pendingWrite?.value
        pendingWrite = nil
        try Task.checkCancellation()
    }

    /// One chunk's results.
    struct ChunkPart: Sendable {
        var keys: [String] = []
        /// Each key's outputs (JSON object text), packed as the store keeps them.
        var outputs = PackedRows()
        var failures: [RowFailure] = []
        /// Tokens the rows used (upstream LLM models).
        var inputTokens = 0
        var outputTokens = 0

        mutating func add(_ usage: [TokenUsage]) {
            for u in usage {
                inputTokens += u.input
                outputTokens += u.output
            }
        }
    }

    /// `compute` over the engine's `model`.
    static func compute(
        _ records: [EntityRecord], mapper: EntityRowMapper, model: Model, keys keySet: Set<String>?,
        outputs selected: [String]?
    ) -> ChunkPart {
        compute(records, mapper: mapper, call: call(local: model, remote: nil), keys: keySet, outputs: selected)
    }

    /// Maps, stacks and runs one slice of rows (on a runner thread). A batch that fails is re-run row by row, so
    /// only the rows at fault are recorded as failures.
    static func compute(
        _ records: [EntityRecord], mapper: EntityRowMapper, call: ChunkCall, keys keySet: Set<String>?,
        outputs selected: [String]?
    ) -> ChunkPart {
        var part = ChunkPart()
        var rows: [[String: JSONValue]] = []
        var rowKeys: [String] = []
        var rowRecords: [EntityRecord] = []
        for record in records {
            let fields: [String: JSONValue]
            let key: String
            switch record.fields.flatMap({ f in mapper.key(f).map { (f, $0) } }) {
            case .failure(let error):
                part.failures.append(
                    RowFailure(ordinal: record.ordinal, location: record.location, key: nil, reason: error.message))
                continue
            case .success(let (f, k)):
                fields = f
                key = k
            }
            // A backfill over a key subset skips other rows before reading their inputs.
            if let keySet, !keySet.contains(key) { continue }
            switch mapper.inputs(fields) {
            case .failure(let error):
                part.failures.append(
                    RowFailure(ordinal: record.ordinal, location: record.location, key: key, reason: error.message))
            case .success(let inputs):
                rows.append(inputs)
                rowKeys.append(key)
                rowRecords.append(record)
            }
        }
        guard !rows.isEmpty else { return part }
        func run(_ rows: [[String: JSONValue]]) throws -> (PackedRows, [TokenUsage]) {
            let feeds = try RowBatch.tensors(rows: rows, inputs: call.metadata.inputs)
            try call.metadata.validate(feeds)
            let answer = try call.run(feeds, rows.count)
            return (try packed(answer.outputs, count: rows.count, selected: selected), answer.usage)
        }
        if let (results, usage) = try? run(rows) {
            part.keys = rowKeys
            part.outputs = results
            part.add(usage)
            return part
        }
        for (index, row) in rows.enumerated() {
            do {
                let (result, usage) = try run([row])
                part.keys.append(rowKeys[index])
                part.outputs.append(contentsOf: result)
                part.add(usage)
            } catch {
                let message =
                    (error as? EngineError)?.message.replacingOccurrences(of: "row 1: ", with: "") ?? "\(error)"
                part.failures.append(
                    RowFailure(
                        ordinal: rowRecords[index].ordinal, location: rowRecords[index].location, key: rowKeys[index],
                        reason: message))
            }
        }
        part.failures.sort { $0.ordinal < $1.ordinal }
        return part
    }

    /// A batch's outputs as packed rows, one per input row.
    static func packed(_ outputs: [String: Value], count: Int, selected: [String]?) throws -> PackedRows {
        let bytes = try RowBatch.packedRows(outputs: outputs, count: count, selected: selected)
        guard let rows = PackedRows(packed: bytes), rows.count == count else {
            throw EngineError(.invalidShape, "the model's outputs did not give one row per input row")
        }
        return rows
    }
}

/// The turn to lease and read the next range: one lane at a time reads (the source is read in order, and the
/// range that follows usually goes on with the reader the last one left), while the other lane's range still
/// computes and writes.
public final class ReadGate: Sendable {
    private let state = Mutex<(held: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    public init() {}

    /// Waits for the turn (not cancellable: a turn always ends, at the latest when its range does).
    public func take() async -> Turn {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                guard state.held else {
                    state.held = true
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
        return Turn(gate: self)
    }

    /// Takes the turn and runs `lease`: its result with the turn (to end once the range has been read), or `nil`
    /// with the turn given up when there was nothing to lease (or it threw).
    public func leasing<T>(_ lease: () async throws -> T?) async throws -> (T, Turn)? {
        let turn = await take()
        do {
            if let leased = try await lease() { return (leased, turn) }
        } catch {
            turn.end()
            throw error
        }
        turn.end()
        return nil
    }

    fileprivate func pass() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiting.isEmpty else {
                state.held = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }

    /// One lane's turn; `end()` passes it on (once, however often it is called).
    public final class Turn: Sendable {
        private let gate: ReadGate
        private let ended = Mutex(false)
        fileprivate init(gate: ReadGate) { self.gate = gate }

        public func end() {
            let first = ended.withLock { ended in
                defer { ended = true }
                return !ended
            }
            if first { gate.pass() }
        }
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

/// Hands out a range's chunks to the runner threads in source order: each call reads the next chunk under the
/// lock (reads are sequential, computing is not) and numbers it, so the writer can put them back in order.
private final class ChunkFeed: Sendable {
    enum Rows: Sendable {
        /// Byte ranges of CSV cells, for the columnar path.
        case csv(CSVRawChunk)
        /// A query's rows, for the columnar path: the table, its first row's 1-based ordinal, the database's name.
        case table(QueryTable, firstOrdinal: Int, name: String)
        /// Records of named fields.
        case records([EntityRecord])
    }
    struct Read: Sendable {
        var sequence: Int
        /// The source position of the chunk's first row.
        var position: Int
        var rowsRead: Int
        var rows: Rows
    }
    private struct State {
        var sequence = 0
        var position: Int
        var exhausted = false
    }
    private let reader: ReaderBox
    private let end: Int
    private let chunkRows: Int
    private let state: Mutex<State>

    init(reader: ReaderBox, position: Int, end: Int, chunkRows: Int) {
        self.reader = reader
        self.end = end
        self.chunkRows = chunkRows
        state = Mutex(State(position: position))
    }

    /// Where the next chunk starts (the range's end once every chunk has been read).
    var position: Int { state.withLock { $0.position } }

    /// The next chunk, or `nil` at the range's end (or the source's, when it is shorter than counted).
    func next(columnar: Bool) throws -> Read? {
        try state.withLock { state -> Read? in
            let wanted = min(chunkRows, end - state.position)
            guard !state.exhausted, wanted > 0 else { return nil }
            let rows: Rows
            let count: Int
            if columnar {
                switch reader.reader {
                case let csv as CSVEntityReader:
                    let raw = try csv.nextRaw(maxRows: wanted)
                    (rows, count) = (.csv(raw), raw.rows)
                case let sql as SQLEntityReader:
                    let (table, first) = try sql.nextTable(maxRows: wanted)
                    (rows, count) = (.table(table, firstOrdinal: first, name: sql.name), table.rows)
                default:
                    throw EntitySourceError(message: "internal: the columnar path needs a CSV or SQL reader")
                }
            } else {
                let records = try reader.reader.next(maxRows: wanted)
                (rows, count) = (.records(records), records.count)
            }
            guard count > 0 else {
                state.exhausted = true
                return nil
            }
            defer {
                state.sequence += 1
                state.position += count
            }
            return Read(sequence: state.sequence, position: state.position, rowsRead: count, rows: rows)
        }
    }
}

/// A computed chunk, numbered in source order.
private struct ComputedChunk: Sendable {
    var sequence: Int
    var position: Int
    var rowsRead: Int
    var part: BatchRunner.ChunkPart
}

/// A source reader positioned at row `position` of run `runID`'s source.
private struct ParkedReader {
    let runID: String
    let position: Int
    let reader: ReaderBox
}

/// Holds a source reader across the runner's thread hops; only one thread uses it at a time.
final class ReaderBox: @unchecked Sendable {
    let reader: any EntityReader
    init(_ reader: any EntityReader) { self.reader = reader }
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

/// One chunk's model call, whichever the backend: the model's description and a blocking run of `rows` rows.
struct ChunkCall: Sendable {
    let metadata: ModelMetadata
    /// The outputs, and the tokens each row used (empty for models that do not count tokens).
    let run: @Sendable ([String: Tensor], Int) throws -> (outputs: [String: Value], usage: [TokenUsage])
}

/// Why a batch runner refused a request.
struct BatchRunnerError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Waits on the calling thread for an async operation: for code on dedicated threads (a batch runner's
/// `NIOThreadPool`) that calls an upstream model. Never call it on the cooperative pool.
enum BlockingWait {
    static func result<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<T, any Error>?>(nil)
        // Unstructured: the thread waiting here cannot be a task's; the operation is bounded by the upstream's own
        // call timeout (`limits.timeout`), so the wait ends.
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        guard let result = outcome.withLock({ $0 }) else {
            throw BatchRunnerError(message: "the model call ended without an outcome")
        }
        return try result.get()
    }
}
