internal import Foundation
internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import FreshlineUpstream
internal import NIOPosix

/// A range computed through the upstream's Batch API (`batch.provider_batch`), instead of row by row:
///
/// 1. **Submit** (once per range): the range's rows become one JSONL input file of request lines (`custom_id` = the
///    row's key; a key repeated in the range is sent once, and its answer serves every row with it), uploaded and
///    turned into a provider batch whose metadata names the run and the range. The batch's id is recorded with the
///    range before anything else happens.
/// 2. **Poll** every `provider_batch.poll` until the provider is done with it, renewing the range's lease meanwhile.
/// 3. **Write**: the range's rows are read again, in chunks, and each row's answer is looked up by its key in the
///    output file; rows in the error file, and rows without an answer (an expired batch), are run failures with
///    their reason. Each chunk is written with the range's checkpoint, as a computed chunk is.
///
/// Whoever holds the range next — the same process after a shutdown, another after a `kill -9` — finds the recorded
/// id and polls that batch. A process killed after creating a batch but before recording its id leaves a batch the
/// next holder finds by its metadata (`ProviderBatchAPI.find`): a range never submits twice.
extension BatchRunner {
    func providerBatchRange(
        _ lease: RangeLease, pool: NIOThreadPool, tally: WorkerTally, report: (@Sendable (Report) -> Void)?,
        turn: ReadGate.Turn?
    ) async throws {
        defer { turn?.end() }
        guard let settings = batch.providerBatch else { return }
        guard let model = remote as? any ProviderBatchModel else {
            throw BatchRunnerError(
                message: "batch.provider_batch needs an openai model; model '\(feature.model)' has no Batch API")
        }
        let (run, range) = (lease.run, lease.range)
        let start = range.rowStart + range.rowsDone
        guard start < range.rowEnd else { return }
        let metadata = [
            "freshline_feature": feature.name, "freshline_run": run.id, "freshline_range": String(range.index),
        ]
        let api = ProviderCalls(api: model.batches, pollInterval: settings.pollInterval)
        var batchID = range.providerBatch
        if batchID == nil {
            if let found = try await api.call({ try await model.batches.find(metadata: metadata) }) {
                batchID = found.id
            } else {
                let input = try await requestFile(lease, model: model, pool: pool)
                turn?.end()
                if input.lines > 0 {
                    // Retried as a whole: a create that failed without an answer may have made the batch, so each
                    // attempt looks for it first (an upload repeated leaves an unused file, not a second batch).
                    batchID = try await api.call {
                        if let found = try await model.batches.find(metadata: metadata) { return found.id }
                        let fileID = try await model.batches.upload(
                            input.bytes, filename: "\(run.id)-\(range.index).jsonl")
                        return try await model.batches.create(
                            inputFileID: fileID, endpoint: model.batchEndpoint,
                            completionWindow: settings.completionWindow, metadata: metadata
                        ).id
                    }
                }
            }
            if let batchID {
                try await store.recordProviderBatch(
                    runID: run.id, index: range.index, owner: RunOwner.current, batchID: batchID)
            }
        }
        turn?.end()
        var results: [String: Result<JSONValue, UpstreamError>] = [:]
        if let batchID {
            var status = try await api.call { try await model.batches.retrieve(batchID) }
            while !status.state.isFinal {
                try await Task.sleep(for: settings.pollInterval)
                status = try await api.call { try await model.batches.retrieve(batchID) }
            }
            switch status.state {
            case .failed, .cancelled:
                let why = status.errors.isEmpty ? "" : ": " + status.errors.joined(separator: "; ")
                throw BatchRunnerError(message: "provider batch \(batchID) \(status.state.rawValue)\(why)")
            default:
                // Completed, or expired with the rows it finished: the error file's rows replace nothing in the
                // output file (each row is in one of the two).
                for fileID in [status.outputFileID, status.errorFileID].compactMap({ $0 }) {
                    for line in try await api.call({ try await model.batches.results(fileID: fileID) }) {
                        results[line.customID] = line.outcome
                    }
                }
            }
        }
        try await writeProviderResults(
            lease, model: model, results: results, pool: pool, tally: tally, report: report)
    }

