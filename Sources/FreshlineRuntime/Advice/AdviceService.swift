internal import Foundation
public import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import FreshlineSnapshot
internal import Histogram
internal import Synchronization

/// Gathers what the advisor needs for each feature — the request log of the window, latency percentiles per
/// source (HDR histograms over the samples), the engine's time per prediction at batch 1 and at the batch
/// runner's batch size, the published snapshot's keys — and asks `Advisor` for the verdicts. Used by
/// `freshline advise` and by the server's `/v1/advice`.
public final class AdviceService: Sendable {
    let manifest: Manifest
    let models: [String: ServingModel]
    let requestLog: any RequestLogStore
    let batchStore: (any BatchStore)?
    let clock: any WallClock
    /// Where the servers on this host keep snapshot files: retained versions are read from there when their file
    /// is (no store read, no JSON parse); `nil`: from the store's chunks.
    let snapshotDirectory: String?
    /// Engine measurements per model (measured once: a fraction of a second each).
    private let measured = Mutex<[String: ComputeCost]>([:])
    /// Hashed keys of each feature's published snapshot (the latest one read).
    private let snapshotKeys = Mutex<[String: (id: Int64, hashes: Set<String>)]>([:])
    /// Hashed keys of declared entity sets (`advice.keys`).
    private let declared = Mutex<[String: Set<String>]>([:])
    /// The most samples read per feature.
    let sampleLimit: Int
    /// Where load-test runs are recorded (`freshline load`); `nil`: the reports show none.
    let loadTests: (any LoadTestStore)?

    public init(
        manifest: Manifest, models: [String: ServingModel], requestLog: any RequestLogStore,
        batchStore: (any BatchStore)?, clock: any WallClock = SystemWallClock(), sampleLimit: Int = 500_000,
        snapshotDirectory: String? = nil, loadTests: (any LoadTestStore)? = nil
    ) {
        self.loadTests = loadTests
        self.snapshotDirectory = snapshotDirectory
        self.manifest = manifest
        self.models = models
        self.requestLog = requestLog
        self.batchStore = batchStore
        self.clock = clock
        self.sampleLimit = sampleLimit
    }

    /// Advice for `features` (default: all, by name), with extra what-if scenarios per feature.
    public func report(features names: [String]? = nil, whatIf: [String: [WhatIfScenario]] = [:]) async throws
        -> AdviceReport
    {
        var now = clock.now
        var advice: [FeatureAdvice] = []
        // The process-usage ledger of the window, read once: serving CPU is shared by every feature.
        let ledger = try await requestLog.usage(since: now - manifest.advisor.windowSeconds, until: .infinity)
        for name in names ?? manifest.features.keys.sorted() {
            guard let feature = manifest.features[name] else { continue }
            var input = try await input(for: feature, now: now)
            if !ledger.isEmpty { input.usage = ServingUsage.measure(ledger, feature: feature.name) }
            // A log written by a server on an accelerated clock runs ahead of this one: end the window there.
            if let last = input.samples.last?.at, last > now {
                now = last
                input.now = last
            }
            var scenarios = Self.defaultScenarios(span: (input.samples.last?.at ?? 0) - (input.samples.first?.at ?? 0))
            scenarios += whatIf[name] ?? []
            advice.append(
                Advisor.advise(input, settings: manifest.advisor, pricing: manifest.pricing, whatIf: scenarios))
        }
        return AdviceReport(generatedAt: now, settings: manifest.advisor, pricing: manifest.pricing, features: advice)
    }

    /// Batch every 24 h and 6 h when the log spans at least one and a half intervals, else the longest of 1 h and
    /// 15 min it can replay (a replay needs traffic after the first run).
    static func defaultScenarios(span: Double) -> [WhatIfScenario] {
        let fitting = [86_400.0, 21_600, 3_600, 900].filter { $0 * 1.5 <= span }
        return (fitting.isEmpty ? [900] : Array(fitting.prefix(2))).map {
            WhatIfScenario(pattern: .batch, everySeconds: $0)
        }
    }

