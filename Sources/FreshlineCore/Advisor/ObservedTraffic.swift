/// Traffic figures of a feature served elsewhere, read from an observability stack (Prometheus) instead of
/// Freshline's request log. When an `AdvisorInput` carries them, the cost axis takes its calls per day and peak,
/// and the failure axis its rates, from here; the latency axis gets the percentiles through `AdvisorInput.latency`
/// (source `realtime`). Every figure that is `nil` was not given by the stack, and the request log (if any) stands
/// in. Each evidence text names where the numbers came from (`source`).
public struct ObservedTraffic: Sendable, Equatable {
    /// Where the numbers came from: the stack, its address and the window (`Prometheus http://…, 7d ending …`).
    public var source: String
    /// Requests in the window, and the span (seconds) of the window the stack had data for.
    public var requests: Double?
    public var spanSeconds: Double?
    /// Calls per day over the span.
    public var callsPerDay: Double?
    /// The largest interval's requests over the mean interval's, and the interval's length.
    public var peakToAverage: Double?
    public var peakBucketSeconds: Double?
    /// Shares of the requests that failed, timed out, or were shed.
    public var errorRate: Double?
    public var timeoutRate: Double?
    public var shedRate: Double?
    /// Process CPU seconds per answer (the serving process's CPU over its requests), when the map names it.
    public var cpuSecondsPerAnswer: Double?
    /// End-to-end latency percentiles of the answers (from the stack's histogram).
    public var latency: SourceLatency?
    /// The query behind each figure (`calls`, `errors`, `latency`, `cpu`, …), for the report.
    public var queries: [String: String] = [:]
    /// What the stack could not give, in words (a percentile beyond the histogram's largest bucket…).
    public var notes: [String] = []

    public init(source: String) {
        self.source = source
    }

    /// Whether the stack saw any request: without, the advisor has nothing to decide from.
    public var hasTraffic: Bool { (requests ?? 0) > 0 }

    /// The cost axis's evidence for calls and peak.
    public var volumeEvidence: String {
        var parts = ["\(source)"]
        if let requests, let spanSeconds {
            parts.append(
                "\(CostModel.format(requests)) requests over \(CostModel.formatSeconds(spanSeconds)) of data"
                    + (queries["calls"].map { " (\($0))" } ?? ""))
        }
        if let peakBucketSeconds { parts.append("peak over \(CostModel.formatAge(peakBucketSeconds)) intervals") }
        return parts.joined(separator: "; ")
    }

    /// The failure axis's evidence.
    public var failureEvidence: String {
        let named = ["errors", "timeouts", "shed"].compactMap { name in queries[name].map { "\(name): \($0)" } }
        return "\(source); "
            + (named.isEmpty ? "no error, timeout or shed counter in the feature map" : named.joined(separator: "; "))
            + " over the requests"
    }

    /// The latency axis's basis for the real-time p99.
    public var latencyBasis: String {
        let count = latency.map { " over \(CostModel.format(Double($0.count))) answers" } ?? ""
        return "measured end to end by the serving stack\(count): \(source)"
            + (queries["latency"].map { " (\($0))" } ?? "")
            + (notes.isEmpty ? "" : "; " + notes.joined(separator: "; "))
    }
}

extension ObservedTraffic {
    /// The failure axis with the stack's rates in place of the request log's (those it has), its evidence naming
    /// the stack.
    func failure(_ measured: FailureAxis) -> FailureAxis {
        var axis = measured
        axis.errorRate = errorRate ?? measured.errorRate
        axis.timeoutRate = timeoutRate ?? measured.timeoutRate
        axis.shedRate = shedRate ?? measured.shedRate
        axis.evidence = failureEvidence + (measured.evidence.hasPrefix("no traffic") ? "" : "; " + measured.evidence)
        return axis
    }
}
