internal import Foundation
public import FreshlineCore
public import FreshlineEngine
internal import FreshlineJSON
internal import FreshlineUpstream
internal import Synchronization

/// Answers predictions for one feature: validates the row, applies the freshness contract, sends the row
/// through the real-time batcher and walks the fallback ladder when that path cannot answer.
public final class FeatureServer: Sendable {
    /// The feature's configuration.
    public let spec: FeatureSpec
    /// The model it runs.
    public let model: ServingModel
    let batcher: RealtimeBatcher
    private let metrics: ServingMetrics
    private let meters: FeatureMeters
    private let histograms: LatencyHistograms
    private let requestLog: RequestLogger?
    private let defaultOutputs: [String: JSONValue]?
    private let snapshotSlot = Mutex<SnapshotTable?>(nil)
    /// The feature's newest run that ended succeeded or failed, as the store last said.
    private let lastRunSlot = Mutex<BatchRun?>(nil)
    private let clock: any WallClock
    private let decisions: DecisionExtractor
    /// The features whose snapshots this one composes inputs from, by name.
    private let sources: [String: FeatureServer]
    private let lookups = Mutex<(hits: Int, misses: Int)>((0, 0))

    init(
        spec: FeatureSpec, model: ServingModel, pool: ComputePool, computeSlots: Int, metrics: ServingMetrics,
        histograms: LatencyHistograms, requestLog: RequestLogger?, clock: any WallClock = SystemWallClock(),
        sources: [String: FeatureServer] = [:]
    ) {
        self.clock = clock
        self.sources = sources
        decisions = DecisionExtractor(
            spec: spec.decision, outputs: spec.outputs ?? model.metadata.outputs.map(\.name))
        self.spec = spec
        self.model = model
        self.metrics = metrics
        meters = FeatureMeters(feature: spec.name, metrics: metrics)
        self.histograms = histograms
        self.requestLog = requestLog
        batcher = RealtimeBatcher(
            feature: spec, model: model, pool: pool, metrics: metrics, computeSlots: computeSlots)
        if case .defaultValue(let value) = spec.onFailure {
            defaultOutputs = value
        } else {
            defaultOutputs = nil
        }
    }

    /// Time kept back from each caller's deadline for splitting outputs and writing the response.
    static let responseAllowance = Duration.microseconds(100)

    /// The model inputs a request must supply (the key fills an input of the same name).
    public var inputs: [ModelMetadata.ValueInfo] { model.metadata.inputs }

    /// Answers one row. Throws `PredictionError` when no rung of the ladder can answer.
    ///
    /// A feature with a batch section answers from its snapshot when the snapshot holds the key and its age meets
    /// the contract (`source: batch`); otherwise the section's `on_stale` and `cold_start` policies choose
    /// between computing now, the stale value (`source: fallback`, `stale: true`), the default, and an error.
    public func predict(_ request: PredictRequest) async throws -> Prediction {
        let start = request.arrival ?? ContinuousClock.now
        let arrivedAt = clock.now
        var source: PredictionSource?
        var outcome = "ok"
        var age = 0.0
        var answer: Prediction?
        defer {
            let duration = ContinuousClock.now - start
            meters.request(source: source, outcome: outcome, duration: duration)
            if outcome == "ok" {
                histograms.record(feature: spec.name, source: source, duration: duration)
                meters.served(ageSeconds: age)
            }
            log(
                request, source: source, outcome: outcome, latencySeconds: duration.seconds, ageSeconds: age,
                at: arrivedAt, answer: answer)
        }
        do {
            let prediction = try await self.answer(request, start: start)
            answer = prediction
            source = prediction.provenance.source
            age = prediction.provenance.ageSeconds
            return prediction
        } catch let error as PredictionError {
            switch error.code {
            case .badRequest: outcome = "bad_request"
            case .overloaded: outcome = "shed"
            case .timeout: outcome = "timeout"
            case .unknownKey: outcome = "unknown_key"
            case .stale: outcome = "stale"
            case .unavailable: outcome = "unavailable"
            default: outcome = "error"
            }
            throw error
        }
    }

