internal import CoreMetrics
internal import FreshlineCore
internal import FreshlineEngine
internal import Synchronization

/// Drives a feature's `AdaptiveBatcherStateMachine` with real time: requests wait on continuations, batches run
/// on the compute pool, and a timer loop wakes the state machine when it asked to wait for company.
final class RealtimeBatcher: Sendable {
    /// One row waiting for its answer.
    struct Pending: Sendable {
        let row: [String: Tensor]
        let enqueuedAt: ContinuousClock.Instant
        let continuation: CheckedContinuation<[String: JSONValue], any Error>
    }

    private let feature: String
    private let model: Model
    private let pool: ComputePool
    private let metrics: ServingMetrics
    /// The feature's batcher metric handles, made once (labels are not rebuilt per row): time queued per row
    /// (`freshline_queue_duration_seconds`), per model call (`freshline_compute_duration_seconds`) and rows per
    /// call (`freshline_batch_size`).
    private let queueTimer: CoreMetrics.Timer
    private let computeTimer: CoreMetrics.Timer
    private let batchSizes: Recorder
    private let state: Mutex<AdaptiveBatcherStateMachine<Pending>>
    /// Keeps one-off stalls (a descheduled compute thread) out of the cost model.
    private let stalls = Mutex(StallFilter())
    private let wakeups: AsyncStream<ContinuousClock.Instant>
    private let wakeupContinuation: AsyncStream<ContinuousClock.Instant>.Continuation

    init(feature: FeatureSpec, model: Model, pool: ComputePool, metrics: ServingMetrics, computeSlots: Int) {
        self.feature = feature.name
        self.model = model
        self.pool = pool
        self.metrics = metrics
        queueTimer = metrics.timer("freshline_queue_duration_seconds", [("feature", feature.name)])
        computeTimer = metrics.timer("freshline_compute_duration_seconds", [("feature", feature.name)])
        batchSizes = metrics.recorder("freshline_batch_size", [("feature", feature.name)])
        let configuration = AdaptiveBatcherStateMachine<Pending>.Configuration(
            maxBatchSize: feature.batching.maxBatchSize,
            maxQueueDelay: feature.batching.maxQueueDelay,
            maxQueueLength: feature.batching.maxQueueLength,
            computeSlots: computeSlots,
            prior: Self.measuredPrior(model)
        )
        state = Mutex(AdaptiveBatcherStateMachine(configuration: configuration))
        (wakeups, wakeupContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(64))
    }

    /// The cost model's starting point, measured on the model itself at start-up (a few calls at batch 1 and
    /// batch 16 on synthetic inputs, about 20 ms); the live fit over real batches takes over from there.
    static func measuredPrior(_ model: Model) -> BatchCostModel.Coefficients {
        let fallback = BatchCostModel.Coefficients(perRow: .microseconds(20), perBatch: .microseconds(20))
        guard let one = try? model.syntheticFeeds(batchSize: 1), let sixteen = try? model.syntheticFeeds(batchSize: 16)
        else {
            return fallback
        }
        func fastest(_ feeds: [String: Tensor], _ calls: Int) -> Duration? {
            var best: Duration?
            for _ in 0..<calls {
                let start = ContinuousClock.now
                guard (try? model.run(feeds)) != nil else { return nil }
                let elapsed = ContinuousClock.now - start
                best = min(best ?? elapsed, elapsed)
            }
            return best
        }
        guard let t1 = fastest(one, 20), let t16 = fastest(sixteen, 5) else { return fallback }
        let perRow = max(.zero, (t16 - t1) / 15)
        return BatchCostModel.Coefficients(perRow: perRow, perBatch: max(.zero, t1 - perRow))
    }

    /// Queues one validated row (tensors with a leading dimension of 1) and waits for its outputs.
    func submit(_ row: [String: Tensor], deadline: ContinuousClock.Instant) async throws -> [String: JSONValue] {
        try await withCheckedThrowingContinuation { continuation in
            let now = ContinuousClock.now
            let pending = Pending(row: row, enqueuedAt: now, continuation: continuation)
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
    /// is earlier than the pending one, and extra ticks are harmless). Ends when `finish()` is called.
    func runTimers() async {
        await withDiscardingTaskGroup { group in
            for await instant in wakeups {
                group.addTask { [self] in
                    guard (try? await Task.sleep(until: instant, clock: .continuous)) != nil else { return }
                    perform(state.withLock { $0.tick(now: .now) })
                }
            }
            // Finished: the queues are empty, so pending wake-ups (deadline checks far ahead) have nothing to do.
            group.cancelAll()
        }
    }

    func finish() { wakeupContinuation.finish() }

    private func perform(_ actions: [AdaptiveBatcherStateMachine<Pending>.Action]) {
        for action in actions {
            switch action {
            case .dispatch(let items):
                pool.submit { [self] in compute(items) }
            case .shed(let items, let reason):
                for item in items {
                    metrics.shed(feature: feature)
                    item.continuation.resume(throwing: Self.error(for: reason))
                }
            case .scheduleTick(let instant):
                wakeupContinuation.yield(instant)
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

    /// Stacks the rows, runs the model once and splits the outputs per row.
    private func run(_ items: [Pending]) throws -> [[String: JSONValue]] {
        var feeds: [String: Tensor] = [:]
        if items.count == 1 {
            // A batch of one (most batches at low load): the row's tensors are the feeds, nothing to stack.
            feeds = items[0].row
        } else {
            for input in model.metadata.inputs {
                feeds[input.name] = try Tensor.stacking(items.compactMap { $0.row[input.name] })
            }
        }
        return try RowBatch.rows(outputs: try model.run(feeds), count: items.count)
    }

    /// Runs one batch on the calling (compute) thread and answers every item.
    private func compute(_ items: [Pending]) {
        let start = ContinuousClock.now
        for item in items { queueTimer.recordNanoseconds((start - item.enqueuedAt).nanoseconds) }
        var succeeded = false
        do {
            let rows = try run(items)
            for (item, row) in zip(items, rows) { item.continuation.resume(returning: row) }
            succeeded = true
        } catch {
            // One row's data can fail a whole batch (an id outside an embedding table). Run the rows one by one so
            // that only the rows that fail get an error — a 400 when the data is at fault, not the model.
            for item in items {
                do {
                    let row = try run([item])[0]
                    item.continuation.resume(returning: row)
                } catch {
                    item.continuation.resume(throwing: PredictionError(modelCall: error))
                }
            }
        }
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
