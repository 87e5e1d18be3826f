internal import Foundation
public import FreshlineCore

/// Reads a feature's traffic figures from Prometheus (`FeatureMap.Metrics`) over a window, for the advisor.
///
/// - **Calls and peak**: the request counter's values every `step` over the window (`query_range` of the selector
///   itself), differenced per series: a drop is a counter reset (the new value counts), a series that appears after
///   the window's first point with data counts from 0 (a label value or a process that started then). Calls per
///   day are the requests over the span the counter has data for; the peak is the largest step's requests over the
///   mean step's.
/// - **Error, timeout and shed rates**: the same differences of their counters, over the requests.
/// - **Latency**: `histogram_quantile(q, sum by (le) (increase(BUCKETS[window])))` for p50, p95, p99 and p99.9 at
///   the window's end. A percentile beyond the largest finite bucket is reported at that bucket's bound (a lower
///   bound, said in the notes).
/// - **CPU per answer**: the differences of `process_cpu_seconds_total` over the requests.
///
/// Every number from outside is range-checked: counters must be finite and non-negative, rates at most 1,
/// percentiles finite and non-negative; a value that is not is an error naming the query.
public struct PrometheusTraffic: Sendable {
    public var client: PrometheusClient
    public var windowSeconds: Double
    public var stepSeconds: Double
    /// The window's end, seconds since 1970.
    public var end: Double

    public init(client: PrometheusClient, windowSeconds: Double, stepSeconds: Double, end: Double) {
        self.client = client
        self.windowSeconds = windowSeconds
        self.stepSeconds = stepSeconds
        self.end = end
    }

    /// The window in PromQL's duration syntax (whole seconds).
    var range: String { "\(max(1, Int(windowSeconds.rounded())))s" }

    /// A counter's increase over the window: the total, the increase per step over the span with data, and that
    /// span in steps.
    struct Increase {
        var total: Double
        var perStep: [Double]
    }

    /// Reads every figure the metrics name.
    public func read(_ metrics: FeatureMap.Metrics) async throws(PrometheusError) -> ObservedTraffic {
        var observed = ObservedTraffic(
            source: "Prometheus \(client.baseURL), \(DurationText.format(.seconds(windowSeconds))) ending "
                + Timestamp.rfc3339(end))
        let requests = try await increase(metrics.requests)
        observed.queries["calls"] =
            "\(metrics.requests) every \(DurationText.format(.seconds(stepSeconds))), differenced"
        observed.requests = requests.total
        let span = Double(requests.perStep.count) * stepSeconds
        observed.spanSeconds = span
        observed.peakBucketSeconds = stepSeconds
        if span > 0 {
            observed.callsPerDay = requests.total / span * 86_400
            let mean = requests.total / Double(requests.perStep.count)
            observed.peakToAverage =
                requests.perStep.count >= 2 && mean > 0 ? max(1, requests.perStep.max()! / mean) : 1
        } else {
            observed.callsPerDay = 0
            observed.notes.append("the request counter has fewer than two points in the window")
        }
        func rate(_ selector: String?, _ name: String) async throws(PrometheusError) -> Double? {
            guard let selector else { return nil }
            observed.queries[name] = "\(selector), differenced"
            guard requests.total > 0 else { return nil }
            let share = try await increase(selector).total / requests.total
            guard share <= 1.000_001 else {
                throw PrometheusError(
                    message: "Prometheus \(client.baseURL): \(selector) counted more \(name) than \(metrics.requests) "
                        + "counted requests (\(CostModel.percent(share))): is it a subset of the request counter?")
            }
            return min(1, share)
        }
        observed.errorRate = try await rate(metrics.errors, "errors")
        observed.timeoutRate = try await rate(metrics.timeouts, "timeouts")
        observed.shedRate = try await rate(metrics.shed, "shed")
        if let cpu = metrics.cpuSeconds {
            observed.queries["cpu"] = "\(cpu), differenced, over the requests"
            if requests.total > 0 { observed.cpuSecondsPerAnswer = try await increase(cpu).total / requests.total }
        }
        if let buckets = metrics.latencyBuckets {
            let (measured, notes) = try await latency(buckets, unit: metrics.latencyUnitSeconds, count: requests.total)
            observed.latency = measured
            observed.notes += notes
            observed.queries["latency"] = "histogram_quantile(q, sum by (le) (increase(\(buckets)[\(range)])))"
        }
        return observed
    }