    /// Looks the key up, asks the ladder which step answers, and performs it.
    private func answer(_ request: PredictRequest, start: ContinuousClock.Instant) async throws -> Prediction {
        guard let batch = spec.batch, let key = request.key else { return try await realtime(request, start: start) }
        let table = snapshot
        let found = table?.outputs(for: key)
        // The clock is read for a key the snapshot holds only.
        let age = found == nil ? 0 : table.map { max(0, clock.now - $0.info.inputTime) } ?? 0
        let lookup: FallbackLadder.Lookup =
            table == nil ? .noSnapshot : found == nil ? .missing : .found(ageSeconds: age)
        if found == nil {
            meters.lookup(hit: false)
            lookups.withLock { $0.misses += 1 }
        } else {
            meters.lookup(hit: true)
            lookups.withLock { $0.hits += 1 }
        }
        let contract = FreshnessContract.effective(feature: spec.maxStaleness, request: request.maxStaleness)
        let step = FallbackLadder.step(
            lookup: lookup, contract: contract,
            policies: .init(coldStart: batch.coldStart, onStale: batch.onStale, hasDefault: defaultOutputs != nil),
            carriesInputs: carriesInputs(request))
        func fromSnapshot(stale: Bool) -> Prediction? {
            guard let table, let found else { return nil }
            if stale { metrics.fallback(feature: spec.name, rung: "stale_snapshot") }
            return Prediction(
                key: key, outputs: found,
                provenance: Provenance(
                    source: stale ? .fallback : .batch, computedAt: table.info.inputTime, ageSeconds: age,
                    modelVersion: table.info.modelVersion, snapshot: table.label, stale: stale))
        }
        switch step {
        case .snapshot:
            if let answer = fromSnapshot(stale: false) { return answer }
        case .compute(.defaultElseError):
            return try await realtime(request, start: start)
        case .compute(.staleSnapshot):
            do {
                return try await realtime(request, start: start, allowDefault: false)
            } catch let error as PredictionError where error.code != .badRequest {
                // The real-time path cannot answer now: the stale value is the next rung.
            }
            if let answer = fromSnapshot(stale: true) { return answer }
        case .staleSnapshot:
            if let answer = fromSnapshot(stale: true) { return answer }
        case .defaultValue:
            if let answer = defaultAnswer(request) { return answer }
        case .refuse(let refusal):
            if refusal == .stale { metrics.fallback(feature: spec.name, rung: "error") }
            throw refusalError(refusal, key: key, age: age, contract: contract)
        }
        // Only reachable if the ladder chose a rung this feature lacks: a bug, reported as one, not a crash.
        throw PredictionError(.internalError, "the fallback ladder chose \(step) for feature '\(spec.name)'")
    }

    /// The error for a refusal of the ladder.
    private func refusalError(
        _ refusal: FallbackLadder.Refusal, key: String, age: Double, contract: FreshnessContract
    ) -> PredictionError {
        switch refusal {
        case .noSnapshot:
            // With no snapshot loaded every key is missing: the server's state, not the caller's key (503, not 404).
            return PredictionError(
                .unavailable,
                "feature '\(spec.name)' has no published snapshot yet (run it: `freshline run \(spec.name)` or "
                    + "POST /v1/features/\(spec.name)/runs)", retryAfter: 30)
        case .unknownKey:
            return PredictionError(.unknownKey, "key '\(key)' is not in the feature's snapshot")
        case .unknownKeyWithoutInputs:
            return PredictionError(
                .unknownKey,
                "key '\(key)' is not in the feature's snapshot, and the request carries no inputs to compute it")
        case .stale:
            let limit = contract.maxStaleness.map { " (max_staleness \(DurationText.format($0)))" } ?? ""
            return PredictionError(
                .stale, "the feature's snapshot is \(Int(age)) s old, older than the request accepts\(limit)",
                retryAfter: 60)
        }
    }

    /// Records one row of an async job in the request log: `source: async`, latency from submission to result, and
    /// the tokens an upstream model reported for the row.
    func logAsync(
        _ request: PredictRequest, outputs: [String: JSONValue], latencySeconds: Double, usage: TokenUsage?,
        modelVersion: String? = nil, computeSeconds: Double? = nil, computeRows: Int? = nil
    ) {
        let now = clock.now
        var answer = Prediction(
            key: request.key, outputs: outputs,
            provenance: Provenance(source: .async, computedAt: now, ageSeconds: 0, modelVersion: modelVersion))
        answer.usage = usage
        answer.computeSeconds = computeSeconds
        answer.computeRows = computeRows
        log(
            request, source: .async, outcome: "ok", latencySeconds: latencySeconds, ageSeconds: 0,
            at: now - latencySeconds, answer: answer)
    }

    /// One model call of an async job's chunk, for the process-usage ledger: its rows as async answers, and its time
    /// as model CPU when the model runs here.
    func recordAsyncCall(seconds: Double, rows: Int) {
        let usage = metrics.ledger.counters(for: spec.name)
        usage.asyncAnswers(rows)
        if model.local != nil { usage.modelCall(seconds: seconds) }
    }

