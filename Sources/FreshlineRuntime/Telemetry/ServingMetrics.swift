public import CoreMetrics
public import FreshlineCore
internal import Synchronization

/// The metrics of ARCHITECTURE.md ("Observability"), made through an injected swift-metrics factory so that the
/// HTTP layer can back them with Prometheus and tests with a recording factory.
public final class ServingMetrics: Sendable {
    private let factory: any MetricsFactory
    private let counters = Mutex<[String: Counter]>([:])
    private let timers = Mutex<[String: CoreMetrics.Timer]>([:])
    private let recorders = Mutex<[String: Recorder]>([:])
    private let gauges = Mutex<[String: Gauge]>([:])

    /// What this process answered and computed, for the advisor's process-usage ledger.
    public let ledger = UsageLedger()

    /// Metrics made by `factory`.
    public init(factory: any MetricsFactory) { self.factory = factory }

    func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return counters.withLock { table in
            if let c = table[key] { return c }
            let c = Counter(label: label, dimensions: dimensions, factory: factory)
            table[key] = c
            return c
        }
    }

    func timer(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Timer {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return timers.withLock { table in
            if let t = table[key] { return t }
            let t = CoreMetrics.Timer(label: label, dimensions: dimensions, factory: factory)
            table[key] = t
            return t
        }
    }

    func recorder(_ label: String, _ dimensions: [(String, String)]) -> Recorder {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return recorders.withLock { table in
            if let r = table[key] { return r }
            let r = Recorder(label: label, dimensions: dimensions, aggregate: true, factory: factory)
            table[key] = r
            return r
        }
    }

    private func gauge(_ label: String, _ dimensions: [(String, String)]) -> Gauge {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return gauges.withLock { table in
            if let g = table[key] { return g }
            let g = Gauge(label: label, dimensions: dimensions, factory: factory)
            table[key] = g
            return g
        }
    }

    /// One answered (or refused) request: `freshline_requests_total` and `freshline_request_duration_seconds`.
    public func request(feature: String, source: PredictionSource?, outcome: String, duration: Duration) {
        ledger.counters(for: feature).request(source: source, outcome: outcome)
        let sourceLabel = source?.rawValue ?? "none"
        counter("freshline_requests_total", [("feature", feature), ("source", sourceLabel), ("outcome", outcome)])
            .increment()
        timer("freshline_request_duration_seconds", [("feature", feature), ("source", sourceLabel)]).recordNanoseconds(
            duration.nanoseconds)
    }

    /// Age of a served answer: `freshline_served_age_seconds`.
    public func served(feature: String, ageSeconds: Double) {
        recorder("freshline_served_age_seconds", [("feature", feature)]).record(ageSeconds)
    }

    /// A rung of the fallback ladder answered: `freshline_fallback_total{rung}`.
    public func fallback(feature: String, rung: String) {
        counter("freshline_fallback_total", [("feature", feature), ("rung", rung)]).increment()
    }

    /// A batch run ended: `freshline_runs_total{feature,outcome}` (`succeeded`, `failed`), and
    /// `freshline_run_last_failed` follows it.
    public func runFinished(feature: String, outcome: String) {
        counter("freshline_runs_total", [("feature", feature), ("outcome", outcome)]).increment()
        lastRun(feature: feature, failed: outcome == "failed")
    }

    /// Whether the feature's newest ended run failed: `freshline_run_last_failed{feature}` (1 failed, 0 succeeded).
    /// A run refused by its publish policy counts as failed; the previous snapshot still serves meanwhile.
    public func lastRun(feature: String, failed: Bool) {
        gauge("freshline_run_last_failed", [("feature", feature)]).record(failed ? 1 : 0)
    }

    /// A batch run wrote a chunk: `freshline_run_rows_total` and `freshline_run_row_failures_total`.
    public func runRows(feature: String, rows: Int, failed: Int) {
        counter("freshline_run_rows_total", [("feature", feature)]).increment(by: rows)
        if failed > 0 { counter("freshline_run_row_failures_total", [("feature", feature)]).increment(by: failed) }
    }

    /// The serving snapshot's figures: `freshline_snapshot_keys` and `freshline_snapshot_age_seconds`.
    public func snapshot(feature: String, keys: Int, ageSeconds: Double) {
        gauge("freshline_snapshot_keys", [("feature", feature)]).record(keys)
        gauge("freshline_snapshot_age_seconds", [("feature", feature)]).record(ageSeconds)
    }

    /// A key looked up in the snapshot: `freshline_snapshot_lookups_total{feature,result}` (`hit`, `miss`); the
    /// coverage is hits over all lookups.
    public func lookup(feature: String, hit: Bool) {
        counter("freshline_snapshot_lookups_total", [("feature", feature), ("result", hit ? "hit" : "miss")])
            .increment()
    }

    /// A job was queued: `freshline_jobs_submitted_total{feature}`.
    public func jobSubmitted(feature: String) {
        counter("freshline_jobs_submitted_total", [("feature", feature)]).increment()
    }

    /// A job recorded its result: `freshline_job_duration_seconds{feature}`, from submission to result.
    public func jobFinished(feature: String, duration: Duration) {
        timer("freshline_job_duration_seconds", [("feature", feature)]).recordNanoseconds(duration.nanoseconds)
    }

    /// An attempt failed and was requeued or dead-lettered: `freshline_job_attempt_failures_total{feature}`.
    public func jobAttemptFailed(feature: String) {
        counter("freshline_job_attempt_failures_total", [("feature", feature)]).increment()
    }

    /// Queue depth by state (`freshline_jobs{feature,state}`) and the age of the oldest queued job
    /// (`freshline_job_oldest_queued_seconds{feature}`).
    public func jobQueue(feature: String, counts: [Job.State: Int], oldestQueuedSeconds: Double) {
        for state in Job.State.allCases {
            gauge("freshline_jobs", [("feature", feature), ("state", state.rawValue)]).record(counts[state] ?? 0)
        }
        gauge("freshline_job_oldest_queued_seconds", [("feature", feature)]).record(oldestQueuedSeconds)
    }

    /// A webhook attempt's outcome: `freshline_webhook_deliveries_total{outcome}` (`delivered`, `retry`, `failed`).
    public func webhook(outcome: String) {
        counter("freshline_webhook_deliveries_total", [("outcome", outcome)]).increment()
    }

    /// A request shed before compute: `freshline_shed_total`.
    public func shed(feature: String) {
        counter("freshline_shed_total", [("feature", feature)]).increment()
    }
}

