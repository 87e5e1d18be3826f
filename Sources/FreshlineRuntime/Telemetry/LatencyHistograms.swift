public import FreshlineCore
internal import Histogram
internal import Synchronization

/// HDR histograms of request latency per feature and source, for the percentiles shown to people (the advisor,
/// the feature API, the CLI). Microsecond resolution, three significant digits, up to one hour.
public final class LatencyHistograms: Sendable {
    /// Percentiles of one histogram.
    public struct Summary: Sendable, Equatable {
        public var count: UInt64
        public var p50: Double
        public var p95: Double
        public var p99: Double
        public var p999: Double
        public var max: Double
    }

    private struct Key: Hashable {
        let feature: String
        let source: String
    }
    private let histograms = Mutex<[Key: Histogram<UInt64>]>([:])

    public init() {}

    /// Records one request's latency.
    public func record(feature: String, source: PredictionSource?, duration: Duration) {
        let micros = UInt64(max(0, duration.nanoseconds / 1000))
        let key = Key(feature: feature, source: source?.rawValue ?? "none")
        histograms.withLock { table in
            if table[key] == nil {
                table[key] = Histogram<UInt64>(
                    lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000,
                    numberOfSignificantValueDigits: .three)
            }
            _ = table[key]?.record(min(micros, 3_600_000_000))  // in place: no copy of the counts
        }
    }

    /// Seconds at each percentile, per source, for one feature.
    public func summaries(feature: String) -> [String: Summary] {
        histograms.withLock { table in
            var result: [String: Summary] = [:]
            for (key, h) in table where key.feature == feature {
                result[key.source] = Summary(
                    count: h.totalCount,
                    p50: Double(h.valueAtPercentile(50)) / 1e6, p95: Double(h.valueAtPercentile(95)) / 1e6,
                    p99: Double(h.valueAtPercentile(99)) / 1e6, p999: Double(h.valueAtPercentile(99.9)) / 1e6,
                    max: Double(h.max) / 1e6)
            }
            return result
        }
    }
}
