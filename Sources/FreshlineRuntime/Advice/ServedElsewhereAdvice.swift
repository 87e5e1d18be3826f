internal import Foundation
public import FreshlineCore

/// Advice for features served elsewhere (`freshline advise --prometheus URL --feature-map FILE [--requests FILE]`):
/// for each feature of the map, the traffic figures from Prometheus and the answers of its requests file, then the
/// advisor's five axes and rules as for a served feature. The report's `origin` of each feature names the server,
/// window and files its numbers came from.
public struct ServedElsewhereAdvice: Sendable {
    public var map: FeatureMap
    /// Prometheus' address; `nil`: the requests files alone.
    public var prometheus: String?
    /// Requests files given on the command line, by feature (they win over the map's `requests_file`).
    public var requestsFiles: [String: String] = [:]
    /// The window (default: the map's, else the advisor's).
    public var windowSeconds: Double?
    public var settings: AdvisorSettings
    public var pricing: Pricing
    public var clock: any WallClock = SystemWallClock()

    public init(map: FeatureMap, prometheus: String?, settings: AdvisorSettings, pricing: Pricing) {
        self.map = map
        self.prometheus = prometheus
        self.settings = settings
        self.pricing = pricing
    }

    /// Advice for `features` (default: every feature of the map, in its order).
    public func report(features names: [String]? = nil) async throws -> AdviceReport {
        let client = try prometheus.map { url throws(PrometheusError) in try PrometheusClient(baseURL: url) }
        let window = windowSeconds ?? map.windowSeconds ?? settings.windowSeconds
        let step = map.stepSeconds ?? FeatureMap.defaultStep(windowSeconds: window)
        // Prometheus answers a range query with at most 11,000 points per series.
        guard window / step <= 11_000 else {
            throw AdviceError(
                message: "\(map.path): a window of \(DurationText.format(.seconds(window))) every "
                    + "\(DurationText.format(.seconds(step))) is more than Prometheus' 11,000 points: raise step")
        }
        let wall = clock.now
        var advice: [FeatureAdvice] = []
        for entry in map.features where names?.contains(entry.name) ?? true {
            var samples: [RequestLogSample] = []
            var requestsOrigin: String?
            if let path = requestsFiles[entry.name] ?? entry.requestsFile.map(resolve) {
                // Refused before it is read: the reader holds the whole file.
                if let size = try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int,
                    size > RequestsFile.maxBytes
                {
                    throw AdviceError(
                        message:
                            "\(path): larger than \(RequestsFile.maxBytes >> 20) MiB (the requests of '\(entry.name)')")
                }
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw AdviceError(message: "\(path): cannot read the requests file of '\(entry.name)'")
                }
                let contents = try RequestsFile.parse(
                    Array(data), file: path, feature: entry.name, decision: entry.decision)
                samples = contents.samples
                requestsOrigin = contents.origin
                if contents.modelVersions.count > 1 {
                    requestsOrigin! +=
                        " with \(contents.modelVersions.count) model versions (answers of different versions are "
                        + "compared: a version change counts as decision changes)"
                }
            }
            var observed: ObservedTraffic?
            if let client, let metrics = entry.metrics {
                observed = try await PrometheusTraffic(
                    client: client, windowSeconds: window, stepSeconds: step, end: wall
                ).read(metrics)
            } else if entry.metrics != nil, samples.isEmpty {
                throw AdviceError(
                    message: "\(map.path):\(entry.line): feature '\(entry.name)' has only Prometheus metrics: "
                        + "give --prometheus URL (or a requests file)")
            }
            // The requests file's own time ends its window (a log from another clock).
            let now = max(wall, samples.last?.at ?? wall)
            let timed = samples.filter { $0.latencySeconds >= 0 }
            advice.append(
                entry.advise(
                    mapPath: map.path, samples: samples, latency: AdviceService.latency(timed), observed: observed,
                    requestsOrigin: requestsOrigin, now: now, settings: settings, pricing: pricing,
                    whatIf: AdviceService.defaultScenarios(
                        span: (samples.last?.at ?? 0) - (samples.first?.at ?? 0))))
        }
        return AdviceReport(generatedAt: wall, settings: settings, pricing: pricing, features: advice)
    }

    /// A map's `requests_file`, relative to the map's folder.
    func resolve(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return URL(fileURLWithPath: map.path).deletingLastPathComponent().appendingPathComponent(path).path
    }
}