    /// Offers one request to the request log. The key is hashed once (sampling is by key); the sample, with the
    /// answer's decision and the inputs' hashes, is built only when the request is sampled.
    private func log(
        _ request: PredictRequest, source: PredictionSource?, outcome: String, latencySeconds: Double,
        ageSeconds: Double, at: Double, answer: Prediction?
    ) {
        guard let requestLog, !request.loadTest else { return }
        let keyHash = request.key.map(KeyHash.value)
        requestLog.offer(keyHash: keyHash) {
            RequestLogSample(
                feature: spec.name, keyHash: keyHash.map { KeyHash.hex(value: $0) },
                hasRequestInputs: request.inputs.keys.contains { $0 != spec.key }, source: source,
                outcome: outcome, latencySeconds: latencySeconds, ageSeconds: ageSeconds, at: at,
                computedAt: answer?.provenance.computedAt, decision: answer.flatMap { decisions.decision($0.outputs) },
                inputHashes: DecisionExtractor.inputHashes(
                    request.inputs.merging(answer?.composedValues ?? [:]) { a, _ in a }, excluding: spec.key),
                inputTokens: answer?.usage?.input, outputTokens: answer?.usage?.output,
                modelVersion: answer?.provenance.modelVersion, computeSeconds: answer?.computeSeconds,
                computeRows: answer?.computeRows)
        }
    }

    /// Whether the request carries every model input (besides the key) that a real-time computation needs.
    private func carriesInputs(_ request: PredictRequest) -> Bool {
        model.metadata.inputs.allSatisfy { $0.name == spec.key || request.inputs[$0.name] != nil }
    }

    /// The configured default as an answer (counted as the `default` rung), if the feature has one.
    private func defaultAnswer(_ request: PredictRequest) -> Prediction? {
        guard let defaultOutputs else { return nil }
        metrics.fallback(feature: spec.name, rung: "default")
        return Prediction(
            key: request.key, outputs: defaultOutputs,
            provenance: Provenance(source: .default, computedAt: clock.now, ageSeconds: 0, modelVersion: nil))
    }

    /// Computes the row now through the batcher; on failure, the configured default (when `allowDefault`).
    private func realtime(_ request: PredictRequest, start: ContinuousClock.Instant, allowDefault: Bool = true)
        async throws -> Prediction
    {
        let (filled, composed) = try compose(request)
        let row = try validate(filled)
        // The batcher plans for the model call to finish by the deadline; keep back what answering takes.
        let callerDeadline = start + (request.timeout ?? spec.latencyBudget)
        let deadline = callerDeadline - Self.responseAllowance
        do {
            let answer = try await batcher.submit(row, deadline: deadline)
            var outputs = answer.outputs
            // Checked again before answering: an answer that comes after the caller's deadline (a descheduled thread,
            // a slow batch) is a timeout, and the next rung of the ladder answers instead.
            if ContinuousClock.now > callerDeadline {
                throw PredictionError(
                    .timeout,
                    "the answer was not ready within the deadline (\(DurationText.format(callerDeadline - start)))")
            }
            if let selected = spec.outputs { outputs = outputs.filter { selected.contains($0.key) } }
            var prediction = Prediction(
                key: request.key, outputs: outputs,
                provenance: Provenance(
                    source: .realtime, computedAt: clock.now, ageSeconds: 0, modelVersion: answer.modelVersion))
            prediction.inputs = composed
            prediction.usage = answer.usage
            prediction.computeSeconds = answer.computeSeconds
            prediction.computeRows = answer.computeRows
            if !composed.isEmpty {
                prediction.composedValues = Dictionary(
                    uniqueKeysWithValues: spec.compose.compactMap { c in
                        filled.inputs[c.input].map { (c.input, $0) }
                    })
            }
            return prediction
        } catch let error as PredictionError {
            // The fallback ladder: the configured default, else the error.
            if allowDefault, let fallback = defaultAnswer(request) { return fallback }
            if allowDefault { metrics.fallback(feature: spec.name, rung: "error") }
            throw error
        }
    }

