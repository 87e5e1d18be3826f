internal import Foundation
internal import FreshlineCore
internal import Synchronization

/// The live side of the process-usage ledger: what this process answered and computed since the last interval was
/// written, per feature. The request logger writes an interval a minute with the process's CPU time over it
/// (`ProcessUsage`); the advisor divides one by the other (docs/advisor.md, "Axis 3").
public final class UsageLedger: Sendable {
    private let current = Mutex<[String: FeatureUsage]>([:])
    /// The process CPU time and wall time when the interval being filled began.
    private let mark: Mutex<(cpu: Double, at: Double)?> = Mutex(nil)

    public init() {}

    /// One request, answered or refused: `realtime`, `batch`, … by source when answered, else its outcome.
    func request(feature: String, source: PredictionSource?, outcome: String) {
        let key = outcome == "ok" ? (source?.rawValue ?? "none") : outcome
        current.withLock { $0[feature, default: FeatureUsage()].answers[key, default: 0] += 1 }
    }

    /// One call of a local model for real-time rows (its wall time on a compute thread: CPU, the engine being
    /// compute-bound). Upstream calls are not recorded: their time is not this machine's CPU.
    func modelCall(feature: String, seconds: Double) {
        current.withLock {
            $0[feature, default: FeatureUsage()].modelSeconds += seconds
            $0[feature, default: FeatureUsage()].modelCalls += 1
        }
    }

    /// One chunk of a batch run: its rows and the CPU time of the thread that read and computed them.
    func batchChunk(feature: String, rows: Int, cpuSeconds: Double) {
        current.withLock {
            $0[feature, default: FeatureUsage()].batchRows += Double(rows)
            $0[feature, default: FeatureUsage()].batchCPUSeconds += max(0, cpuSeconds)
        }
    }

    /// Closes the interval at `now`: what was recorded and the process CPU it took. The first call only opens one
    /// (`nil`): a ledger starts counting at its first interval, not at process start (start-up is not serving).
    func closeInterval(now: Double, process: String) -> ProcessUsage? {
        let cpu = Self.processCPUSeconds()
        let previous = mark.withLock { m in
            defer { m = (cpu, now) }
            return m
        }
        let features = current.withLock { table in
            defer { table.removeAll(keepingCapacity: true) }
            return table
        }
        guard let previous, now > previous.at else { return nil }
        return ProcessUsage(
            process: process, at: now, seconds: now - previous.at, cpuSeconds: max(0, cpu - previous.cpu),
            features: features)
    }

    /// CPU time of the whole process so far (user + system), seconds.
    static func processCPUSeconds() -> Double {
        var t = timespec()
        guard clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) == 0 else { return 0 }
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// CPU time of the calling thread so far, seconds.
    static func threadCPUSeconds() -> Double {
        var t = timespec()
        guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) == 0 else { return 0 }
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}
