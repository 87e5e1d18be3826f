public import FreshlineCore
internal import FreshlineSnapshot
internal import Logging
internal import NIOPosix
public import ServiceLifecycle
internal import Synchronization

/// The batch pattern inside a process: keeps each batch feature's published snapshot loaded (swapped at once when
/// the store announces a publish — PostgreSQL `NOTIFY` — and polled as a backstop, so a run published by another
/// process is picked up), runs the cron schedules, starts runs on request (`POST /v1/features/{name}/runs`), and
/// works on run ranges: every process with range workers leases ranges of any running run of its features, so
/// several workers share one run and a range whose worker died is taken over.
///
/// Scheduling: one run at a time per feature, one run per schedule slot across every server on the store (the
/// store refuses a second). Catch-up after downtime: with `catch_up: once` (default), when the latest slot at or
/// before start-up has no run started at or after it, one run starts at once for all the slots missed; with
/// `skip`, the next slot is waited for.
public final class BatchService: Service {
    /// The runners, by feature name.
    public let runners: [String: BatchRunner]
    private let servers: [String: FeatureServer]
    private let store: any BatchStore
    private let logger: Logger
    private let pollInterval: Duration
    /// Range workers in this process (0: this process schedules and serves, others compute).
    let workers: Int
    /// Whether this process runs the schedules (servers do; `freshline worker` does not).
    let schedules: Bool
    private let signals = Signals()
    private static let rangesSignal = "ranges"
    /// Runs started here, waiting to be counted and split by `run()`'s splitter.
    private let splitRequests: AsyncStream<(BatchRun, BatchRunner)>
    private let splitContinuation: AsyncStream<(BatchRun, BatchRunner)>.Continuation
    private let loaded = Mutex(false)
    private let refreshing = Mutex<Set<String>>([])

    /// Whether the published snapshots were loaded once at start-up (readiness waits for it).
    public var snapshotsLoaded: Bool { loaded.withLock { $0 } }

    /// Where snapshot files are kept for serving by memory map; `nil`: snapshots are decoded into memory.
    let snapshotDirectory: String?
    /// Real time, for leases, heartbeats and the stamps other processes compare: never accelerated by
    /// `--clock-speed`, which moves only the stamps the advisor reads.
    let systemClock: any WallClock = SystemWallClock()

    init(
        runners: [String: BatchRunner], servers: [String: FeatureServer], store: any BatchStore,
        workers: Int, schedules: Bool, snapshotDirectory: String? = nil, logger: Logger,
        pollInterval: Duration = .seconds(2)
    ) {
        self.snapshotDirectory = snapshotDirectory
        self.runners = runners
        self.servers = servers
        self.store = store
        self.workers = max(0, workers)
        self.schedules = schedules
        self.logger = logger
        self.pollInterval = pollInterval
        (splitRequests, splitContinuation) = AsyncStream.makeStream(of: (BatchRun, BatchRunner).self)
    }

    /// How long a published snapshot may stay unsealed before a server seals it: its run's worker seals it right after
    /// publishing, so one still unsealed after this had its worker die in between.
    static let sealGrace: Double = 120

    /// Seals `info` when its run's worker did not (it died between publishing and sealing): the chunks stay the
    /// snapshot until some process seals it, so it is never lost, only kept in the larger form.
    private func sealLeftBehind(_ info: SnapshotInfo, directory: String) async {
        guard info.file == nil, let published = info.publishedAt, systemClock.now - published > Self.sealGrace else {
            return
        }
        do {
            try await SnapshotStorage(store: store, directory: directory).seal(info)
            logger.info("sealed \(info.feature) snapshot v\(info.version), left unsealed by its run's worker")
        } catch {
            logger.warning("cannot seal \(info.feature) snapshot v\(info.version): \(error)")
        }
    }

    /// The store runs and snapshots live in.
    public var batchStore: any BatchStore { store }

    /// Starts a run now, then counts and splits it in the background (the range workers of every process on the
    /// store pick its ranges up); returns the run as started.
    public func trigger(
        feature: String, trigger: BatchRun.Trigger = .manual, scheduledFor: Double? = nil, keys: [String]? = nil,
        modelPath: String? = nil
    ) async throws -> BatchRun {
        guard let runner = runners[feature] else { throw BatchStoreError.unknownRun("feature \(feature)") }
        let run = try await runner.start(trigger: trigger, scheduledFor: scheduledFor, keys: keys, modelPath: modelPath)
        logger.info("batch run \(run.id) for \(run.feature) started (\(run.trigger.rawValue))")
        split(run, runner)
        return run
    }