    /// Admission before a request costs anything: `false` when a row that must be computed now could not be answered
    /// by the caller's deadline (`arrival` + the request's timeout or the latency budget), with the rows already
    /// queued ahead of it; the refusal is counted as shed, and as the ladder's `error` rung. Always admitted here:
    /// features with a batch section (most requests are answered from the snapshot) and features with a default
    /// (the ladder answers it when the computation is shed); the batcher still sheds what cannot make it.
    public func admits(arrival: ContinuousClock.Instant, timeout: Duration?) -> Bool {
        guard spec.batch == nil, defaultOutputs == nil else { return true }
        let deadline = arrival + (timeout ?? spec.latencyBudget) - Self.responseAllowance
        if batcher.canMeet(deadline) { return true }
        metrics.shed(feature: spec.name)
        metrics.fallback(feature: spec.name, rung: "error")
        let waited = ContinuousClock.now - arrival
        meters.request(source: nil, outcome: "shed", duration: waited)
        // In the request log too, without a key (the body is not read): a path that refuses everything must still
        // show the advisor its failures.
        requestLog?.offer(keyHash: nil) {
            RequestLogSample(
                feature: spec.name, keyHash: nil, hasRequestInputs: false, source: nil, outcome: "shed",
                latencySeconds: waited.seconds, ageSeconds: 0, at: clock.now - waited.seconds)
        }
        return false
    }

    /// The snapshot this feature answers from, if one is loaded.
    public var snapshot: SnapshotTable? { snapshotSlot.withLock { $0 } }

    /// Updates the snapshot gauges (its age grows while it serves).
    func refreshSnapshotFigures() {
        guard let table = snapshot else { return }
        metrics.snapshot(
            feature: spec.name, keys: table.keyCount, ageSeconds: max(0, clock.now - table.info.inputTime))
    }

    /// Why the feature's snapshot fails its readiness check: none loaded yet, or older than `max_staleness`.
    /// `nil` for features without a batch section, or without a `max_staleness`.
    public var snapshotProblem: String? {
        guard spec.batch != nil, let limit = spec.maxStaleness else { return nil }
        guard let table = snapshot else { return "\(spec.name): no published snapshot" }
        let age = clock.now - table.info.inputTime
        guard age > limit.seconds else { return nil }
        return
            "\(spec.name): snapshot \(table.label) is \(Int(age)) s old (max_staleness \(DurationText.format(limit)))"
    }

    /// Records the feature's newest run that ended succeeded or failed (`nil`: none yet), for readiness and
    /// `freshline_run_last_failed`.
    public func recordLastRun(_ run: BatchRun?) {
        lastRunSlot.withLock { $0 = run }
        if let run { metrics.lastRun(feature: spec.name, failed: run.state == .failed) }
    }

    /// Why the feature's last run fails the readiness check: it ended failed (refused by its publish policy, or
    /// stopped on an error), so the snapshot served is older than the schedule intends. `nil` once a later run
    /// succeeds, and for features without a batch section.
    public var lastRunProblem: String? {
        guard spec.batch != nil, let run = lastRunSlot.withLock({ $0 }), run.state == .failed else { return nil }
        let serving = snapshot.map { "serving snapshot \($0.label)" } ?? "no snapshot served"
        return "\(spec.name): the last batch run \(run.id) failed (\(serving)): \(run.error ?? "no reason recorded")"
    }

    /// Swaps in a newly published snapshot: requests see the old table or the new one, never a mix.
    public func install(_ table: SnapshotTable) {
        snapshotSlot.withLock { $0 = table }
        metrics.snapshot(
            feature: spec.name, keys: table.keyCount, ageSeconds: max(0, clock.now - table.info.inputTime))
    }

    /// Checks a row as `predict` would, without computing it (async submissions are refused at once when a row
    /// cannot be used); returns the row's tensors.
    public func checkRow(_ request: PredictRequest) throws -> [String: Tensor] { try validate(compose(request).0) }