/// One feature's per-request metric handles, made once and reused: the request path then costs a dictionary
/// lookup on a small key instead of building label strings for every request.
public final class FeatureMeters: Sendable {
    private struct Key: Hashable {
        var source: PredictionSource?
        var outcome: String
    }
    private let feature: String
    private let metrics: ServingMetrics
    private let requests = Mutex<[Key: (Counter, CoreMetrics.Timer)]>([:])
    private let servedAge: Recorder
    private let hits: Counter
    private let misses: Counter

    /// The feature's process-usage counters.
    private let usage: FeatureCounters

    init(feature: String, metrics: ServingMetrics) {
        self.feature = feature
        self.metrics = metrics
        usage = metrics.ledger.counters(for: feature)
        servedAge = metrics.recorder("freshline_served_age_seconds", [("feature", feature)])
        hits = metrics.counter("freshline_snapshot_lookups_total", [("feature", feature), ("result", "hit")])
        misses = metrics.counter("freshline_snapshot_lookups_total", [("feature", feature), ("result", "miss")])
    }

    /// As `ServingMetrics.request`.
    public func request(source: PredictionSource?, outcome: String, duration: Duration) {
        usage.request(source: source, outcome: outcome)
        let key = Key(source: source, outcome: outcome)
        let (counter, timer) = requests.withLock { table in
            if let handles = table[key] { return handles }
            let label = source?.rawValue ?? "none"
            let handles = (
                metrics.counter(
                    "freshline_requests_total", [("feature", feature), ("source", label), ("outcome", outcome)]),
                metrics.timer("freshline_request_duration_seconds", [("feature", feature), ("source", label)])
            )
            table[key] = handles
            return handles
        }
        counter.increment()
        timer.recordNanoseconds(duration.nanoseconds)
    }

    /// As `ServingMetrics.served`.
    public func served(ageSeconds: Double) { servedAge.record(ageSeconds) }

    /// As `ServingMetrics.lookup`.
    public func lookup(hit: Bool) { (hit ? hits : misses).increment() }
}

extension Duration {
    /// Whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (s, a) = components
        let (ns, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : ns &+ a / 1_000_000_000
    }
}
