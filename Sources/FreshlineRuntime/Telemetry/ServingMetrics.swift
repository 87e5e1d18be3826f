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

    /// Metrics made by `factory`.
    public init(factory: any MetricsFactory) { self.factory = factory }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return counters.withLock { table in
            if let c = table[key] { return c }
            let c = Counter(label: label, dimensions: dimensions, factory: factory)
            table[key] = c
            return c
        }
    }

    private func timer(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Timer {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return timers.withLock { table in
            if let t = table[key] { return t }
            let t = CoreMetrics.Timer(label: label, dimensions: dimensions, factory: factory)
            table[key] = t
            return t
        }
    }

    private func recorder(_ label: String, _ dimensions: [(String, String)]) -> Recorder {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return recorders.withLock { table in
            if let r = table[key] { return r }
            let r = Recorder(label: label, dimensions: dimensions, aggregate: true, factory: factory)
            table[key] = r
            return r
        }
    }

    /// One answered (or refused) request: `freshline_requests_total` and `freshline_request_duration_seconds`.
    public func request(feature: String, source: PredictionSource?, outcome: String, duration: Duration) {
        let sourceLabel = source?.rawValue ?? "none"
        counter("freshline_requests_total", [("feature", feature), ("source", sourceLabel), ("outcome", outcome)])
            .increment()
        timer("freshline_request_duration_seconds", [("feature", feature), ("source", sourceLabel)]).recordNanoseconds(
            duration.nanoseconds)
    }

    /// Time an item waited in the batcher's queue: `freshline_queue_duration_seconds`.
    public func queued(feature: String, duration: Duration) {
        timer("freshline_queue_duration_seconds", [("feature", feature)]).recordNanoseconds(duration.nanoseconds)
    }

    /// One model call: `freshline_compute_duration_seconds` and `freshline_batch_size`.
    public func computed(feature: String, rows: Int, duration: Duration) {
        timer("freshline_compute_duration_seconds", [("feature", feature)]).recordNanoseconds(duration.nanoseconds)
        recorder("freshline_batch_size", [("feature", feature)]).record(rows)
    }

    /// Age of a served answer: `freshline_served_age_seconds`.
    public func served(feature: String, ageSeconds: Double) {
        recorder("freshline_served_age_seconds", [("feature", feature)]).record(ageSeconds)
    }

    /// A rung of the fallback ladder answered: `freshline_fallback_total{rung}`.
    public func fallback(feature: String, rung: String) {
        counter("freshline_fallback_total", [("feature", feature), ("rung", rung)]).increment()
    }

    /// A request shed before compute: `freshline_shed_total`.
    public func shed(feature: String) {
        counter("freshline_shed_total", [("feature", feature)]).increment()
    }
}

extension Duration {
    /// Whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (s, a) = components
        let (ns, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : ns &+ a / 1_000_000_000
    }
}