    /// Fills the inputs this feature composes from other features' snapshots (the hybrid pattern): each value is
    /// looked up by key in the source's in-memory snapshot and used when it is within its `max_staleness`;
    /// otherwise the missing-key policy answers (a default value, or an error). Returns the filled request and
    /// where each composed value came from.
    func compose(_ request: PredictRequest) throws -> (PredictRequest, [String: InputProvenance]) {
        guard !spec.compose.isEmpty else { return (request, [:]) }
        var filled = request
        var provenance: [String: InputProvenance] = [:]
        let now = clock.now
        for c in spec.compose {
            guard request.inputs[c.input] == nil else {
                throw PredictionError(
                    .badRequest, "input '\(c.input)' comes from feature '\(c.feature)'; the request must not send it")
            }
            let key: String
            if let name = c.keyInput {
                switch request.inputs[name] {
                case .string(let s)?: key = s
                case .integer(let i)?: key = String(i)
                default:
                    throw PredictionError(
                        .badRequest,
                        "input '\(name)' (the key of '\(c.feature)' for '\(c.input)') is required: a string or an integer"
                    )
                }
                if !model.metadata.inputs.contains(where: { $0.name == name }) { filled.inputs[name] = nil }
            } else if let requestKey = request.key {
                key = requestKey
            } else {
                throw PredictionError(
                    .badRequest, "a key is required: input '\(c.input)' is looked up in '\(c.feature)' by key")
            }
            let source = sources[c.feature]
            let table = source?.snapshot
            let value = table?.outputs(for: key)?[c.output]
            let age = value == nil ? 0 : table.map { max(0, now - $0.info.inputTime) } ?? 0
            // A source feature the manifest does not declare has nothing loaded: the key is missing.
            let lookup: FallbackLadder.Lookup =
                value != nil ? .found(ageSeconds: age) : (source != nil && table == nil ? .noSnapshot : .missing)
            var fallbackValue: JSONValue?
            if case .defaultValue(let v) = c.onMissing { fallbackValue = v }
            switch FallbackLadder.composedStep(
                lookup: lookup, maxStaleness: c.maxStaleness ?? source?.spec.maxStaleness,
                hasDefault: fallbackValue != nil)
            {
            case .value:
                if let table, let value {
                    filled.inputs[c.input] = value
                    provenance[c.input] = InputProvenance(
                        feature: c.feature, key: key, source: .batch, snapshot: table.label,
                        computedAt: table.info.inputTime, ageSeconds: age)
                    continue
                }
            case .defaultValue(let stale):
                if let fallbackValue {
                    filled.inputs[c.input] = fallbackValue
                    provenance[c.input] = InputProvenance(feature: c.feature, key: key, source: .default, stale: stale)
                    metrics.fallback(feature: spec.name, rung: "composed_default")
                    continue
                }
            case .refuse(.stale):
                throw PredictionError(
                    .stale,
                    "the snapshot of '\(c.feature)' holds key '\(key)' but older than input '\(c.input)' accepts",
                    retryAfter: 60)
            case .refuse(.noSnapshot):
                throw PredictionError(
                    .unavailable, "'\(c.feature)' (looked up for input '\(c.input)') has no published snapshot yet",
                    retryAfter: 30)
            case .refuse(.unknownKey), .refuse(.unknownKeyWithoutInputs):
                throw PredictionError(
                    .unknownKey, "key '\(key)' is not in the snapshot of '\(c.feature)' (input '\(c.input)')")
            }
            // Only reachable if the ladder chose a rung this input lacks: a bug, reported as one, not a crash.
            throw PredictionError(.internalError, "the fallback ladder has no value for composed input '\(c.input)'")
        }
        return (filled, provenance)
    }

    /// Converts the request's inputs (and key) into one-row tensors, with errors that name the input.
    private func validate(_ request: PredictRequest) throws -> [String: Tensor] {
        var inputs = request.inputs
        if let keyName = spec.key, let key = request.key, inputs[keyName] == nil,
            let keyInput = model.metadata.inputs.first(where: { $0.name == keyName })
        {
            inputs[keyName] =
                keyInput.elementType == .string ? .string(key) : (Int64(key).map(JSONValue.integer) ?? .string(key))
        }
        do {
            let row = try RowBatch.tensors(rows: [inputs], inputs: model.metadata.inputs)
            try model.metadata.validate(row)
            return row
        } catch let error as EngineError {
            throw PredictionError(.badRequest, error.message.replacingOccurrences(of: "row 1: ", with: ""))
        }
    }
}

extension FeatureServer {
    /// Figures for the feature API: rows queued now, the cost model's estimate per row, latency percentiles.
    public struct LiveFigures: Sendable {
        public var queued: Int
        public var estimatedRowCost: Duration
        public var latency: [String: LatencyHistograms.Summary]
        /// The serving snapshot, for features with a batch section.
        public var snapshot: SnapshotInfo?
        /// The serving snapshot's age by the runtime's clock (the age its answers report).
        public var snapshotAgeSeconds: Double?
        /// Snapshot lookups since start: keys found and not found (coverage = hits / (hits + misses)).
        public var snapshotHits: Int
        public var snapshotMisses: Int
    }

    /// The feature's live figures.
    public var liveFigures: LiveFigures {
        let (queued, cost) = batcher.snapshot
        let (hits, misses) = lookups.withLock { $0 }
        return LiveFigures(
            queued: queued, estimatedRowCost: cost, latency: histograms.summaries(feature: spec.name),
            snapshot: snapshot?.info, snapshotAgeSeconds: snapshot.map { max(0, clock.now - $0.info.inputTime) },
            snapshotHits: hits, snapshotMisses: misses)
    }
}