    /// The counter's increase over the window (see the type's documentation).
    func increase(_ selector: String) async throws(PrometheusError) -> Increase {
        let steps = max(1, Int((windowSeconds / stepSeconds).rounded(.down)))
        let start = end - Double(steps) * stepSeconds
        let series = try await client.queryRange(selector, start: start, end: end, step: stepSeconds)
        var values = [[Double?]](repeating: [Double?](repeating: nil, count: steps + 1), count: series.count)
        var first = Int.max
        var last = Int.min
        for (s, one) in series.enumerated() {
            for p in one.points {
                guard p.value.isFinite, p.value >= 0 else {
                    throw PrometheusError(
                        message: "Prometheus \(client.baseURL): \(selector) has the value \(p.value): not a counter")
                }
                let k = Int(((p.time - start) / stepSeconds).rounded())
                guard k >= 0 && k <= steps else { continue }
                values[s][k] = p.value
                first = min(first, k)
                last = max(last, k)
            }
        }
        guard first < last else { return Increase(total: 0, perStep: []) }
        var perStep = [Double](repeating: 0, count: last - first)
        for series in values {
            var previous: Double?
            for k in first...last {
                guard let v = series[k] else { continue }
                if let p = previous {
                    perStep[k - first - 1] += v >= p ? v - p : v
                } else if k > first {
                    perStep[k - first - 1] += v
                }
                previous = v
            }
        }
        return Increase(total: perStep.reduce(0, +), perStep: perStep)
    }

    /// p50, p95, p99 and p99.9 of the histogram over the window, in seconds.
    func latency(_ buckets: String, unit: Double, count: Double) async throws(PrometheusError) -> (
        SourceLatency?, notes: [String]
    ) {
        var notes: [String] = []
        var values: [Double] = []
        var largest: Double?
        for q in [0.5, 0.95, 0.99, 0.999] {
            let promql = "histogram_quantile(\(q), sum by (le) (increase(\(buckets)[\(range)])))"
            let answer = try await client.query(promql, at: end)
            guard let v = answer.first?.points.first?.value, !v.isNaN else {
                return (nil, ["no latency histogram data in the window (\(buckets))"])
            }
            guard v >= 0 else {
                throw PrometheusError(message: "Prometheus \(client.baseURL): \(promql) is \(v): not a latency")
            }
            if v.isInfinite {
                if largest == nil { largest = try await largestBucket(buckets) }
                guard let largest else { return (nil, notes + ["no finite bucket in \(buckets)"]) }
                notes.append(
                    "p\(CostModel.format(q * 100)) is beyond the histogram's largest bucket (le=\(CostModel.format(largest))): shown at it, a lower bound"
                )
                values.append(largest * unit)
            } else {
                values.append(v * unit)
            }
        }
        let latency = SourceLatency(
            source: PredictionSource.realtime.rawValue, count: Int(min(count, Double(Int.max / 2)).rounded()),
            p50: values[0], p95: values[1], p99: values[2], p999: values[3])
        return (latency, notes)
    }

    /// The histogram's largest finite `le`.
    func largestBucket(_ buckets: String) async throws(PrometheusError) -> Double? {
        let answer = try await client.query("count by (le) (\(buckets))", at: end)
        return answer.compactMap { $0.labels["le"].flatMap(Double.init) }.filter(\.isFinite).max()
    }
}
