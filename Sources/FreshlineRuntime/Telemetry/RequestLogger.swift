internal import Foundation
public import FreshlineCore
public import Logging
public import ServiceLifecycle
internal import Synchronization

/// Samples requests into the store's request log, off the request path: samples are buffered in memory and
/// written once a second in one transaction; samples older than the retention are deleted every ten minutes.
public final class RequestLogger: Service {
    private let store: any RequestLogStore
    private let sampleRate: Double
    private let retention: Duration
    private let buffer = Mutex<[RequestLogSample]>([])
    private let logger: Logger
    /// The most samples held between flushes; beyond it new samples are dropped (and counted in the log).
    private let capacity = 100_000

    private let clock: any WallClock
    /// The process-usage ledger whose intervals this logger writes, one a minute (`nil`: none).
    private let ledger: UsageLedger?

    public init(
        store: any RequestLogStore, sampleRate: Double, retention: Duration, logger: Logger,
        clock: any WallClock = SystemWallClock(), ledger: UsageLedger? = nil
    ) {
        self.clock = clock
        self.ledger = ledger
        self.store = store
        self.sampleRate = sampleRate
        self.retention = retention
        self.logger = logger
    }

    /// Offers one request. Keyed requests are sampled by key (every request of a sampled key is kept, so the
    /// advisor sees each sampled key's history); requests without a key with probability `sampleRate`.
    /// `sample` is called only for sampled requests; its `sampleRate` is set here.
    public func offer(keyHash: UInt64?, _ sample: () -> RequestLogSample) {
        if let keyHash {
            guard KeyHash.isSampled(keyHash, rate: sampleRate) else { return }
        } else {
            guard sampleRate > 0, sampleRate >= 1 || Double.random(in: 0..<1) < sampleRate else { return }
        }
        var s = sample()
        s.sampleRate = min(1, sampleRate)
        buffer.withLock { if $0.count < capacity { $0.append(s) } }
    }

    /// Failed writes since the last that succeeded, and the samples they dropped: while the store is down, one
    /// line at the first failure and one a minute, not one a second.
    private let failures = Mutex<(writes: Int, samples: Int)>((0, 0))

    /// Writes buffered samples now. The request path never waits for it (`offer` only appends to the buffer), and
    /// a store that is down fails it within the store's call bound; the samples of a failed write are dropped.
    public func flush() async {
        let pending = buffer.withLock { b -> [RequestLogSample] in
            defer { b.removeAll(keepingCapacity: true) }
            return b
        }
        guard !pending.isEmpty else { return }
        do {
            try await store.append(pending)
            let recovered = failures.withLock { f in
                defer { f = (0, 0) }
                return f
            }
            if recovered.writes > 0 {
                logger.info(
                    "request log: writing again after \(recovered.writes) failed writes (\(recovered.samples) samples dropped)"
                )
            }
        } catch {
            let writes = failures.withLock { f in
                f.writes += 1
                f.samples += pending.count
                return f.writes
            }
            if writes % 60 == 1 {
                logger.error("request log: could not write \(pending.count) samples (failure \(writes)): \(error)")
            }
        }
    }

    public func run() async throws {
        var sinceRetention = Duration.zero
        var sinceUsage = Duration.zero
        _ = ledger?.closeInterval(now: clock.now, process: RunOwner.current)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            await flush()
            sinceRetention += .seconds(1)
            sinceUsage += .seconds(1)
            if sinceUsage >= .seconds(60) {
                sinceUsage = .zero
                await writeUsage()
            }
            if sinceRetention >= .seconds(600) {
                sinceRetention = .zero
                await enforceRetention()
            }
        }
        await flush()
        await writeUsage()
    }

    /// Writes the ledger's interval since the last one: the process's CPU time and what it answered and computed.
    /// A failed write loses that interval (the advisor reads the others).
    public func writeUsage() async {
        guard let ledger, let usage = ledger.closeInterval(now: clock.now, process: RunOwner.current) else { return }
        do {
            try await store.appendUsage(usage)
        } catch is CancellationError {
            // Cancelled at shutdown (not a graceful one): the last interval is lost, the others are written.
        } catch {
            logger.error("request log: could not write the process-usage interval: \(error)")
        }
    }

    /// Deletes samples older than the retention.
    public func enforceRetention() async {
        let cutoff = clock.now - retention.seconds
        do {
            let deleted = try await store.deleteSamples(before: cutoff)
            if deleted > 0 { logger.info("request log: deleted \(deleted) samples past retention") }
            _ = try await store.deleteUsage(before: cutoff)
        } catch {
            logger.error("request log: retention failed: \(error)")
        }
    }
}
