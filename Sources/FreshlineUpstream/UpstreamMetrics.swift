internal import CoreMetrics

/// The metrics of one upstream, made once through the injected swift-metrics factory (the runtime's Prometheus
/// registry, or a test factory):
/// - `freshline_upstream_requests_total{model,outcome}`: one per HTTP request, by how it ended (`ok`, `failed`,
///   `timeout`, `rate_limited`), plus one `retried` per retry and one `circuit_open` per call the breaker refused;
/// - `freshline_upstream_duration_seconds{model}`: each request, retries and waits included;
/// - `freshline_upstream_tokens_total{model,kind}`: `input` and `output` tokens reported by the upstream;
/// - `freshline_upstream_circuit_open{model}`: 1 while the breaker refuses calls, 0 when closed;
/// - `freshline_rate_limit_wait_seconds{model}`: how long each request waited for the rate-limit budget.
struct UpstreamMetrics: Sendable {
    /// How a request ended, the `outcome` label.
    enum Outcome: String, Sendable, CaseIterable {
        case ok, retried, failed, timeout
        case circuitOpen = "circuit_open"
        case rateLimited = "rate_limited"
    }

    private let requests: [Outcome: Counter]
    private let duration: CoreMetrics.Timer
    private let inputTokens: Counter
    private let outputTokens: Counter
    private let circuitOpen: Gauge
    private let rateLimitWait: CoreMetrics.Timer

    init(model: String, factory: any MetricsFactory) {
        var requests: [Outcome: Counter] = [:]
        for outcome in Outcome.allCases {
            requests[outcome] = Counter(
                label: "freshline_upstream_requests_total",
                dimensions: [("model", model), ("outcome", outcome.rawValue)],
                factory: factory)
        }
        self.requests = requests
        duration = CoreMetrics.Timer(
            label: "freshline_upstream_duration_seconds", dimensions: [("model", model)], factory: factory)
        inputTokens = Counter(
            label: "freshline_upstream_tokens_total", dimensions: [("model", model), ("kind", "input")],
            factory: factory)
        outputTokens = Counter(
            label: "freshline_upstream_tokens_total", dimensions: [("model", model), ("kind", "output")],
            factory: factory)
        circuitOpen = Gauge(label: "freshline_upstream_circuit_open", dimensions: [("model", model)], factory: factory)
        rateLimitWait = CoreMetrics.Timer(
            label: "freshline_rate_limit_wait_seconds", dimensions: [("model", model)], factory: factory)
        circuitOpen.record(0)
    }

    func request(_ outcome: Outcome) { requests[outcome]?.increment() }

    func duration(_ elapsed: Duration) { duration.recordNanoseconds(Self.nanoseconds(elapsed)) }

    func tokens(input: Int, output: Int) {
        if input > 0 { inputTokens.increment(by: input) }
        if output > 0 { outputTokens.increment(by: output) }
    }

    func circuit(open: Bool) { circuitOpen.record(open ? 1 : 0) }

    func rateLimitWait(_ waited: Duration) { rateLimitWait.recordNanoseconds(Self.nanoseconds(waited)) }

    private static func nanoseconds(_ d: Duration) -> Int64 {
        let (seconds, attoseconds) = d.components
        return seconds.multipliedReportingOverflow(by: 1_000_000_000).overflow
            ? .max : seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
