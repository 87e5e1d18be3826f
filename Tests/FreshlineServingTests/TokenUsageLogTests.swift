import Foundation
import FreshlineCore
import FreshlineHTTP
import FreshlineRuntime
import FreshlineStores
import FreshlineTestSupport
import FreshlineUpstream
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import ServiceLifecycle
import Testing

/// Token usage through the running server: the request log records what an upstream LLM reported for real-time
/// and async answers, and the advisor prices the feature by those tokens. The upstream is the test double of
/// `UpstreamServingTests` (3 input and 1 output token per row).
@Suite("Token usage in the request log")
struct TokenUsageLogTests {
    static let manifest = """
        version: 1
        models:
          remote:
            kind: oip
            url: http://127.0.0.1:9/
            model: sk
        features:
          live:
            model: remote
            latency_budget: 60s
          report:
            model: remote
            pattern: async
        server:
          request_log_sample_rate: 1
        pricing:
          models:
            remote: {input_per_million: 2.5, output_per_million: 10}
        """

    @Test("real-time and async answers record their tokens; the advisor prices the feature by them")
    func recordedAndPriced() async throws {
        let manifest = try ManifestLoader.load(path: try TestManifest.write(Self.manifest))
        let model = RecordingUpstreamDouble(spec: try #require(manifest.models["remote"]), delay: .milliseconds(1))
        let stores = try StoreSet.open(for: manifest, logger: Logger(label: "test"))
        let registry = PrometheusCollectorRegistry()
        let runtime = try ServingRuntime(
            manifest: manifest, metricsFactory: PrometheusMetricsFactory(registry: registry),
            remoteModels: ["remote": model], stores: stores, logger: Logger(label: "test"))
        let app = Application(router: FreshlineServer.router(runtime: runtime, registry: registry))
        try await withThrowingTaskGroup(of: Void.self) { group in
            defer { group.cancelAll() }
            for service in stores.services { group.addTask { try? await service.run() } }
            group.addTask { try await runtime.run() }
            try await app.test(.router) { client in
                for i in 0..<3 {
                    let (status, json) = try await UpstreamServingTests.predict(client, "live", [Float(i), 1, 1, 1])
                    #expect(status == .ok, "\(json)")
                }
                let (status, json) = try await UpstreamServingTests.predict(client, "report", [1, 1, 1, 1])
                #expect(status == .accepted, "\(json)")
                // The job's row is logged when it is computed.
                var asyncSamples: [RequestLogSample] = []
                for _ in 0..<600 where asyncSamples.isEmpty {
                    try await Task.sleep(for: .milliseconds(100))
                    await runtime.requestLogger?.flush()
                    asyncSamples = try await stores.requestLog.samples(
                        feature: "report", since: 0, until: .infinity, limit: 10)
                }
                #expect(asyncSamples.map(\.source) == [.async])
                #expect(asyncSamples.map(\.inputTokens) == [3] && asyncSamples.map(\.outputTokens) == [1])

                await runtime.requestLogger?.flush()
                let live = try await stores.requestLog.samples(feature: "live", since: 0, until: .infinity, limit: 10)
                #expect(live.count == 3)
                #expect(live.allSatisfy { $0.source == .realtime && $0.inputTokens == 3 && $0.outputTokens == 1 })

                let report = try await #require(runtime.advice).report(features: ["live"])
                let cost = try #require(report.features.first).axes.cost
                let tokens = try #require(cost.tokens)
                #expect(tokens.measured == TokenMeasures(perCall: TokenCounts(input: 3, output: 1), answers: 3))
                #expect(tokens.price == TokenPrice(inputPerMillion: 2.5, outputPerMillion: 10))
                // 3 × 2.5 / 1M + 1 × 10 / 1M = 0.0000175 a call, at every call a day.
                let perCall = 0.000_017_5
                let realtime = try #require(cost.costs.first { $0.pattern == .realtime })
                let tokenTerm = try #require(realtime.terms.first { $0.name == "tokens" })
                #expect(abs(tokenTerm.monthly - cost.callsPerDay * 30.4 * perCall) < 1e-12)
                #expect(cost.costs.allSatisfy { $0.terms.contains { $0.basis.hasPrefix("priced by tokens (remote)") } })
                #expect(cost.evidence.contains("priced by tokens: model remote"), "\(cost.evidence)")
                let text = try AdviceText.render(report, format: .markdown)
                #expect(text.contains("priced by tokens: 3 in + 1 out/call"), "\(text)")
                #expect(
                    text.contains(
                        "Token prices: remote 2.50 input / 10.00 output per 1M tokens USD, 50% off through the batch API."
                    ), "\(text)")
                let html = try AdviceText.render(report, format: .html)
                #expect(html.contains("tokens (remote)") && html.contains("tokens per call"))
                // The JSON report reads back whole: the prices and the cost axis's tokens included.
                let written = try AdviceText.render(report, format: .json)
                #expect(try AdviceText.decode(AdviceReport.self, from: Data(written.utf8)) == report)
            }
            group.cancelAll()
        }
    }

    @Test("a report written before token prices existed reads back with none")
    func pricingWithoutModels() throws {
        let old = #"{"core_hour": 0.05, "spot_discount": 0.6, "currency": "EUR"}"#
        let pricing = try AdviceText.decode(Pricing.self, from: Data(old.utf8))
        #expect(pricing == Pricing(coreHour: 0.05, spotDiscount: 0.6, currency: "EUR"))
        #expect(pricing.models.isEmpty)
    }
}
