internal import CoreMetrics
internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import FreshlineUpstream
internal import Synchronization

/// Drives a feature's `AdaptiveBatcherStateMachine` with real time: requests wait on continuations, batches of a
/// local model run on the compute pool, batches of an upstream model are one network call each (run as child tasks
/// of `runTimers`), and a timer loop wakes the state machine when it asked to wait for company.
final class RealtimeBatcher: Sendable {
    /// One row waiting for its answer.
    struct Pending: Sendable {
        let row: [String: Tensor]
        let enqueuedAt: ContinuousClock.Instant
        let deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<RowAnswer, any Error>
    }

    /// One row's outputs and the model version that computed them.
    struct RowAnswer: Sendable {
        var outputs: [String: JSONValue]
        var modelVersion: String
        /// Tokens the row's call used (LLM upstreams).
        var usage: TokenUsage? = nil
        /// Wall time of the model call that computed the row, and the rows in it (queueing excluded).
        var computeSeconds: Double? = nil
        var computeRows: Int? = nil
    }

    /// What the `runTimers` loop is asked to do: wake the state machine at an instant, or call the upstream with a
    /// batch.
    private enum Work: Sendable {
        case tick(ContinuousClock.Instant)
        case call([Pending])
    }

    private let feature: String
    private let model: ServingModel
    private let pool: ComputePool
    private let metrics: ServingMetrics
    private let usage: FeatureCounters
    /// The feature's batcher metric handles, made once (labels are not rebuilt per row): time queued per row
    /// (`freshline_queue_duration_seconds`), per model call (`freshline_compute_duration_seconds`) and rows per
    /// call (`freshline_batch_size`).
    private let queueTimer: CoreMetrics.Timer
    private let computeTimer: CoreMetrics.Timer
    private let batchSizes: Recorder
    private let state: Mutex<AdaptiveBatcherStateMachine<Pending>>
    /// Keeps one-off stalls (a descheduled compute thread) out of the cost model.
    private let stalls = Mutex(StallFilter())
    /// Unbounded: a dropped `call` would leave its rows waiting forever; each element is handled at once.
    private let work: AsyncStream<Work>
    private let workContinuation: AsyncStream<Work>.Continuation