    /// Hands the run to `run()`'s splitter: a split outlives the request that started the run.
    private func split(_ run: BatchRun, _ runner: BatchRunner) {
        splitContinuation.yield((run, runner))
    }

    /// Counts and splits one run; wakes the range workers.
    private func performSplit(_ run: BatchRun, _ runner: BatchRunner) async {
        do {
            let split = try await runner.split(run)
            logger.info("batch run \(run.id): \(split.rowsTotal ?? 0) rows to compute")
            signals.fire(Self.rangesSignal)
        } catch is CancellationError {
            logger.info("batch run \(run.id) stopped by shutdown before its split; the next start resumes it")
        } catch {
            logger.error("batch run \(run.id) for \(run.feature) failed: \(error)")
        }
    }

    /// Loads the feature's published snapshot if it is not the one being served. One load per feature at a time:
    /// a publish announcement and the poll arriving together load the snapshot once (a refresh that finds one in
    /// progress returns; the next poll catches anything newer).
    func refresh(feature: String) async {
        guard let server = servers[feature] else { return }
        guard refreshing.withLock({ $0.insert(feature).inserted }) else { return }
        defer { _ = refreshing.withLock { $0.remove(feature) } }
        do {
            // The newest run that ended succeeded or failed (one canceled says nothing about the data), whichever
            // process ran it: readiness and `freshline_run_last_failed` show a failed one.
            let ended = try await store.runs(feature: feature, limit: 20).first {
                $0.state == .succeeded || $0.state == .failed
            }
            server.recordLastRun(ended)
            guard let info = try await store.publishedSnapshot(feature: feature) else { return }
            if server.snapshot?.info.id != info.id {
                if let directory = snapshotDirectory {
                    let started = ContinuousClock.now
                    let table = try await SnapshotTable.load(info, from: store, directory: directory)
                    server.install(table)
                    let mappedFrom = table.file?.path ?? directory
                    logger.info(
                        "serving \(feature) snapshot v\(info.version) (\(info.keyCount) keys) mapped from \(mappedFrom) in \(ContinuousClock.now - started)"
                    )
                    // The files of snapshots the store no longer keeps go; the one served before stays mapped by
                    // the readers still holding it.
                    let kept = try await store.snapshots(feature: feature, limit: 50).filter {
                        $0.state == .published || $0.state == .retired
                    }
                    SnapshotFiles.prune(feature: feature, keep: kept, in: directory)
                    await sealLeftBehind(info, directory: directory)
                } else {
                    server.install(try await SnapshotTable.load(info, from: store))
                    logger.info("serving \(feature) snapshot v\(info.version) (\(info.keyCount) keys)")
                }
            } else {
                server.refreshSnapshotFigures()
            }
        } catch is CancellationError {
            return
        } catch {
            logger.error("cannot load the snapshot of \(feature): \(error)")
        }
    }

