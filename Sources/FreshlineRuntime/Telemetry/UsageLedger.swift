internal import Foundation
internal import FreshlineCore
internal import Synchronization

/// The live side of the process-usage ledger: what this process answered and computed since the last interval was
/// written, per feature. The request logger writes an interval a minute with the process's CPU time over it
/// (`ProcessUsage`); the advisor divides one by the other (docs/advisor.md, "Axis 3").
///
/// The request path only adds to a feature's atomic counters (looked up once, when the feature's meters are made):
/// a lock or a dictionary per request here cost 10% of the predict throughput on two cores (bench/RESULTS.md).
public final class UsageLedger: Sendable {
    private let features = Mutex<[String: FeatureCounters]>([:])
    /// The process CPU time and wall time when the interval being filled began.
    private let mark: Mutex<(cpu: Double, at: Double)?> = Mutex(nil)

    public init() {}

    /// The counters of one feature (made on first use, kept for the process's life).
    func counters(for feature: String) -> FeatureCounters {
        features.withLock { table in
            if let c = table[feature] { return c }
            let c = FeatureCounters()
            table[feature] = c
            return c
        }
    }

    /// One chunk of a batch run: its rows and the CPU time of the thread that read and computed them.
    func batchChunk(feature: String, rows: Int, cpuSeconds: Double) {
        counters(for: feature).batchChunk(rows: rows, cpuSeconds: cpuSeconds)
    }

    /// Closes the interval at `now`: what was recorded and the process CPU it took. The first call only opens one
    /// (`nil`): a ledger starts counting at its first interval, not at process start (start-up is not serving).
    func closeInterval(now: Double, process: String) -> ProcessUsage? {
        let cpu = Self.processCPUSeconds()
        let previous = mark.withLock { m in
            defer { m = (cpu, now) }
            return m
        }
        var usage: [String: FeatureUsage] = [:]
        for (name, counters) in features.withLock({ $0 }) {
            let u = counters.drain()
            if u.requests > 0 || u.batchRows > 0 || u.modelCalls > 0 { usage[name] = u }
        }
        guard let previous, now > previous.at else { return nil }
        return ProcessUsage(
            process: process, at: now, seconds: now - previous.at, cpuSeconds: max(0, cpu - previous.cpu),
            features: usage)
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

/// One feature's counters, added to without locks and drained once an interval.
final class FeatureCounters: Sendable {
    /// What a request is counted as: its source when answered, else its outcome.
    static let kinds = [
        "realtime", "batch", "async", "fallback", "default", "none", "shed", "timeout", "error", "bad_request",
        "unknown_key", "stale", "other",
    ]
    private static let index: [String: Int] = Dictionary(
        uniqueKeysWithValues: kinds.enumerated().map { ($0.element, $0.offset) })
    private final class Slot: Sendable {
        let value = Atomic<Int>(0)
    }
    private let requests = kinds.map { _ in Slot() }
    private let modelNanoseconds = Atomic<Int>(0)
    private let modelCalls = Atomic<Int>(0)
    private let batchRows = Atomic<Int>(0)
    private let batchCPUNanoseconds = Atomic<Int>(0)

    /// One request, answered or refused.
    func request(source: PredictionSource?, outcome: String) {
        let kind = outcome == "ok" ? (source?.rawValue ?? "none") : outcome
        requests[Self.index[kind] ?? Self.kinds.count - 1].value.wrappingAdd(1, ordering: .relaxed)
    }

    /// `count` async answers (a job's chunk).
    func asyncAnswers(_ count: Int) {
        requests[Self.index["async"]!].value.wrappingAdd(max(0, count), ordering: .relaxed)
    }

    /// One call of a local model (its wall time on a compute thread: CPU, the engine being compute-bound). Upstream
    /// calls are not recorded: their time is not this machine's CPU.
    func modelCall(seconds: Double) {
        modelNanoseconds.wrappingAdd(Self.nanoseconds(seconds), ordering: .relaxed)
        modelCalls.wrappingAdd(1, ordering: .relaxed)
    }

    func batchChunk(rows: Int, cpuSeconds: Double) {
        batchRows.wrappingAdd(max(0, rows), ordering: .relaxed)
        batchCPUNanoseconds.wrappingAdd(Self.nanoseconds(cpuSeconds), ordering: .relaxed)
    }

    /// What was counted since the last drain, and zero.
    func drain() -> FeatureUsage {
        var u = FeatureUsage()
        for (kind, slot) in zip(Self.kinds, requests) {
            let n = slot.value.exchange(0, ordering: .relaxed)
            if n > 0 { u.answers[kind] = Double(n) }
        }
        u.modelSeconds = Double(modelNanoseconds.exchange(0, ordering: .relaxed)) / 1e9
        u.modelCalls = Double(modelCalls.exchange(0, ordering: .relaxed))
        u.batchRows = Double(batchRows.exchange(0, ordering: .relaxed))
        u.batchCPUSeconds = Double(batchCPUNanoseconds.exchange(0, ordering: .relaxed)) / 1e9
        return u
    }

    private static func nanoseconds(_ seconds: Double) -> Int {
        guard seconds.isFinite, seconds > 0 else { return 0 }
        return Int(min(seconds, 1e9) * 1e9)
    }
}
