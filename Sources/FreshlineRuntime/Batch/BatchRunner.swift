internal import Foundation
public import FreshlineCore
public import FreshlineEngine
internal import NIOPosix

/// Runs a batch feature's precompute: reads the entity source in chunks, runs the model over each chunk on
/// `batch.threads` threads, writes each chunk with its checkpoint in one store transaction, and publishes the
/// snapshot when the source is exhausted. A run interrupted at any moment (even `kill -9`) resumes from its last
/// checkpoint, and until it publishes the previous snapshot keeps serving.
public final class BatchRunner: Sendable {
    /// The feature it runs.
    public let feature: FeatureSpec
    let batch: BatchSpec
    let model: Model
    let manifestPath: String
    /// The store it writes runs and snapshots to.
    public let store: any BatchStore
    let metrics: ServingMetrics?

    /// The wall clock a run's input time (its answers' `computed_at`) is read from; leases use the system clock.
    let clock: any WallClock
    /// How long a run may go without a heartbeat before another process may take it over.
    public static let lease: Double = 60
    /// How often a running run records a heartbeat while a chunk computes.
    static let heartbeatInterval: Duration = .seconds(10)

    /// A runner for `feature` (which must have a batch section) over `model`.
    public init(
        feature: FeatureSpec, model: Model, manifestPath: String, store: any BatchStore, metrics: ServingMetrics?,
        clock: any WallClock = SystemWallClock()
    ) {
        self.clock = clock
        precondition(feature.batch != nil, "a batch runner needs a feature with a batch section")
        self.feature = feature
        batch = feature.batch!
        self.model = model
        self.manifestPath = manifestPath
        self.store = store
        self.metrics = metrics
    }

    /// What a run reports after each chunk.
    public struct Report: Sendable {
        public var run: BatchRun
        /// Rows per second over this attempt's busy time.
        public var rowsPerSecond: Double
        /// Seconds left at that rate, when the total is known.
        public var secondsLeft: Double?
    }

    /// Starts a new run, refusing (`BatchStoreError.runInProgress`) while another is live. A run over a key
    /// subset starts from a copy of the published snapshot, so keys outside the subset keep their values.
    public func start(
        trigger: BatchRun.Trigger, scheduledFor: Double? = nil, keys: [String]? = nil, modelPath: String? = nil
    ) async throws -> BatchRun {
        let now = Clock.unixNow
        var modelVersion = model.metadata.version
        if let modelPath { modelVersion = try Model(contentsOf: URL(fileURLWithPath: modelPath)).metadata.version }
        let copyFrom = keys == nil ? nil : try await store.publishedSnapshot(feature: feature.name)?.id
        let run = BatchRun(
            id: RandomID.make("run_"), feature: feature.name, trigger: trigger, snapshotID: 0,
            scheduledFor: scheduledFor,
            startedAt: now, heartbeatAt: now, owner: RunOwner.current, modelPath: modelPath, keys: keys)
        return try await store.startRun(
            run, modelVersion: modelVersion, inputTime: clock.now, copyFrom: copyFrom, liveAfter: now - Self.lease,
            isGone: RunOwner.isGone)
    }

    /// Claims the feature's interrupted run, if there is one, for `execute`.
    public func claimInterrupted() async throws -> BatchRun? {
        let now = Clock.unixNow
        guard
            let run = try await store.interruptedRun(
                feature: feature.name, liveAfter: now - Self.lease, isGone: RunOwner.isGone)
        else { return nil }
        return try await store.claimRun(id: run.id, previousOwner: run.owner, owner: RunOwner.current, at: now)
    }

