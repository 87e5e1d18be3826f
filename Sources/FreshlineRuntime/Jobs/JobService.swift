public import FreshlineCore
internal import FreshlineEngine
public import FreshlineJSON
public import FreshlineUpstream
internal import Logging
public import ServiceLifecycle
internal import Synchronization

/// The async pattern: submissions go to the durable queue in the store; workers (inside `freshline serve`, or
/// `freshline worker` processes on the same store) lease jobs, compute their rows on the compute pool in chunks,
/// record progress and partial results as rows finish, and record exactly one result per job.
public final class JobService: Service {
    private let servers: [String: FeatureServer]
    /// The store jobs live in.
    public let store: any JobStore
    private let pool: ComputePool
    private let metrics: ServingMetrics
    private let logger: Logger
    private let workers: Int
    private let idlePoll: Duration
    private let sweepInterval: Duration = .seconds(1)
    /// The most unfinished jobs one owner (token) may have; `nil`: no limit.
    private let maxUnfinishedPerOwner: Int?
    /// How long finished jobs and webhook deliveries are kept.
    private let retention: Duration
    /// The most rows one retention pass deletes per table, so a backlog is worked off in short transactions.
    static let retentionBatch = 1000
    /// How often retention runs while there is no backlog (with one, every sweep).
    private let retentionInterval: Duration = .seconds(60)
    /// Delivers job events to webhooks, when a webhook store is configured.
    public let webhooks: WebhookDispatcher?
    /// The event streams that follow jobs: one store poll per job, however many streams follow it.
    public let followers: JobFollowers
    private let signals = Signals()
    private static let queueSignal = "queue"

    /// Real time, for leases, heartbeats and the stamps other processes compare: never accelerated by
    /// `--clock-speed`, which moves only the stamps the advisor reads.
    let systemClock: any WallClock = SystemWallClock()

    /// Idle workers poll every `idlePoll` (default 50 ms); on a store that announces submissions (PostgreSQL
    /// `NOTIFY`, see `handle`) the runtime passes a longer one, a backstop.
    init(
        servers: [String: FeatureServer], store: any JobStore, pool: ComputePool, metrics: ServingMetrics,
        logger: Logger, workers: Int, webhooks: WebhookDispatcher?,
        idlePoll: Duration? = nil, maxStreams: Int = 256, maxStreamsPerCaller: Int = 16,
        maxUnfinishedPerOwner: Int? = nil, retention: Duration = .seconds(7 * 86_400)
    ) {
        self.maxUnfinishedPerOwner = maxUnfinishedPerOwner
        self.retention = retention
        self.webhooks = webhooks
        followers = JobFollowers(store: store, perCaller: maxStreamsPerCaller, server: maxStreams)
        self.servers = servers
        self.store = store
        self.pool = pool
        self.metrics = metrics
        self.logger = logger
        self.workers = workers
        self.idlePoll = idlePoll ?? .milliseconds(50)
    }

    private var policies: [String: JobPolicy] { servers.mapValues(\.spec.jobs) }

    /// Queues `rows` for `feature` on behalf of `owner` (the caller's token name). Every row is checked first (a row
    /// the model cannot use is a 400 now, not a failed job later). With an idempotency key, a repeated submission
    /// returns the first job. Throws `JobStoreError.tooManyJobs` when `owner` already has the most unfinished jobs
    /// allowed (`server.max_queued_jobs_per_token`).
    public func submit(
        feature: String, rows: [PredictRequest], owner: String, idempotencyKey: String?, requestHash: String?,
        webhookURL: String? = nil
    ) async throws -> (job: Job, created: Bool) {
        guard let server = servers[feature] else { throw PredictionError(.notFound, "no feature named '\(feature)'") }
        let target = webhookURL ?? server.spec.webhook
        if let target {
            guard let webhooks else { throw PredictionError(.badRequest, "this server does not send webhooks") }
            if let problem = webhooks.check(target) { throw PredictionError(.badRequest, "webhook_url: \(problem)") }
        }
        guard !rows.isEmpty else { throw PredictionError(.badRequest, "a job needs at least one row") }
        for (index, row) in rows.enumerated() {
            do { _ = try server.checkRow(row) } catch let error as PredictionError {
                throw PredictionError(.badRequest, rows.count == 1 ? error.message : "rows[\(index)]: \(error.message)")
            }
        }
        let input = JSONValue.array(
            rows.map { row in
                .object(["key": row.key.map(JSONValue.string) ?? .null, "inputs": .object(row.inputs)])
            }
        ).serialized()
        let now = systemClock.now
        let policy = server.spec.jobs
        let job = Job(
            id: RandomID.make("job_"), feature: feature,
            input: input, rowsTotal: rows.count, maxAttempts: policy.maxAttempts, createdAt: now,
            deadlineAt: now + policy.deadline.seconds, idempotencyKey: idempotencyKey, requestHash: requestHash,
            webhookURL: target, owner: owner)
        let result = try await store.submit(job, maxUnfinished: maxUnfinishedPerOwner)
        if result.created {
            metrics.jobSubmitted(feature: feature)
            signals.fire(Self.queueSignal)
        }
        return result
    }