    /// The advisor's input for one feature.
    func input(for feature: FeatureSpec, now: Double) async throws -> AdvisorInput {
        let samples = try await requestLog.samples(
            feature: feature.name, since: now - manifest.advisor.windowSeconds, until: .infinity, limit: sampleLimit)
        var snapshotKeys: Set<String>?
        var snapshotBytes: Double?
        var rows: Double?
        var answers: [ShadowAnswer] = []
        if feature.batch != nil, let batchStore {
            if let info = try await batchStore.publishedSnapshot(feature: feature.name) {
                snapshotKeys = try await hashedKeys(info, store: batchStore)
                rows = Double(info.keyCount)
                snapshotBytes = info.file.map { Double($0.size) }
            }
            answers = try await snapshotAnswers(feature, store: batchStore)
        }
        var keySetLabel = "the published snapshot"
        if feature.batch == nil, let declared = feature.adviceKeys {
            let keys = try declaredKeys(declared)
            snapshotKeys = keys
            rows = Double(keys.count)
            keySetLabel = "the declared entity set \(declared.source.path) (advice.keys)"
        }
        var interval: Double?
        if let schedule = feature.batch?.schedule, let next = schedule.next(after: now),
            let after = schedule.next(after: next)
        {
            interval = after - next
        }
        var input = AdvisorInput(
            feature: feature, samples: samples, now: now, compute: try await compute(for: feature),
            latency: Self.latency(samples), snapshotKeyHashes: snapshotKeys, batchRowsPerRun: rows,
            refreshIntervalSeconds: interval, decision: feature.decision)
        input.snapshotAnswers = answers
        input.snapshotBytes = snapshotBytes
        input.keySetLabel = keySetLabel
        input.tokens = TokenMeasures.measure(samples)
        // Tokens per row of the newest succeeded run that counted any (an LLM upstream's run, row by row or through
        // the provider's Batch API).
        if feature.batch != nil, let batchStore,
            let run = try await batchStore.runs(feature: feature.name, limit: 20).first(where: {
                $0.state == .succeeded && $0.rowsWritten > 0 && $0.inputTokens + $0.outputTokens > 0
            })
        {
            input.tokensPerBatchRow = TokenCounts(
                input: Double(run.inputTokens) / Double(run.rowsWritten),
                output: Double(run.outputTokens) / Double(run.rowsWritten))
        }
        // The feature's load tests of the window: their own rows on the latency axis, never in the percentiles above.
        if let loadTests {
            input.loadTests = try await loadTests.loadTests(
                feature: feature.name, since: now - manifest.advisor.windowSeconds, limit: Self.loadTestLimit)
        }
        input.consumers = manifest.features.values.filter { $0.compose.contains { $0.feature == feature.name } }
            .map(\.name).sorted()
        return input
    }

    /// The answers of the retained snapshot versions (published or retired, newest 8) for a sample of keys
    /// (about `keysPerSnapshot` per version, the same keys in every version).
    func snapshotAnswers(_ feature: FeatureSpec, store: any BatchStore, keysPerSnapshot: Int = 2_000) async throws
        -> [ShadowAnswer]
    {
        guard let metadata = models[feature.model]?.metadata else { return [] }
        let extractor = DecisionExtractor(
            spec: feature.decision, outputs: feature.outputs ?? metadata.outputs.map(\.name))
        let retained = try await store.snapshots(feature: feature.name, limit: 8)
            .filter { $0.state == .published || $0.state == .retired }
        guard retained.count >= 2 else { return [] }
        let rate = Double(keysPerSnapshot) / Double(max(1, retained.map(\.keyCount).max() ?? 1))
        var answers: [ShadowAnswer] = []
        for info in retained {
            try await forEachKey(of: info, store: store) { key, outputs in
                guard KeyHash.isSampled(KeyHash.value(key), rate: rate), let outputs = try outputs(),
                    let decision = extractor.decision(outputs)
                else { return }
                answers.append(ShadowAnswer(keyHash: KeyHash.hex(key), computedAt: info.inputTime, decision: decision))
            }
        }
        return answers
    }

    /// Engine time per prediction for the feature's model at batch 1 and at its batch runner's rows per thread.
    func compute(for feature: FeatureSpec) async throws -> ComputeCost {
        let batchRows = feature.batch.map { max(1, min(4096, $0.chunkRows / max(1, $0.threads))) } ?? 2048
        let key = "\(feature.model)@\(batchRows)"
        if let known = measured.withLock({ $0[key] }) { return known }
        guard let serving = models[feature.model] else {
            throw AdviceError(message: "feature '\(feature.name)': model '\(feature.model)' is not loaded")
        }
        guard let model = serving.local else {
            // An upstream's cost is its calls and tokens, not engine time on this machine: with token prices the
            // advisor prices its tokens (`pricing.models`); without, its calls are not priced (said in the evidence),
            // and the other features' advice goes on.
            var cost = ComputeCost.upstream(model: feature.model, batchSize: batchRows)
            if manifest.pricing.models[feature.model] == nil {
                cost.basis += "; not priced: pricing.models gives it no token prices"
            }
            return cost
        }
        // On a thread of its own, bounded in time (`Model.measure`'s limit): a model taking seconds a row is measured on a few calls, never
        // for hours (the traffic's and the runs' own times are preferred where they exist).
        let budget = Self.measurementBudget
        let cost = try await Self.offThread {
            let half = budget / 2
            let one = try model.measure(feeds: model.syntheticFeeds(batchSize: 1), seconds: half / 2, limit: half)
            let perCall = one.perCallNanoseconds / 1e9
            // Rows per call at most what the rest of the budget can afford at batch 1's speed.
            let rows = min(batchRows, max(1, Int(half / max(perCall, 1e-9))))
            let many =
                rows > 1
                ? try model.measure(feeds: model.syntheticFeeds(batchSize: rows), seconds: half / 2, limit: half) : one
            let perRow = many.perRowNanoseconds / 1e9
            return ComputeCost(
                realtimeSecondsPerPrediction: perCall, batchSecondsPerPrediction: perRow, batchSize: rows,
                basis: "engine, median of \(one.calls) timed call\(one.calls == 1 ? "" : "s"): "
                    + "\(CostModel.formatSeconds(perCall)) at batch 1, \(CostModel.formatSeconds(perRow))/row at "
                    + "batch \(rows) (\(many.calls) call\(many.calls == 1 ? "" : "s"))"
                    + (rows < batchRows
                        ? "; the model is too slow to time batches of \(batchRows) within the budget" : ""))
        }
        measured.withLock { $0[key] = cost }
        return cost
    }