    /// Runs `run` (started or claimed by this process) to the end and publishes its snapshot. On an error that
    /// is not about one row the run ends `failed`; on task cancellation (shutdown) it stops after the chunk in
    /// hand and stays resumable.
    public func execute(_ run: BatchRun, report: (@Sendable (Report) -> Void)? = nil) async throws -> SnapshotInfo {
        let pool = NIOThreadPool(numberOfThreads: max(1, batch.threads))
        pool.start()
        do {
            let snapshot = try await withThrowingTaskGroup(of: SnapshotInfo?.self) { group in
                group.addTask { [store] in
                    while true {
                        try await Task.sleep(for: Self.heartbeatInterval)
                        try? await store.heartbeat(runID: run.id, at: Clock.unixNow)
                    }
                }
                group.addTask { try await self.chunks(run, pool: pool, report: report) }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let snapshot = result { return snapshot }
                }
                throw CancellationError()
            }
            try? await pool.shutdownGracefully()
            metrics?.runFinished(feature: feature.name, outcome: "succeeded")
            return snapshot
        } catch is CancellationError {
            try? await pool.shutdownGracefully()
            throw CancellationError()
        } catch {
            try? await pool.shutdownGracefully()
            metrics?.runFinished(feature: feature.name, outcome: "failed")
            try? await store.endRun(id: run.id, state: .failed, error: "\(error)", at: Clock.unixNow)
            throw error
        }
    }

    private func chunks(_ run: BatchRun, pool: NIOThreadPool, report: (@Sendable (Report) -> Void)?) async throws
        -> SnapshotInfo
    {
        let model = try run.modelPath.map { try Model(contentsOf: URL(fileURLWithPath: $0)) } ?? self.model
        let mapper = EntityRowMapper(batch: batch, model: model)
        let source = batch.source
        let manifestPath = manifestPath
        var run = run
        if run.rowsTotal == nil {
            let total = try await pool.runIfActive { try EntitySources.count(source, manifestPath: manifestPath) }
            try await store.setRowsTotal(runID: run.id, rows: total)
            run.rowsTotal = total
        }
        let skipping = run.rowsDone
        let reader = try await pool.runIfActive {
            ReaderBox(try EntitySources.open(source, manifestPath: manifestPath, skipping: skipping))
        }
        let keySet = run.keys.map(Set.init)
        let selected = feature.outputs
        let threads = max(1, batch.threads)
        var chunkIndex = run.rowsDone / max(1, batch.chunkRows)
        var attemptRows = 0
        var attemptBusy = 0.0
        // CSV sources whose inputs are numeric columns take the columnar path (cells parsed from the mapped
        // bytes straight into tensors); everything else reads records of named fields.
        let columnar = (reader.reader as? CSVEntityReader).flatMap {
            CSVColumnarPlan(mapper: mapper, header: $0.header)
        }
        var readAhead: Task<CSVRawChunk, any Error>?
        defer { readAhead?.cancel() }
        var pendingWrite: Task<Void, any Error>?
        while true {
            try Task.checkCancellation()
            let started = ContinuousClock.now
            var parts: [ChunkPart?] = []
            let rowsRead: Int
            if let plan = columnar {
                // The next chunk is scanned while this one computes (read-ahead of one chunk).
                let raw = try await (readAhead ?? readRaw(reader, pool: pool)).value
                readAhead = raw.rows == 0 ? nil : readRaw(reader, pool: pool)
                rowsRead = raw.rows
                if rowsRead == 0 { break }
                let sliceSize = (raw.rows + threads - 1) / threads
                let ranges = stride(from: 0, to: raw.rows, by: sliceSize).map { $0..<min(raw.rows, $0 + sliceSize) }
                parts = [ChunkPart?](repeating: nil, count: ranges.count)
                try await withThrowingTaskGroup(of: (Int, ChunkPart).self) { group in
                    for (index, range) in ranges.enumerated() {
                        group.addTask {
                            let part = try await pool.runIfActive {
                                Self.computeColumnar(
                                    raw, range: range, plan: plan, mapper: mapper, model: model, keys: keySet,
                                    outputs: selected)
                            }
                            return (index, part)
                        }
                    }
                    for try await (index, part) in group { parts[index] = part }
                }
            } else {
                let records = try await pool.runIfActive { try reader.reader.next(maxRows: self.batch.chunkRows) }
                rowsRead = records.count
                if records.isEmpty { break }
                // Split the chunk into one slice per thread and compute the slices in parallel.
                let sliceSize = (records.count + threads - 1) / threads
                let slices = stride(from: 0, to: records.count, by: sliceSize).map {
                    Array(records[$0..<min(records.count, $0 + sliceSize)])
                }
                parts = [ChunkPart?](repeating: nil, count: slices.count)
                try await withThrowingTaskGroup(of: (Int, ChunkPart).self) { group in
                    for (index, slice) in slices.enumerated() {
                        group.addTask {
                            let part = try await pool.runIfActive {
                                Self.compute(slice, mapper: mapper, model: model, keys: keySet, outputs: selected)
                            }
                            return (index, part)
                        }
                    }
                    for try await (index, part) in group { parts[index] = part }
                }
            }
            var keys: [String] = []
            var outputs: [[UInt8]] = []
            var failures: [RowFailure] = []
            for part in parts.compactMap({ $0 }) {
                keys += part.keys
                outputs += part.outputs
                failures += part.failures
            }
            let busy = (ContinuousClock.now - started).seconds
            run.rowsDone += rowsRead
            run.rowsWritten += keys.count
            run.rowsFailed += failures.count
            run.busySeconds += busy
            run.heartbeatAt = Clock.unixNow
            // The chunk and its checkpoint are written while the next chunk computes; writes stay in order.
            try await pendingWrite?.value
            let chunk = SnapshotChunk(index: chunkIndex, keys: keys, outputs: outputs)
            let progress = RunProgress(
                rowsDone: run.rowsDone, rowsWritten: run.rowsWritten, rowsFailed: run.rowsFailed,
                busySeconds: run.busySeconds, heartbeatAt: run.heartbeatAt)
            let (store, runID, snapshotID, rowFailures) = (self.store, run.id, run.snapshotID, failures)
            pendingWrite = Task {
                try await store.appendChunk(
                    runID: runID, snapshotID: snapshotID, chunk: chunk, failures: rowFailures, progress: progress)
            }
            chunkIndex += 1
            attemptRows += rowsRead
            attemptBusy += (ContinuousClock.now - started).seconds
            metrics?.runRows(feature: feature.name, rows: keys.count, failed: failures.count)
            if let report {
                let rate = attemptBusy > 0 ? Double(attemptRows) / attemptBusy : 0
                let left = run.rowsTotal.map { max(0, $0 - run.rowsDone) }
                report(
                    Report(run: run, rowsPerSecond: rate, secondsLeft: left.map { rate > 0 ? Double($0) / rate : 0 }))
            }
        }
        try await pendingWrite?.value
        try Task.checkCancellation()
        return try await store.publish(runID: run.id, at: Clock.unixNow, retention: batch.retention)
    }

    /// Scans the next raw CSV chunk on the runner's pool.
    private func readRaw(_ reader: ReaderBox, pool: NIOThreadPool) -> Task<CSVRawChunk, any Error> {
        let chunkRows = batch.chunkRows
        return Task {
            try await pool.runIfActive {
                guard let csv = reader.reader as? CSVEntityReader else {
                    throw EntitySourceError(message: "internal: the columnar path needs a CSV reader")
                }
                return try csv.nextRaw(maxRows: chunkRows)
            }
        }
    }

    /// One slice's results.
    struct ChunkPart: Sendable {
        var keys: [String] = []
        var outputs: [[UInt8]] = []
        var failures: [RowFailure] = []
    }

    /// Maps, stacks and runs one slice of rows (on a runner thread). A batch that fails is re-run row by row, so
    /// only the rows at fault are recorded as failures.
    static func compute(
        _ records: [EntityRecord], mapper: EntityRowMapper, model: Model, keys keySet: Set<String>?,
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
        func run(_ rows: [[String: JSONValue]]) throws -> [[UInt8]] {
            let feeds = try RowBatch.tensors(rows: rows, inputs: model.metadata.inputs)
            try model.validate(feeds)
            return try RowBatch.serializedRows(outputs: try model.run(feeds), count: rows.count, selected: selected)
        }
        if let results = try? run(rows) {
            part.keys = rowKeys
            part.outputs = results
            return part
        }
        for (index, row) in rows.enumerated() {
            do {
                let result = try run([row])[0]
                part.keys.append(rowKeys[index])
                part.outputs.append(result)
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

}

/// Holds a source reader across the runner's thread hops; only one thread uses it at a time.
private final class ReaderBox: @unchecked Sendable {
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