    /// Cancels a job and reports the event to its webhook; `nil` when it already ended or does not exist.
    public func cancel(id: String) async throws -> Job? {
        guard let canceled = try await store.cancel(id: id, now: systemClock.now) else { return nil }
        signals.fire(id)
        await webhooks?.jobEnded(canceled)
        return canceled
    }

    /// Waits until the job ends or `timeout` passes; returns its latest state.
    public func wait(for id: String, timeout: Duration) async throws -> Job? {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            // Registered before the check, so a finish between the check and the wait still wakes it.
            let ticket = signals.register(id)
            let current: Job?
            do { current = try await store.job(id: id) } catch {
                signals.discard(ticket)
                throw error
            }
            guard let job = current, !job.state.isFinal, clock.now < deadline else {
                signals.discard(ticket)
                return current
            }
            // Woken at once when this process finishes the job; polls for jobs finished by other processes.
            await signals.wait(ticket, timeout: min(.milliseconds(100), deadline - clock.now))
            try Task.checkCancellation()
        }
    }

    /// Runs `workers` worker loops until graceful shutdown or cancellation; then each gives its job back to the
    /// queue (the serving runtime's step 2 of shutdown).
    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.runUntilCancelled() }
    }

    private func runUntilCancelled() async {
        await withDiscardingTaskGroup { group in
            if let webhooks { group.addTask { await webhooks.run() } }
            group.addTask { await self.followers.run() }
            for index in 0..<max(0, workers) {
                group.addTask { await self.workLoop(owner: "\(RunOwner.current)/w\(index)") }
            }
            group.addTask {
                // The sweeper: queued jobs past their deadline expire even when no worker looks at them; finished
                // jobs and webhook deliveries past the retention are deleted, a bounded batch at a time (every
                // sweep while a backlog lasts, else once per `retentionInterval`).
                let clock = ContinuousClock()
                var nextRetention = clock.now
                while !Task.isCancelled {
                    await self.expireOverdue()
                    await self.updateQueueFigures()
                    if clock.now >= nextRetention {
                        let backlog = await self.applyRetention(now: self.systemClock.now)
                        nextRetention = clock.now + (backlog ? .zero : self.retentionInterval)
                    }
                    try? await Task.sleep(for: self.sweepInterval)
                }
            }
        }
    }

    /// Acts on a shared store's announcement (the runtime listens once for the whole process): wakes idle workers
    /// when another process queues a job, and waiters (`Prefer: wait`, event streams) when another process ends theirs.
    func handle(_ event: StoreEvent) {
        switch event {
        case .jobsQueued(let feature) where servers[feature] != nil && workers > 0: signals.fire(Self.queueSignal)
        case .jobEnded(let id): signals.fire(id)
        default: break
        }
    }

    private func expireOverdue() async {
        guard let expired = try? await store.expireOverdue(now: systemClock.now, limit: 1000) else { return }
        for job in expired {
            signals.fire(job.id)
            await webhooks?.jobEnded(job)
        }
    }

    /// One retention pass, as the sweeper runs it: deletes a batch of at most 1,000 finished jobs and of finished
    /// webhook deliveries older than the retention at `now` (seconds since 1970); `true` when a batch was full (more
    /// may be waiting). Errors are logged, not thrown: the next pass tries again.
    @discardableResult
    public func applyRetention(now: Double) async -> Bool {
        let cutoff = now - retention.seconds
        var full = false
        do {
            let jobs = try await store.deleteFinishedJobs(finishedBefore: cutoff, limit: Self.retentionBatch)
            full = jobs >= Self.retentionBatch
            if let webhooks {
                let deliveries = try await webhooks.store.deleteDeliveries(
                    createdBefore: cutoff, limit: Self.retentionBatch)
                full = full || deliveries >= Self.retentionBatch
            }
        } catch {
            logger.warning("job retention: cannot delete old jobs or webhook deliveries: \(error)")
        }
        return full
    }

    private func updateQueueFigures() async {
        for feature in servers.keys {
            guard let (counts, oldest) = try? await store.queueFigures(feature: feature) else { continue }
            metrics.jobQueue(
                feature: feature, counts: counts, oldestQueuedSeconds: oldest.map { max(0, systemClock.now - $0) } ?? 0)
        }
    }

    private func workLoop(owner: String) async {
        let features = servers.keys.sorted()
        while !Task.isCancelled {
            let ticket = signals.register(Self.queueSignal)
            let leased: Job?
            do {
                leased = try await store.lease(
                    features: features, owner: owner, now: systemClock.now, policies: policies)
            } catch {
                signals.discard(ticket)
                logger.error("job queue: cannot lease: \(error)")
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            guard let job = leased else {
                await signals.wait(ticket, timeout: idlePoll)
                continue
            }
            signals.discard(ticket)
            await execute(job, owner: owner)
        }
    }

    /// Computes a leased job's rows in chunks; records progress after each chunk and the result at the end.
    func execute(_ job: Job, owner: String) async {
        guard let server = servers[job.feature] else { return }
        let policy = server.spec.jobs
        let rows: [PredictRequest]
        do { rows = try Self.decodeRows(job.input) } catch {
            _ = try? await store.fail(
                id: job.id, owner: owner, error: "the stored input cannot be read: \(error)", retryable: false,
                now: systemClock.now, policy: policy)
            return
        }
        var results: [JSONValue] = []
        results.reserveCapacity(rows.count)
        let chunk = max(32, rows.count / 50)
        var index = 0
        while index < rows.count {
            if Task.isCancelled {
                _ = try? await store.release(id: job.id, owner: owner, now: systemClock.now)
                return
            }
            let slice = Array(rows[index..<min(rows.count, index + chunk)])
            do {
                if server.model.streams {
                    // The chunk's rows stream: their text so far is written out while they run.
                    guard
                        let answers = try await computeStreaming(
                            slice, first: index, finished: results, job: job, owner: owner, server: server)
                    else { return }
                    results += answers
                } else {
                    results += try await compute(slice, server: server, submittedAt: job.createdAt)
                }
            } catch {
                metrics.jobAttemptFailed(feature: job.feature)
                if server.model.streams {
                    // The failed call's text so far is not an answer: the partial result keeps the finished rows.
                    _ = try? await store.progress(
                        id: job.id, owner: owner, rowsDone: index, partial: JSONValue.array(results).serialized(),
                        now: systemClock.now)
                }
                let failed = try? await store.fail(
                    id: job.id, owner: owner, error: "\(error)", retryable: true, now: systemClock.now, policy: policy)
                if let failed, failed.state.isFinal {
                    signals.fire(job.id)
                    await webhooks?.jobEnded(failed)
                }
                return
            }
            index += slice.count
            if index < rows.count {
                let partial = JSONValue.array(results).serialized()
                let now = systemClock.now
                // Losing the lease (expired and taken, or the job canceled) stops this worker's attempt.
                let progressed = try? await store.progress(
                    id: job.id, owner: owner, rowsDone: index, partial: partial, now: now)
                let extended = try? await store.heartbeat(id: job.id, owner: owner, now: now, policy: policy)
                guard progressed != nil, extended != nil else { return }
            }
        }
        // `worker`: which process (host:pid/worker) computed the result, when several share the queue.
        let result = JSONValue.object([
            "feature": .string(job.feature), "worker": .string(owner), "results": .array(results),
        ]).serialized()
        if case .recorded(let done)? = try? await store.complete(id: job.id, result: result, now: systemClock.now) {
            // Time to completion: from submission to the recorded result (queueing and retries included).
            metrics.jobFinished(
                feature: job.feature, duration: .milliseconds(Int64(max(0, systemClock.now - job.createdAt) * 1000)))
            signals.fire(job.id)
            await webhooks?.jobEnded(done)
        }
    }

    /// How often a streaming job's text so far is written to the store (at most), and so how often its event
    /// streams can show it: a store write per token would cost more than the generation.
    static let partialInterval = Duration.milliseconds(100)

    /// What ended a streaming chunk.
    private enum StreamingChunk: Sendable {
        /// The chunk's answers.
        case answered([JSONValue])
        /// The worker lost the job (canceled, or its lease expired and was taken): the call was stopped.
        case lost
        /// The writer of the text so far stopped because the chunk ended.
        case stopped
    }

    /// Computes a chunk of a streaming model's rows (`first` is the index of its first row in the job, `finished`
    /// the answers of the rows before it) while writing their text so far to the store as the job's partial result,
    /// at most every `partialInterval`, and extending the lease on the way (a long generation outlives the
    /// visibility timeout). `nil` when the worker lost the job: the model call is cancelled, nothing is recorded.
    private func computeStreaming(
        _ rows: [PredictRequest], first: Int, finished: [JSONValue], job: Job, owner: String, server: FeatureServer
    ) async throws -> [JSONValue]? {
        let texts = StreamedTexts()
        let outcome = try await withThrowingTaskGroup(of: StreamingChunk.self) { group in
            group.addTask {
                .answered(
                    try await self.compute(rows, server: server, submittedAt: job.createdAt) { row, text in
                        texts.update(row: row, text: text)
                    })
            }
            group.addTask {
                await self.writePartials(texts, rows: rows, first: first, finished: finished, job: job, owner: owner)
            }
            defer { group.cancelAll() }
            while let next = try await group.next() {
                switch next {
                case .answered, .lost: return next
                case .stopped: continue
                }
            }
            return StreamingChunk.stopped
        }
        if case .answered(let answers) = outcome { return answers }
        return nil
    }

    /// Writes the streamed text so far of a chunk's rows as the job's partial result whenever it changed, at most
    /// every `partialInterval`, until cancelled (`.stopped`) or the job is lost (`.lost`); heart-beats the lease
    /// every third of the visibility timeout. A store error skips one write; the next one catches up.
    private func writePartials(
        _ texts: StreamedTexts, rows: [PredictRequest], first: Int, finished: [JSONValue], job: Job, owner: String
    ) async -> StreamingChunk {
        let policy = servers[job.feature]?.spec.jobs ?? JobPolicy()
        let clock = ContinuousClock()
        var written = 0
        var lastHeartbeat = clock.now
        while true {
            do { try await Task.sleep(for: Self.partialInterval) } catch { return .stopped }
            let (current, version) = texts.current
            if version != written {
                written = version
                var partial = finished
                for (row, request) in rows.enumerated() {
                    guard let text = current[row] else {
                        partial.append(.null)
                        continue
                    }
                    partial.append(
                        .object([
                            "key": request.key.map(JSONValue.string) ?? .null, "state": .string("streaming"),
                            "text": .string(text),
                        ]))
                }
                while partial.count > finished.count, partial.last == .null { partial.removeLast() }
                do {
                    let recorded = try await store.progress(
                        id: job.id, owner: owner, rowsDone: first, partial: JSONValue.array(partial).serialized(),
                        now: systemClock.now)
                    if recorded == nil { return .lost }
                } catch {
                    // Cancelled mid-write: the chunk has ended, and its answers are recorded next.
                    if Task.isCancelled { return .stopped }
                    logger.warning("job \(job.id): cannot record its streamed text: \(error)")
                }
            }
            if clock.now - lastHeartbeat >= policy.visibilityTimeout / 3 {
                lastHeartbeat = clock.now
                do {
                    let extended = try await store.heartbeat(
                        id: job.id, owner: owner, now: systemClock.now, policy: policy)
                    if extended == nil { return .lost }
                } catch {
                    if Task.isCancelled { return .stopped }
                    logger.warning("job \(job.id): cannot extend its lease: \(error)")
                }
            }
        }
    }

    /// Answers a chunk of rows on the compute pool: one model call for the rows that convert, an error object for
    /// each row that does not. Throws when the model fails on valid rows (the attempt is retried). A streaming
    /// model reports each row's text so far to `partial` (by the row's index in `rows`).
    private func compute(
        _ rows: [PredictRequest], server: FeatureServer, submittedAt: Double,
        partial: (@Sendable (_ row: Int, _ text: String) -> Void)? = nil
    ) async throws -> [JSONValue] {
        var answers = [JSONValue?](repeating: nil, count: rows.count)
        var tensors: [[String: Tensor]] = []
        var positions: [Int] = []
        for (i, row) in rows.enumerated() {
            do {
                tensors.append(try server.checkRow(row))
                positions.append(i)
            } catch let error as PredictionError {
                answers[i] = .object([
                    "error": .object(["code": .string("bad_request"), "message": .string(error.message)])
                ])
            }
        }
        if !tensors.isEmpty {
            let model = server.model
            let selected = server.spec.outputs
            var feeds: [String: Tensor] = [:]
            for input in model.metadata.inputs {
                feeds[input.name] = try Tensor.stacking(tensors.compactMap { $0[input.name] })
            }
            // A local model on the compute pool; an upstream one at async priority, within its own call timeout.
            // The model numbers the rows it was given; `partial` numbers the chunk's.
            let called = positions
            let started = ContinuousClock.now
            let answer = try await model.run(
                feeds, rows: tensors.count, pool: pool, priority: .async, deadline: nil,
                partial: partial.map { report -> PartialText in { row, text in report(called[row], text) } })
            let computeSeconds = (ContinuousClock.now - started).seconds
            server.recordAsyncCall(seconds: computeSeconds, rows: tensors.count)
            let outputs = try RowBatch.rows(outputs: answer.outputs, count: tensors.count)
            let now = systemClock.now
            for (k, position) in positions.enumerated() {
                var row = outputs[k]
                if let selected { row = row.filter { selected.contains($0.key) } }
                var object: [String: JSONValue] = [
                    "outputs": .object(row), "source": .string(PredictionSource.async.rawValue),
                    "computed_at": .string(Timestamp.rfc3339(now)), "age_seconds": .number(0),
                    "model_version": .string(answer.modelVersion), "stale": .bool(false),
                    "feature": .string(server.spec.name),
                ]
                if let key = rows[position].key { object["key"] = .string(key) }
                let usage = answer.usage.count == tensors.count ? answer.usage[k] : nil
                if let usage { object["usage"] = Self.usage(usage) }
                answers[position] = .object(object)
                server.logAsync(
                    rows[position], outputs: row, latencySeconds: max(0, now - submittedAt), usage: usage,
                    modelVersion: answer.modelVersion, computeSeconds: computeSeconds, computeRows: tensors.count)
            }
        }
        return answers.map { $0 ?? .null }
    }

    /// A row's token usage as answers show it.
    public static func usage(_ usage: TokenUsage) -> JSONValue {
        .object(["input_tokens": .integer(Int64(usage.input)), "output_tokens": .integer(Int64(usage.output))])
    }

    static func decodeRows(_ input: [UInt8]) throws -> [PredictRequest] {
        guard case .array(let items) = try JSONValue.parse(input) else {
            throw PredictionError(.badRequest, "the job's input is not a list of rows")
        }
        return items.map { item in
            guard case .object(let row) = item else { return PredictRequest(inputs: [:]) }
            var key: String?
            if case .string(let k)? = row["key"] { key = k }
            var inputs: [String: JSONValue] = [:]
            if case .object(let i)? = row["inputs"] { inputs = i }
            return PredictRequest(key: key, inputs: inputs)
        }
    }
}

/// The text so far of a streaming chunk's rows (by the row's index in the chunk), recorded as the model reports it
/// and read by the job's partial writer; `version` counts the updates, so the writer knows when there is news.
final class StreamedTexts: Sendable {
    private let state = Mutex<(texts: [Int: String], version: Int)>(([:], 0))

    func update(row: Int, text: String) {
        state.withLock { state in
            state.texts[row] = text
            state.version += 1
        }
    }

    var current: (texts: [Int: String], version: Int) { state.withLock { $0 } }
}
