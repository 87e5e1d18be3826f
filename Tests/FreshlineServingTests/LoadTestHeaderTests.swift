import FreshlineCore
import FreshlineHTTP
import FreshlineRuntime
import FreshlineStore
import FreshlineTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Metrics
import Prometheus
import Testing

/// A load test's requests (`X-Freshline-Load-Test`) are answered as any other but never sampled into the request
/// log, so the advisor never mixes them with production traffic.
@Suite("Load-test requests and the request log")
struct LoadTestHeaderTests {
    static let row16 = "[0.5,-1.2,0.3,2.0,0.0,1.1,-0.4,0.9,0.2,-2.2,1.5,0.7,-0.1,0.05,1.9,-0.6]"

    /// Sends one request without the header and two with it (each `headers`), and returns the samples logged.
    func logged(_ yaml: String, headers: HTTPFields) async throws -> [RequestLogSample] {
        let store = try SQLiteStore()
        let manifest = try ManifestLoader.load(
            path: try TestManifest.write(yaml + "\nserver:\n  request_log_sample_rate: 1\n"))
        let runtime = try ServingRuntime(
            manifest: manifest, metricsFactory: NOOPMetricsHandler.instance, requestLogStore: store,
            logger: Logger(label: "test"))
        let registry = PrometheusCollectorRegistry()
        let app = Application(router: FreshlineServer.router(runtime: runtime, registry: registry))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runtime.run() }
            try await app.test(.router) { client in
                for (index, load) in [false, true, true].enumerated() {
                    var fields = headers
                    fields[.contentType] = "application/json"
                    if load { fields[HTTPField.Name("X-Freshline-Load-Test")!] = "load_0123456789abcdef" }
                    let body = #"{"key": "acct-\#(index)", "inputs": {"X": \#(Self.row16)}}"#
                    try await client.execute(
                        uri: "/v1/features/churn/predict", method: .post, headers: fields,
                        body: ByteBuffer(string: body)
                    ) { response in
                        #expect(response.status == .ok, "\(String(buffer: response.body))")
                    }
                }
            }
            await runtime.requestLogger?.flush()
            group.cancelAll()
        }
        return try await store.samples(feature: "churn", since: 0, until: .infinity, limit: 100)
    }

    @Test("with tokens: an authenticated caller's load-test requests are answered and not logged")
    func authenticated() async throws {
        let samples = try await logged(TestManifest.standard, headers: [.authorization: "Bearer app-secret"])
        #expect(samples.count == 1)
        #expect(samples.first?.keyHash == KeyHash.hex("acct-0"))
    }

    @Test("on an open API the header is honoured too")
    func openAPI() async throws {
        let open = """
            version: 1
            models:
              gbdt: ZOO/gbc_binary.onnx
            features:
              churn:
                model: gbdt
                key: account_id
                latency_budget: 60s
            """
        let samples = try await logged(open, headers: [:])
        #expect(samples.map(\.keyHash) == [KeyHash.hex("acct-0")])
    }
}