    /// How long the advisor measures one model (at batch 1 and in batches together).
    static let measurementBudget = 2.0

    /// Hashes of the keys of a feature's declared entity set (`advice.keys`), read once.
    func declaredKeys(_ keys: AdviceKeys) throws -> Set<String> {
        let cacheKey = "\(keys.source)#\(keys.keyColumn)"
        if let known = declared.withLock({ $0[cacheKey] }) { return known }
        let reader = try EntitySources.open(keys.source, manifestPath: manifest.path, skipping: 0)
        var hashes = Set<String>()
        while true {
            let records = try reader.next(maxRows: 65_536)
            if records.isEmpty { break }
            for record in records {
                guard case .success(let fields) = record.fields else { continue }
                switch fields[keys.keyColumn] {
                case .string(let s)?: hashes.insert(KeyHash.hex(s))
                case .integer(let i)?: hashes.insert(KeyHash.hex(String(i)))
                default: continue
                }
            }
        }
        declared.withLock { $0[cacheKey] = hashes }
        return hashes
    }

    /// Each key of a snapshot with its outputs (decoded when asked), from the version's file when this process has
    /// a snapshot folder (each key's live row: a key written twice gives its later row, as served), else from the
    /// store's chunks (a snapshot not sealed, in a process without a folder).
    func forEachKey(
        of info: SnapshotInfo, store: any BatchStore,
        _ body: (String, () throws -> [String: JSONValue]?) throws -> Void
    ) async throws {
        if let directory = snapshotDirectory {
            let file = try await SnapshotStorage(store: store, directory: directory).open(info)
            for row in file.rows where file.isLive(row: row) {
                try body(file.key(row: row)) { file.outputs(row: row) }
            }
            return
        }
        for chunk in try await store.chunks(snapshotID: info.id) {
            for (key, bytes) in zip(chunk.keys, chunk.outputs) {
                try body(key) {
                    guard case .object(let outputs) = try JSONValue.parse(bytes) else { return nil }
                    return outputs
                }
            }
        }
    }

    func hashedKeys(_ info: SnapshotInfo, store: any BatchStore) async throws -> Set<String> {
        if let known = snapshotKeys.withLock({ $0[info.feature] }), known.id == info.id { return known.hashes }
        var hashes = Set<String>()
        try await forEachKey(of: info, store: store) { key, _ in hashes.insert(KeyHash.hex(key)) }
        snapshotKeys.withLock { $0[info.feature] = (info.id, hashes) }
        return hashes
    }

    /// The most load tests a report shows per feature (the newest).
    static let loadTestLimit = 10

    /// p50/p95/p99/p99.9 per source over the successful samples, from HDR histograms (microseconds, three
    /// significant digits).
    static func latency(_ samples: [RequestLogSample]) -> [SourceLatency] {
        latency(
            observations: samples.lazy.filter { $0.outcome == "ok" }.map {
                ($0.source?.rawValue ?? "none", $0.latencySeconds)
            })
    }

    /// p50/p95/p99/p99.9 per source over (source, seconds) observations, from HDR histograms (microseconds, three
    /// significant digits); a load test's summary is measured the same way.
    static func latency(observations: some Sequence<(String, Double)>) -> [SourceLatency] {
        var histograms: [String: Histogram<UInt64>] = [:]
        for (source, seconds) in observations {
            if histograms[source] == nil {
                histograms[source] = Histogram<UInt64>(
                    lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000,
                    numberOfSignificantValueDigits: .three)
            }
            _ = histograms[source]?.record(UInt64(min(3_600_000_000, max(1, seconds * 1e6))))
        }
        return histograms.keys.sorted().map { source in
            let h = histograms[source]!
            func p(_ q: Double) -> Double { Double(h.valueAtPercentile(q)) / 1e6 }
            return SourceLatency(
                source: source, count: Int(h.totalCount), p50: p(50), p95: p(95), p99: p(99), p999: p(99.9))
        }
    }

    static func offThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try work() }) }
            thread.name = "freshline-advisor"
            thread.start()
        }
    }
}

/// Why advice could not be given.
public struct AdviceError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