    /// The range's request lines, read on a runner thread.
    private func requestFile(_ lease: RangeLease, model: any ProviderBatchModel, pool: NIOThreadPool) async throws
        -> (bytes: [UInt8], lines: Int)
    {
        let (source, manifestPath, chunkRows) = (batch.source, manifestPath, batch.chunkRows)
        let mapper = EntityRowMapper(batch: batch, model: model.metadata)
        let keySet = lease.run.keys.map(Set.init)
        let range = lease.range
        return try await pool.runIfActive {
            let reader = try EntitySources.open(source, manifestPath: manifestPath, skipping: range.rowStart)
            // The last row of each key, in source order of those rows.
            var rows: [String: [String: JSONValue]] = [:]
            var order: [String] = []
            var position = range.rowStart
            while position < range.rowEnd {
                let records = try reader.next(maxRows: min(chunkRows, range.rowEnd - position))
                if records.isEmpty { break }
                position += records.count
                for record in records {
                    guard case .success(let fields) = record.fields, case .success(let key) = mapper.key(fields),
                        keySet?.contains(key) ?? true, case .success(let inputs) = mapper.inputs(fields)
                    else { continue }  // recorded as the row's failure when the results are written
                    if rows.updateValue(inputs, forKey: key) == nil { order.append(key) }
                }
            }
            var bytes: [UInt8] = []
            var lines = 0
            let url = model.batchEndpoint
            for start in stride(from: 0, to: order.count, by: max(1, chunkRows)) {
                let keys = order[start..<min(order.count, start + max(1, chunkRows))]
                let feeds = try RowBatch.tensors(rows: keys.map { rows[$0]! }, inputs: model.metadata.inputs)
                for (key, body) in zip(keys, model.batchBodies(feeds, rows: keys.count)) {
                    guard case .success(let body) = body else { continue }  // its reason is given when written
                    ProviderBatchAPI.appendRequestLine(customID: key, url: url, body: body, to: &bytes)
                    lines += 1
                }
            }
            return (bytes, lines)
        }
    }

    /// Reads the range's rows again from its checkpoint and writes each chunk's answers from `results`.
    private func writeProviderResults(
        _ lease: RangeLease, model: any ProviderBatchModel, results: [String: Result<JSONValue, UpstreamError>],
        pool: NIOThreadPool, tally: WorkerTally, report: (@Sendable (Report) -> Void)?
    ) async throws {
        let (run, range) = (lease.run, lease.range)
        let (source, manifestPath, chunkRows) = (batch.source, manifestPath, batch.chunkRows)
        let mapper = EntityRowMapper(batch: batch, model: model.metadata)
        let keySet = run.keys.map(Set.init)
        let selected = feature.outputs
        var position = range.rowStart + range.rowsDone
        let reader = try await pool.runIfActive { [position] in
            ReaderBox(try EntitySources.open(source, manifestPath: manifestPath, skipping: position))
        }
        // The batch's tokens, counted once (a key repeated in the range was one request): with the range's first
        // chunk, in the same transaction as its checkpoint, so a resumed range neither loses nor repeats them.
        var tokens = (input: 0, output: 0)
        if range.rowsDone == 0 {
            for case .success(let body) in results.values {
                if case .success(let answer) = model.batchAnswer(body), let usage = answer.usage {
                    tokens.input += usage.input
                    tokens.output += usage.output
                }
            }
        }
        var totals = run
        while position < range.rowEnd {
            try Task.checkCancellation()
            let began = ContinuousClock.now
            let wanted = min(chunkRows, range.rowEnd - position)
            let (read, part) = try await pool.runIfActive {
                let records = try reader.reader.next(maxRows: wanted)
                return (
                    records.count,
                    Self.providerPart(
                        records, mapper: mapper, model: model, results: results, keys: keySet, outputs: selected)
                )
            }
            if read == 0 { break }  // the source is shorter than counted
            let busy = (ContinuousClock.now - began).seconds
            let progress = RangeProgress(
                rangeRowsDone: position + read - range.rowStart, rowsRead: read, rowsWritten: part.keys.count,
                rowsFailed: part.failures.count, busySeconds: busy, at: systemClock.now, inputTokens: tokens.input,
                outputTokens: tokens.output)
            tokens = (0, 0)
            try await store.appendRangeChunk(
                runID: run.id, index: range.index, owner: RunOwner.current,
                chunk: SnapshotChunk(index: position, keys: part.keys, packedOutputs: part.outputs),
                failures: part.failures, progress: progress)
            position += read
            totals.rowsDone += read
            totals.rowsWritten += part.keys.count
            totals.rowsFailed += part.failures.count
            metrics?.runRows(feature: feature.name, rows: part.keys.count, failed: part.failures.count)
            let rate = tally.add(rows: read, seconds: busy)
            if let report {
                let left = totals.rowsTotal.map { max(0, $0 - totals.rowsDone) }
                report(
                    Report(run: totals, rowsPerSecond: rate, secondsLeft: left.map { rate > 0 ? Double($0) / rate : 0 })
                )
            }
        }
    }

