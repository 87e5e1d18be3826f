public import CoreMetrics
internal import Foundation
public import FreshlineCore
public import FreshlineEngine
public import FreshlineUpstream
public import Logging
public import ServiceLifecycle
internal import Synchronization

/// Everything a server runs for one manifest: the loaded models, one `FeatureServer` per feature, the compute
/// pool, telemetry and the request log. It is a `Service`: on graceful shutdown it stops accepting rows,
/// finishes the queued ones, then stops its threads.
public final class ServingRuntime: Service {
    public let manifest: Manifest
    public let models: [String: ServingModel]
    public let features: [String: FeatureServer]
    public let metrics: ServingMetrics
    public let histograms: LatencyHistograms
    public let requestLogger: RequestLogger?
    /// The batch pattern (snapshots, runs, schedules), when a store is given and a feature has a batch section.
    public let batch: BatchService?
    /// The async pattern (job queue and workers), when a job store is given.
    public let jobs: JobService?
    /// The advisor over this server's request log, when a request-log store is given.
    public let advice: AdviceService?
    let pool: ComputePool
    private let logger: Logger
    /// A shared store's announcements, followed once for the whole process and handed to the batch and job services.
    private let storeEvents: (any StoreEventSource)?
    /// Whether the shared store can be reached, for readiness.
    private let storeHealth: (any StoreHealthReporting)?
    /// The wall clock answers and the request log are stamped with.
    public let clock: any WallClock

    /// Loads and checks the manifest's models and features. Throws `ManifestErrors` listing every problem.
    /// `remoteModels`: the manifest's upstream models, connected beforehand (`Upstreams.connect`), by name.
    public init(
        manifest: Manifest, metricsFactory: any MetricsFactory, remoteModels: [String: any RemoteModel] = [:],
        requestLogStore: (any RequestLogStore)?,
        batchStore: (any BatchStore)? = nil, jobStore: (any JobStore)? = nil, jobWorkers: Int? = nil,
        webhookStore: (any WebhookStore)? = nil, storeEvents: (any StoreEventSource)? = nil,
        storeHealth: (any StoreHealthReporting)? = nil, batchWorkers: Int = 1, batchSchedules: Bool = true,
        snapshotDirectory: String? = nil, loadTestStore: (any LoadTestStore)? = nil,
        clock: any WallClock = SystemWallClock(), logger: Logger
    ) throws {
        self.clock = clock
        self.storeHealth = storeHealth
        let (models, loadErrors) = ServingModel.loadAll(manifest, remote: remoteModels)
        let problems = loadErrors + ManifestValidator.problems(manifest, models: models)
        if !problems.isEmpty { throw ManifestErrors(problems) }
        self.manifest = manifest
        self.models = models
        self.logger = logger
        let servingMetrics = ServingMetrics(factory: metricsFactory)
        metrics = servingMetrics
        histograms = LatencyHistograms()
        requestLogger = requestLogStore.map {
            RequestLogger(
                store: $0, sampleRate: manifest.server.requestLogSampleRate,
                retention: manifest.server.requestLogRetention, logger: logger, clock: clock,
                ledger: servingMetrics.ledger)
        }
        pool = ComputePool(threads: manifest.server.computeThreads)
        advice = requestLogStore.map {
            AdviceService(
                manifest: manifest, models: models, requestLog: $0, batchStore: batchStore, clock: clock,
                snapshotDirectory: snapshotDirectory, loadTests: loadTestStore)
        }
        var features: [String: FeatureServer] = [:]
        // Sources before the features that compose from them (the validator has excluded cycles).
        for name in Composition.order(manifest.features) {
            guard let spec = manifest.features[name], let model = models[spec.model] else { continue }
            let sources = Dictionary(
                spec.compose.compactMap { c in features[c.feature].map { (c.feature, $0) } },
                uniquingKeysWith: { a, _ in a })
            features[name] = FeatureServer(
                spec: spec, model: model, pool: pool, computeSlots: manifest.server.computeThreads,
                metrics: metrics, histograms: histograms, requestLog: requestLogger, clock: clock, sources: sources)
        }
        self.features = features
        var runners: [String: BatchRunner] = [:]
        if let batchStore {
            for (name, spec) in manifest.features where spec.batch != nil {
                guard let model = models[spec.model] else { continue }
                runners[name] = BatchRunner(
                    feature: spec, model: model, manifestPath: manifest.path, store: batchStore, metrics: metrics,
                    clock: clock, snapshotDirectory: snapshotDirectory)
            }
        }
        batch =
            runners.isEmpty || batchStore == nil
            ? nil
            : BatchService(
                runners: runners, servers: features, store: batchStore!, workers: batchWorkers,
                schedules: batchSchedules, snapshotDirectory: snapshotDirectory, logger: logger)
        let (pool, metrics) = (self.pool, self.metrics)
        jobs = jobStore.map { jobStore in
            JobService(
                servers: features, store: jobStore, pool: pool, metrics: metrics, logger: logger,
                workers: jobWorkers ?? manifest.server.jobWorkers,
                webhooks: webhookStore.map {
                    WebhookDispatcher(
                        store: $0, jobs: jobStore, settings: manifest.server.webhooks, metrics: metrics, logger: logger)
                }, idlePoll: storeEvents == nil ? nil : .seconds(1), maxStreams: manifest.server.maxStreams,
                maxStreamsPerCaller: manifest.server.maxStreamsPerToken,
                maxUnfinishedPerOwner: manifest.server.maxQueuedJobsPerToken, retention: manifest.server.jobRetention)
        }
        self.storeEvents = storeEvents
    }