    /// `computeSlots`: batches of a local model computed at once (the compute threads); an upstream model's batches
    /// in flight at once are its connection pool's size instead.
    init(feature: FeatureSpec, model: ServingModel, pool: ComputePool, metrics: ServingMetrics, computeSlots: Int) {
        self.feature = feature.name
        self.model = model
        self.pool = pool
        self.metrics = metrics
        usage = metrics.ledger.counters(for: feature.name)
        queueTimer = metrics.timer("freshline_queue_duration_seconds", [("feature", feature.name)])
        computeTimer = metrics.timer("freshline_compute_duration_seconds", [("feature", feature.name)])
        batchSizes = metrics.recorder("freshline_batch_size", [("feature", feature.name)])
        let configuration = AdaptiveBatcherStateMachine<Pending>.Configuration(
            maxBatchSize: feature.batching.maxBatchSize,
            maxQueueDelay: feature.batching.maxQueueDelay,
            maxQueueLength: feature.batching.maxQueueLength,
            computeSlots: model.spec.upstream?.limits.maxConnections ?? computeSlots,
            prior: model.local.map(Self.measuredPrior) ?? Self.upstreamPrior
        )
        state = Mutex(AdaptiveBatcherStateMachine(configuration: configuration))
        (work, workContinuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    /// The cost model's starting point for an upstream model, which is not measured at start-up (a call costs
    /// money and rate-limit budget): a few milliseconds a call. The live fit over real calls takes over at once.
    static let upstreamPrior = BatchCostModel.Coefficients(perRow: .microseconds(100), perBatch: .milliseconds(5))

    /// The cost model's starting point, measured on the model itself at start-up: calls at batch 1 and batch 16 on
    /// synthetic inputs, within about `priorBudget` (20 ms for a fast model). A slow model is called once at batch 1
    /// (one call is the least that can be timed; a model taking seconds delays start-up by that call, not by 25),
    /// and batch 16 is timed only when it fits the budget; the live fit over real batches takes over from there.
    static func measuredPrior(_ model: Model) -> BatchCostModel.Coefficients {
        let fallback = BatchCostModel.Coefficients(perRow: .microseconds(20), perBatch: .microseconds(20))
        guard let one = try? model.syntheticFeeds(batchSize: 1) else { return fallback }
        let begin = ContinuousClock.now
        func fastest(_ feeds: [String: Tensor], _ calls: Int) -> Duration? {
            var best: Duration?
            for _ in 0..<calls {
                let start = ContinuousClock.now
                guard (try? model.run(feeds)) != nil else { return nil }
                let elapsed = ContinuousClock.now - start
                best = min(best ?? elapsed, elapsed)
                if ContinuousClock.now - begin > priorBudget / 2 { break }
            }
            return best
        }
        guard let t1 = fastest(one, 20) else { return fallback }
        // Five calls of 16 rows, each about 16 × t1 at most: only when they fit what is left of the budget.
        guard t1 * 80 < priorBudget - (ContinuousClock.now - begin),
            let sixteen = try? model.syntheticFeeds(batchSize: 16), let t16 = fastest(sixteen, 5)
        else {
            return BatchCostModel.Coefficients(perRow: t1, perBatch: .zero)
        }
        let perRow = max(.zero, (t16 - t1) / 15)
        return BatchCostModel.Coefficients(perRow: perRow, perBatch: max(.zero, t1 - perRow))
    }

    /// How long start-up may spend measuring a model's prior (beyond one call).
    static let priorBudget = Duration.seconds(1)

    /// Queues one validated row (tensors with a leading dimension of 1) and waits for its outputs.
    func submit(_ row: [String: Tensor], deadline: ContinuousClock.Instant) async throws -> RowAnswer {
        try await withCheckedThrowingContinuation { continuation in
            let now = ContinuousClock.now
            let pending = Pending(row: row, enqueuedAt: now, deadline: deadline, continuation: continuation)
            let actions = state.withLock { $0.enqueue(pending, deadline: deadline, now: now) }
            perform(actions)
        }
    }

    /// Rows queued now, and the cost model's estimate for a batch of one, for the feature API.
    var snapshot: (queued: Int, estimatedRowCost: Duration) {
        state.withLock { ($0.queuedCount, $0.estimatedCost(rows: 1)) }
    }

    /// Whether a row queued now would be answered by `deadline`, by the cost model (`projectedFinish`).
    func canMeet(_ deadline: ContinuousClock.Instant) -> Bool {
        let now = ContinuousClock.now
        return state.withLock { $0.projectedFinish(now: now) } <= deadline
    }

    /// Whether nothing is queued or running.
    var isIdle: Bool { state.withLock { $0.isIdle } }

    /// Stops accepting rows; queued rows are still computed.
    func beginShutdown() {
        perform(state.withLock { $0.beginShutdown(now: .now) })
    }

    /// The timer loop: each requested wake-up gets its own sleeping child task, so a new, earlier request is
    /// never stuck behind a later one already sleeping (the state machine only asks again when the new time
    /// is earlier than the pending one, and extra ticks are harmless). An upstream model's batches are child tasks
    /// here too. Ends when `finish()` is called.
    func runTimers() async {
        await withDiscardingTaskGroup { group in
            for await item in work {
                switch item {
                case .tick(let instant):
                    group.addTask { [self] in
                        guard (try? await Task.sleep(until: instant, clock: .continuous)) != nil else { return }
                        perform(state.withLock { $0.tick(now: .now) })
                    }
                case .call(let items):
                    group.addTask { [self] in await call(items) }
                }
            }
            // Finished: the queues are empty, so pending wake-ups (deadline checks far ahead) have nothing to do.
            group.cancelAll()
        }
    }

    func finish() { workContinuation.finish() }

    private func perform(_ actions: [AdaptiveBatcherStateMachine<Pending>.Action]) {
        for action in actions {
            switch action {
            case .dispatch(let items):
                if model.local != nil {
                    pool.submit { [self] in compute(items) }
                } else {
                    workContinuation.yield(.call(items))
                }
            case .shed(let items, let reason):
                for item in items {
                    metrics.shed(feature: feature)
                    item.continuation.resume(throwing: Self.error(for: reason))
                }
            case .scheduleTick(let instant):
                workContinuation.yield(.tick(instant))
            }
        }
    }

    static func error(for reason: AdaptiveBatcherStateMachine<Pending>.ShedReason) -> PredictionError {
        switch reason {
        case .queueFull: PredictionError(.overloaded, "the feature's queue is full", retryAfter: 1)
        case .deadlineUnmeetable:
            PredictionError(.overloaded, "the request cannot be answered within its deadline", retryAfter: 1)
        case .shuttingDown: PredictionError(.unavailable, "the server is shutting down", retryAfter: 1)
        }
    }

    /// The rows' tensors stacked into one feed per input.
    private func stack(_ items: [Pending]) throws -> [String: Tensor] {
        // A batch of one (most batches at low load): the row's tensors are the feeds, nothing to stack.
        if items.count == 1 { return items[0].row }
        var feeds: [String: Tensor] = [:]
        for input in model.metadata.inputs {
            feeds[input.name] = try Tensor.stacking(items.compactMap { $0.row[input.name] })
        }
        return feeds
    }

    /// Stacks the rows, runs the local model once and splits the outputs per row.
    private func run(_ items: [Pending], _ local: Model) throws -> [RowAnswer] {
        let version = local.metadata.version
        let feeds = try stack(items)
        let start = ContinuousClock.now
        let outputs = try local.run(feeds)
        let seconds = (ContinuousClock.now - start).seconds
        usage.modelCall(seconds: seconds)
        return try RowBatch.rows(outputs: outputs, count: items.count).map {
            RowAnswer(outputs: $0, modelVersion: version, computeSeconds: seconds, computeRows: items.count)
        }
    }

    /// Runs one batch of a local model on the calling (compute) thread and answers every item.
    private func compute(_ items: [Pending]) {
        guard let local = model.local else { return }
        let start = ContinuousClock.now
        for item in items { queueTimer.recordNanoseconds((start - item.enqueuedAt).nanoseconds) }
        var succeeded = false
        do {
            let rows = try run(items, local)
            for (item, row) in zip(items, rows) { item.continuation.resume(returning: row) }
            succeeded = true
        } catch {
            // One row's data can fail a whole batch (an id outside an embedding table). Run the rows one by one so
            // that only the rows that fail get an error — a 400 when the data is at fault, not the model.
            for item in items {
                do {
                    let row = try run([item], local)[0]
                    item.continuation.resume(returning: row)
                } catch {
                    item.continuation.resume(throwing: PredictionError(modelCall: error))
                }
            }
        }
        finished(items, started: start, succeeded: succeeded)
    }

    /// Sends one batch to the upstream model (one call, by the latest deadline among its rows: a row whose own
    /// deadline passes first is answered as a timeout by the feature) and answers every item.
    private func call(_ items: [Pending]) async {
        guard !items.isEmpty else { return }
        let start = ContinuousClock.now
        for item in items { queueTimer.recordNanoseconds((start - item.enqueuedAt).nanoseconds) }
        var succeeded = false
        do {
            let deadline = items.map(\.deadline).max() ?? start
            let answer = try await model.run(
                try stack(items), rows: items.count, pool: pool, priority: .realtime, deadline: deadline)
            let seconds = (ContinuousClock.now - start).seconds
            let rows = try RowBatch.rows(outputs: answer.outputs, count: items.count)
            let usage = answer.usage.count == items.count ? answer.usage.map(Optional.some) : nil
            for (index, (item, row)) in zip(items, rows).enumerated() {
                item.continuation.resume(
                    returning: RowAnswer(
                        outputs: row, modelVersion: answer.modelVersion, usage: usage?[index], computeSeconds: seconds,
                        computeRows: items.count))
            }
            succeeded = true
        } catch {
            let failure = PredictionError(modelCall: error)
            for item in items { item.continuation.resume(throwing: failure) }
        }
        finished(items, started: start, succeeded: succeeded)
    }

    /// Records a finished batch in the metrics and the cost model, and performs what the state machine does next.
    private func finished(_ items: [Pending], started start: ContinuousClock.Instant, succeeded: Bool) {
        let duration = ContinuousClock.now - start
        computeTimer.recordNanoseconds(duration.nanoseconds)
        batchSizes.record(items.count)
        // A failed batch says nothing about the model's cost, nor does a one-off stall: keep them out of the model.
        perform(
            state.withLock { machine in
                let learn =
                    succeeded
                    && stalls.withLock {
                        $0.admits(duration: duration, expected: machine.estimatedCost(rows: items.count))
                    }
                return machine.batchFinished(rows: items.count, duration: duration, now: .now, recordCost: learn)
            }
        )
    }
}
