public import FreshlineCore
internal import Logging
internal import Synchronization

/// The batch pattern inside a server: keeps each batch feature's published snapshot loaded (polling the store,
/// so a run published by another process — `freshline run` — is picked up within `pollInterval`), resumes runs
/// interrupted by a crash, runs the cron schedules, and starts runs on request (`POST /v1/features/{name}/runs`).
///
/// Scheduling: one run at a time per feature (the store refuses a second live run). Catch-up after downtime:
/// with `catch_up: once` (default), when the latest slot at or before start-up has no run started at or after it,
/// one run starts at once for all the slots missed; with `skip`, the next slot is waited for.
public final class BatchService: Sendable {
    /// The runners, by feature name.
    public let runners: [String: BatchRunner]
    private let servers: [String: FeatureServer]
    private let store: any BatchStore
    private let logger: Logger
    private let pollInterval: Duration
    private let executions = Mutex<[String: Task<Void, Never>]>([:])
    private let loaded = Mutex(false)

    /// Whether the published snapshots were loaded once at start-up (readiness waits for it).
    public var snapshotsLoaded: Bool { loaded.withLock { $0 } }

    init(
        runners: [String: BatchRunner], servers: [String: FeatureServer], store: any BatchStore, logger: Logger,
        pollInterval: Duration = .seconds(2)
    ) {
        self.runners = runners
        self.servers = servers
        self.store = store
        self.logger = logger
        self.pollInterval = pollInterval
    }

    /// The store runs and snapshots live in.
    public var batchStore: any BatchStore { store }

    /// Starts a run now and executes it in the background; returns the run as started.
    public func trigger(
        feature: String, trigger: BatchRun.Trigger = .manual, scheduledFor: Double? = nil, keys: [String]? = nil,
        modelPath: String? = nil
    ) async throws -> BatchRun {
        guard let runner = runners[feature] else { throw BatchStoreError.unknownRun("feature \(feature)") }
        let run = try await runner.start(trigger: trigger, scheduledFor: scheduledFor, keys: keys, modelPath: modelPath)
        spawn(run, runner)
        return run
    }

    private func spawn(_ run: BatchRun, _ runner: BatchRunner) {
        let task = Task { [logger] in
            logger.info("batch run \(run.id) for \(run.feature) started (\(run.trigger.rawValue))")
            do {
                let snapshot = try await runner.execute(run)
                logger.info(
                    "batch run \(run.id) published \(run.feature) v\(snapshot.version) (\(snapshot.keyCount) keys)")
                await refresh(feature: run.feature)
            } catch is CancellationError {
                logger.info("batch run \(run.id) stopped by shutdown; the next start resumes it")
            } catch {
                logger.error("batch run \(run.id) for \(run.feature) failed: \(error)")
            }
            _ = executions.withLock { $0.removeValue(forKey: run.id) }
        }
        executions.withLock { $0[run.id] = task }
    }

    /// Loads the feature's published snapshot if it is not the one being served.
    func refresh(feature: String) async {
        guard let server = servers[feature] else { return }
        do {
            guard let info = try await store.publishedSnapshot(feature: feature) else { return }
            if server.snapshot?.info.id != info.id {
                server.install(try await SnapshotTable.load(info, from: store))
                logger.info("serving \(feature) snapshot v\(info.version) (\(info.keyCount) keys)")
            } else {
                server.refreshSnapshotFigures()
            }
        } catch is CancellationError {
            return
        } catch {
            logger.error("cannot load the snapshot of \(feature): \(error)")
        }
    }

    /// Runs until cancelled: loads snapshots, resumes interrupted runs, runs schedules, polls for publishes.
    func run() async {
        for feature in runners.keys.sorted() { await refresh(feature: feature) }
        loaded.withLock { $0 = true }
        for (_, runner) in runners.sorted(by: { $0.key < $1.key }) {
            do {
                if let run = try await runner.claimInterrupted() {
                    logger.info("resuming interrupted batch run \(run.id) for \(run.feature) at row \(run.rowsDone)")
                    spawn(run, runner)
                }
            } catch {
                logger.error("cannot resume the interrupted run of \(runner.feature.name): \(error)")
            }
        }
        await withDiscardingTaskGroup { group in
            for runner in runners.values {
                guard let schedule = runner.feature.batch?.schedule else { continue }
                group.addTask { await self.schedule(runner, schedule) }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: self.pollInterval)
                    for feature in self.runners.keys { await self.refresh(feature: feature) }
                }
            }
        }
        // Cancelled (shutdown): stop the runs in hand after their current chunk; they stay resumable.
        let tasks = executions.withLock { Array($0.values) }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    private func schedule(_ runner: BatchRunner, _ schedule: CronSchedule) async {
        let feature = runner.feature.name
        var lastSlot = Clock.unixNow
        if runner.feature.batch?.catchUp == .once, let slot = schedule.previous(atOrBefore: Clock.unixNow) {
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
            while Clock.unixNow < next && !Task.isCancelled {
                let wait = min(60, next - Clock.unixNow)
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
            logger.warning("\(runner.feature.name): scheduled run skipped: \(error)")
        } catch {
            logger.error("\(runner.feature.name): scheduled run could not start: \(error)")
        }
    }
}