    /// Why the server is not ready: shutting down, snapshots still loading, or a batch feature's snapshot older than
    /// its `max_staleness`.
    public var readinessProblems: [String] {
        if shuttingDown.load() { return ["shutting down"] }
        if let batch, !batch.snapshotsLoaded { return ["loading snapshots"] }
        return features.values.compactMap(\.snapshotProblem).sorted()
    }

    /// What an operator should see but a load balancer should not act on: the store unavailable (its last call
    /// failed for that and none has succeeded since), and batch features whose last run failed (until a later run
    /// succeeds). Not readiness problems: every replica shares the store, so either would take every backend out
    /// of rotation at once, while each still answers real-time predictions and lookups in its loaded snapshots.
    public var readinessWarnings: [String] {
        let store = storeHealth?.unavailableReason.map { ["store unavailable: \($0)"] } ?? []
        return store + features.values.compactMap(\.lastRunProblem).sorted()
    }

    /// Makes the runtime over one set of stores (`StoreSet.open`): the request log, batch, jobs and webhooks all
    /// live there.
    public convenience init(
        manifest: Manifest, metricsFactory: any MetricsFactory, remoteModels: [String: any RemoteModel] = [:],
        stores: StoreSet, requestLog: Bool = true,
        jobWorkers: Int? = nil, batchWorkers: Int = 1, batchSchedules: Bool = true,
        clock: any WallClock = SystemWallClock(), logger: Logger
    ) throws {
        try self.init(
            manifest: manifest, metricsFactory: metricsFactory, remoteModels: remoteModels,
            requestLogStore: requestLog ? stores.requestLog : nil,
            batchStore: stores.batch, jobStore: stores.jobs, jobWorkers: jobWorkers, webhookStore: stores.webhooks,
            storeEvents: stores.events, storeHealth: stores.health, batchWorkers: batchWorkers,
            batchSchedules: batchSchedules, snapshotDirectory: stores.snapshotDirectory,
            loadTestStore: stores.loadTests, clock: clock, logger: logger)
    }

    /// Whether the runtime is accepting work (readiness).
    public var isReady: Bool { !shuttingDown.load() }
    private let shuttingDown = AtomicFlag()
    /// Direct model calls (/v2) in flight, per model.
    let directCalls = InFlightCounter()

