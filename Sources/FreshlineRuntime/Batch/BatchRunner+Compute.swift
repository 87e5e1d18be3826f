internal import Foundation
internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import FreshlineUpstream
internal import NIOPosix
internal import Synchronization

/// The compute pipeline of a batch run: a range's rows read in chunks from its source, computed on the runner
/// threads (the engine's model, or one upstream call per chunk), and written in source order with the range's
/// checkpoint. Run lifecycle and leases are in `BatchRunner.swift`; provider batches in
/// `BatchRunner+ProviderBatch.swift`; sources in `EntitySource.swift` and `CSVColumnar.swift`.
extension BatchRunner {
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
    func model(at path: String) throws -> Model {
        if let model = otherModels.withLock({ $0[path] }) { return model }
        let model = try Model(contentsOf: URL(fileURLWithPath: path))
        otherModels.withLock { $0[path] = model }
        return model
    }

    /// Reads, computes and writes a range's rows after its checkpoint. `batch.threads` chunks are in flight at
    /// once, each read from the shared reader in turn and computed whole on one runner thread (so the engine runs
    /// at `chunk_rows` per call while another thread reads); chunks are written in source order, each with the
    /// range's checkpoint, the next write overlapping the computing.
    func chunks(
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
                let cpuStart = UsageLedger.threadCPUSeconds()
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
                    sequence: read.sequence, position: read.position, rowsRead: read.rowsRead, part: part,
                    cpuSeconds: UsageLedger.threadCPUSeconds() - cpuStart)
            }
        }
        var totals = run
        // The chunk being written is a child task of `writes`, awaited before the next write starts (and, on an
        // error, cancelled and awaited with the group).
        try await withThrowingTaskGroup(of: Void.self) { writes in
            var writing = false
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
                            at: systemClock.now, inputTokens: part.inputTokens, outputTokens: part.outputTokens)
                        // One write at a time, in order; the next chunks compute meanwhile.
                        if writing { try await writes.next() }
                        let store = self.store
                        writing = true
                        writes.addTask {
                            try await store.appendRangeChunk(
                                runID: run.id, index: range.index, owner: RunOwner.current, chunk: snapshotChunk,
                                failures: part.failures, progress: progress)
                        }
                        totals.rowsDone += chunk.rowsRead
                        totals.rowsWritten += part.keys.count
                        totals.rowsFailed += part.failures.count
                        totals.busySeconds += busy
                        metrics?.runRows(feature: feature.name, rows: part.keys.count, failed: part.failures.count)
                        metrics?.ledger.batchChunk(
                            feature: feature.name, rows: chunk.rowsRead, cpuSeconds: chunk.cpuSeconds)
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
            if writing { try await writes.next() }
        }
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
    /// CPU time of the runner thread that read and computed it (for the process-usage ledger).
    var cpuSeconds: Double = 0
}

/// A source reader positioned at row `position` of run `runID`'s source.
struct ParkedReader {
    let runID: String
    let position: Int
    let reader: ReaderBox
}

/// Holds a source reader across the runner's thread hops; only one thread uses it at a time.
final class ReaderBox: @unchecked Sendable {
    let reader: any EntityReader
    init(_ reader: any EntityReader) { self.reader = reader }
}

/// One chunk's model call, whichever the backend: the model's description and a blocking run of `rows` rows.
struct ChunkCall: Sendable {
    let metadata: ModelMetadata
    /// The outputs, and the tokens each row used (empty for models that do not count tokens).
    let run: @Sendable ([String: Tensor], Int) throws -> (outputs: [String: Value], usage: [TokenUsage])
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