    /// One chunk of rows with their answers from a provider batch's results.
    static func providerPart(
        _ records: [EntityRecord], mapper: EntityRowMapper, model: any ProviderBatchModel,
        results: [String: Result<JSONValue, UpstreamError>], keys keySet: Set<String>?, outputs selected: [String]?
    ) -> ChunkPart {
        var part = ChunkPart()
        var keys: [String] = []
        var values: [[JSONValue]] = []
        var ordinals: [(ordinal: Int, location: String)] = []
        func fail(_ record: EntityRecord, _ key: String?, _ reason: String) {
            part.failures.append(
                RowFailure(ordinal: record.ordinal, location: record.location, key: key, reason: reason))
        }
        for record in records {
            let fields: [String: JSONValue]
            let key: String
            switch record.fields.flatMap({ f in mapper.key(f).map { (f, $0) } }) {
            case .failure(let error):
                fail(record, nil, error.message)
                continue
            case .success(let (f, k)): (fields, key) = (f, k)
            }
            if let keySet, !keySet.contains(key) { continue }
            let inputs: [String: JSONValue]
            switch mapper.inputs(fields) {
            case .failure(let error):
                fail(record, key, error.message)
                continue
            case .success(let i): inputs = i
            }
            switch results[key] {
            case .success(let body)?:
                switch model.batchAnswer(body) {
                case .success(let answer):
                    keys.append(key)
                    values.append(answer.values)
                    ordinals.append((record.ordinal, record.location))
                case .failure(let error): fail(record, key, error.message)
                }
            case .failure(let error)?: fail(record, key, error.message)
            case nil:
                // Not sent (the row cannot be sent as it is: say why), or sent but never run (an expired batch).
                let sent: Result<JSONValue, UpstreamError>
                do {
                    let feeds = try RowBatch.tensors(rows: [inputs], inputs: model.metadata.inputs)
                    sent = model.batchBodies(feeds, rows: 1).first ?? .failure(UpstreamError(.badRequest, "no body"))
                } catch {
                    sent = .failure(UpstreamError(.badRequest, "\(error)"))
                }
                if case .failure(let error) = sent {
                    fail(record, key, error.message)
                } else {
                    fail(record, key, "the provider batch has no answer for this key (it expired before the row ran)")
                }
            }
        }
        guard !keys.isEmpty else {
            part.failures.sort { $0.ordinal < $1.ordinal }
            return part
        }
        func pack(_ rows: [[JSONValue]]) throws -> PackedRows {
            let outputs = try model.batchOutputs(rows).get()
            return try packed(outputs, count: rows.count, selected: selected)
        }
        if let all = try? pack(values) {
            part.keys = keys
            part.outputs = all
        } else {
            // One row's answer does not fit the outputs (a field of the wrong type): only that row fails.
            for (index, row) in values.enumerated() {
                do {
                    part.outputs.append(contentsOf: try pack([row]))
                    part.keys.append(keys[index])
                } catch {
                    part.failures.append(
                        RowFailure(
                            ordinal: ordinals[index].ordinal, location: ordinals[index].location, key: keys[index],
                            reason: "\(error)"))
                }
            }
        }
        part.failures.sort { $0.ordinal < $1.ordinal }
        return part
    }
}

/// The Batch API calls of one range, retried through the provider's outages: a call that fails for a reason that
/// may pass (unavailable, timed out, rate-limited) is tried again after its `Retry-After` or one poll interval, up to
/// `maximumFailures` times in a row; one the provider refuses (`.badRequest`) fails the run at once.
struct ProviderCalls {
    let api: ProviderBatchAPI
    let pollInterval: Duration
    /// Consecutive failures before the run fails: with the default poll (60 s), about 20 minutes of outage.
    static let maximumFailures = 20

    func call<T>(_ body: () async throws -> T) async throws -> T {
        var failures = 0
        while true {
            do {
                return try await body()
            } catch let error as UpstreamError {
                failures += 1
                guard error.kind != .badRequest, failures < Self.maximumFailures else {
                    throw BatchRunnerError(message: "the Batch API: \(error.message)")
                }
                try await Task.sleep(for: min(max(error.retryAfter ?? pollInterval, .milliseconds(10)), .seconds(600)))
            }
        }
    }
}