    /// Runs the runtime's parts as one `ServiceGroup`, in their shutdown order (docs/architecture.md, "Lifecycle"):
    /// on graceful shutdown the group stops them in reverse of the order below, each after the one before it
    /// has returned.
    /// 1. the batch service stops leasing ranges and splitting runs (a range in hand stops after its chunk and is
    ///    resumed from its checkpoint by any worker),
    /// 2. the job workers give their jobs back to the queue, webhooks and followers stop,
    /// 3. the store's announcements are no longer followed,
    /// 4. the feature batchers refuse new rows (readiness turns false), finish the queued ones (up to 30 s) and stop
    ///    their timers,
    /// 5. the request log writes what it holds.
    /// Then the compute threads stop. Cancelling the task that runs this stops every part at once.
    public func run() async throws {
        var services: [any Service] = []
        if let requestLogger { services.append(requestLogger) }
        services.append(BatcherDrain(runtime: self))
        if let storeEvents {
            services.append(StoreEventFollower(events: storeEvents, batch: batch, jobs: jobs, logger: logger))
        }
        if let jobs { services.append(jobs) }
        if let batch { services.append(batch) }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map {
                    // A part that ends early (a store that stopped) or fails leaves the others serving, as each
                    // logs its own failures.
                    ServiceGroupConfiguration.ServiceConfiguration(
                        service: $0, successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore)
                },
                logger: logger))
        try? await group.run()
        await pool.shutdown()
        logger.info("runtime stopped")
    }

    /// Step 4 of the shutdown order: runs the feature batchers' timers; on graceful shutdown makes them refuse new
    /// rows, lets the queued ones finish, then stops the timers.
    private struct BatcherDrain: Service {
        let runtime: ServingRuntime

        func run() async throws {
            let features = runtime.features.values
            await withDiscardingTaskGroup { group in
                for feature in features {
                    group.addTask { await feature.batcher.runTimers() }
                }
                try? await gracefulShutdown()
                runtime.logger.info("draining \(features.count) features")
                for feature in features { feature.batcher.beginShutdown() }
                // After the batchers refuse new rows, so "not ready" means exactly that.
                runtime.shuttingDown.store(true)
                let clock = ContinuousClock()
                let giveUp = clock.now + .seconds(30)
                while features.contains(where: { !$0.batcher.isIdle }) && clock.now < giveUp {
                    try? await Task.sleep(for: .milliseconds(5))
                }
                for feature in features { feature.batcher.finish() }
            }
        }
    }

    /// Step 3 of the shutdown order: listens to a shared store's announcements (the store reconnects by itself;
    /// this loop only outlives a store that stopped or failed to start) and hands each to the services it concerns.
    private struct StoreEventFollower: Service {
        let events: any StoreEventSource
        let batch: BatchService?
        let jobs: JobService?
        let logger: Logger

        func run() async throws {
            let (events, batch, jobs, logger) = (events, batch, jobs, logger)
            await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    do {
                        try await events.listen { event in
                            await batch?.handle(event)
                            jobs?.handle(event)
                        }
                    } catch is CancellationError {
                        return
                    } catch {
                        logger.warning("store events: \(error); listening again")
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
            }
        }
    }
}

/// A Boolean shared between threads.
final class AtomicFlag: Sendable {
    private let value = Mutex(false)
    func load() -> Bool { value.withLock { $0 } }
    func store(_ v: Bool) { value.withLock { $0 = v } }
}

extension ServingRuntime {
    /// Runs a model directly (one call, no micro-batching) on the compute pool: the Open Inference Protocol path,
    /// where the caller sends whole batches.
    ///
    /// Admission: at most `directCallsPerThread` calls per compute thread are queued or running per model; more are
    /// refused at once (`overloaded`, 503 with Retry-After) instead of queueing without bound. A call that reaches a
    /// compute thread after its `deadline` is refused there (`overloaded`) without running the model. An upstream
    /// model is called directly (its own pool, budget and breaker bound it). Returns the outputs and the version
    /// that answered: the file's, or the one the upstream's answer names.
    public func infer(
        model name: String, feeds: [String: Tensor], deadline: ContinuousClock.Instant? = nil
    ) async throws -> (outputs: [String: Value], modelVersion: String) {
        guard let serving = models[name] else { throw PredictionError(.notFound, "no model named '\(name)'") }
        do {
            try serving.metadata.validate(feeds)
        } catch let error as EngineError {
            throw PredictionError(.badRequest, error.message)
        }
        guard let model = serving.local else {
            // An upstream model: one call, which holds no compute thread; its own pool, budget and breaker bound it.
            let rows = feeds.values.first?.shape.first ?? 1
            let answer = try await serving.run(
                feeds, rows: rows, pool: pool, priority: .realtime, deadline: deadline)
            return (answer.outputs, answer.modelVersion)
        }
        let limit = Self.directCallsPerThread * manifest.server.computeThreads
        guard directCalls.enter(name, limit: limit) else {
            metrics.shed(feature: name)
            throw PredictionError(
                .overloaded, "model '\(name)' has \(limit) calls queued or running; try again shortly", retryAfter: 1)
        }
        defer { directCalls.leave(name) }
        let outputs: [String: Value] = try await withCheckedThrowingContinuation { continuation in
            pool.submit {
                if let deadline, ContinuousClock.now >= deadline {
                    continuation.resume(
                        throwing: PredictionError(
                            .overloaded, "the call could not start within its deadline", retryAfter: 1))
                    return
                }
                do { continuation.resume(returning: try model.run(feeds)) } catch {
                    continuation.resume(throwing: PredictionError(modelCall: error))
                }
            }
        }
        return (outputs, model.metadata.version)
    }

    /// Direct (/v2) calls a model may have queued or running per compute thread.
    static let directCallsPerThread = 4
}

/// Counts calls in flight per name, with a limit checked on entry.
final class InFlightCounter: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    /// Counts one more call for `name`, unless `limit` are in flight already.
    func enter(_ name: String, limit: Int) -> Bool {
        counts.withLock { counts in
            guard counts[name, default: 0] < limit else { return false }
            counts[name, default: 0] += 1
            return true
        }
    }

    func leave(_ name: String) { counts.withLock { $0[name, default: 1] -= 1 } }
}