    /// Runs until graceful shutdown or cancellation: loads snapshots, works on ranges, runs schedules, follows
    /// publishes (the serving runtime's step 1 of shutdown).
    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.runUntilCancelled() }
    }

    private func runUntilCancelled() async {
        for feature in runners.keys.sorted() { await refresh(feature: feature) }
        loaded.withLock { $0 = true }
        await withDiscardingTaskGroup { group in
            for index in 0..<workers {
                group.addTask { await self.work(index) }
            }
            if schedules {
                for runner in runners.values {
                    guard let schedule = runner.feature.batch?.schedule else { continue }
                    group.addTask { await self.schedule(runner, schedule) }
                }
            }
            group.addTask {
                // The splitter: each run started here is split in a child task of its own; on shutdown the
                // splits in hand stop (a run left unsplit is resumed by the next start, `claimInterrupted`).
                await withDiscardingTaskGroup { splits in
                    for await (run, runner) in self.splitRequests {
                        splits.addTask { await self.performSplit(run, runner) }
                    }
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: self.pollInterval)
                    for feature in self.runners.keys { await self.refresh(feature: feature) }
                }
            }
        }
        // Cancelled (shutdown): splits in hand stopped; ranges in hand stopped after their current chunk (their
        // lease runs out and any worker resumes them from the checkpoint).
    }

    /// One range worker: leases a range of any running run of this process's features, computes it, repeats;
    /// when there is none, takes over runs whose starter died before splitting them, then waits for a wake-up. It
    /// works in two lanes that take ranges in turn (`ReadGate`): while one range's last chunks compute and write,
    /// the next is leased and read, so its runner threads do not idle at every range's end.
    private func work(_ index: Int) async {
        let threads = runners.values.map { max(1, $0.feature.batch?.threads ?? 1) }.max() ?? 1
        let pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
        let gate = ReadGate()
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<2 {
                group.addTask { await self.lane(worker: index, lane: lane, pool: pool, gate: gate) }
            }
        }
        try? await pool.shutdownGracefully()
    }

    private func lane(worker index: Int, lane: Int, pool: NIOThreadPool, gate: ReadGate) async {
        let features = runners.keys.sorted()
        while !Task.isCancelled {
            let ticket = signals.register(Self.rangesSignal)
            do {
                if let (lease, turn) = try await gate.leasing({
                    try await self.store.leaseRange(
                        features: features, owner: RunOwner.current, now: systemClock.now,
                        leaseSeconds: BatchRunner.rangeLease, isGone: RunOwner.isGone)
                }) {
                    defer { turn.end() }
                    if let runner = runners[lease.run.feature] {
                        signals.discard(ticket)
                        logger.info(
                            "batch run \(lease.run.id): range \(lease.range.index) (rows \(lease.range.rowStart)..<\(lease.range.rowEnd)) on worker \(index)"
                        )
                        do {
                            if case .published(let snapshot) = try await runner.process(
                                lease, pool: pool, turn: turn)
                            {
                                logger.info(
                                    "batch run \(lease.run.id) published \(snapshot.feature) v\(snapshot.version) (\(snapshot.keyCount) keys)"
                                )
                                await refresh(feature: snapshot.feature)
                            }
                        } catch let failed as BatchRunFailed {
                            // Refused by its publish policy (or failed meanwhile): the previous snapshot serves on;
                            // readiness shows the failure now rather than at the next poll.
                            logger.error("batch run \(failed.runID) for \(failed.feature) failed: \(failed.reason)")
                            await refresh(feature: failed.feature)
                        }
                        continue
                    }
                }
                if index == 0 && lane == 0 {
                    for runner in runners.values {
                        if let run = try await runner.claimInterrupted() {
                            logger.info("taking over batch run \(run.id) for \(run.feature): its starter stopped")
                            _ = try await runner.split(run)
                            signals.fire(Self.rangesSignal)
                        }
                    }
                }
            } catch is CancellationError {
                signals.discard(ticket)
                break
            } catch let error as BatchStoreError {
                logger.warning("batch worker \(index): \(error)")
            } catch {
                logger.error("batch worker \(index): \(error)")
            }
            await signals.wait(ticket, timeout: .seconds(1))
        }
    }

    /// Acts on a shared store's announcement (the runtime listens once for the whole process): swaps a snapshot
    /// another process published, wakes idle range workers when ranges appear.
    func handle(_ event: StoreEvent) async {
        switch event {
        case .snapshotPublished(let feature): await refresh(feature: feature)
        case .rangesAvailable: signals.fire(Self.rangesSignal)
        case .jobsQueued, .jobEnded: break
        }
    }

    private func schedule(_ runner: BatchRunner, _ schedule: CronSchedule) async {
        let feature = runner.feature.name
        var lastSlot = systemClock.now
        if runner.feature.batch?.catchUp == .once, let slot = schedule.previous(atOrBefore: systemClock.now) {
            let latestStart = (try? await store.runs(feature: feature, limit: 1).first?.startedAt) ?? nil
            if latestStart.map({ $0 < slot }) ?? true {
                logger.info("\(feature): the slot at \(Timestamp.rfc3339(slot)) was missed; catching up once now")
                await start(runner, trigger: .catchUp, slot: slot)
            }
        }
        while !Task.isCancelled {
            guard let next = schedule.next(after: lastSlot) else {
                logger.warning("\(feature): the schedule '\(schedule)' never fires again")
                return
            }
            // Sleep in steps of at most a minute, so wall-clock changes are noticed.
            while systemClock.now < next && !Task.isCancelled {
                let wait = min(60, next - systemClock.now)
                try? await Task.sleep(for: .milliseconds(Int64(max(1, wait * 1000))))
            }
            if Task.isCancelled { return }
            lastSlot = next
            await start(runner, trigger: .schedule, slot: next)
        }
    }

    private func start(_ runner: BatchRunner, trigger: BatchRun.Trigger, slot: Double) async {
        do {
            _ = try await self.trigger(feature: runner.feature.name, trigger: trigger, scheduledFor: slot)
        } catch let error as BatchStoreError {
            logger.info("\(runner.feature.name): scheduled run not started here: \(error)")
        } catch {
            logger.error("\(runner.feature.name): scheduled run could not start: \(error)")
        }
    }
}
