import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineHTTP
import FreshlineJSON
import FreshlineRuntime
import FreshlineTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Prometheus
import Testing

/// The HTTP API end to end through Hummingbird's test client, with the runtime running.
@Suite("HTTP API")
struct HTTPAPITests {
    static let row16 = "[0.5,-1.2,0.3,2.0,0.0,1.1,-0.4,0.9,0.2,-2.2,1.5,0.7,-0.1,0.05,1.9,-0.6]"

    /// Runs `body` against a live runtime over the standard test manifest.
    func withServer(
        _ yaml: String = TestManifest.standard,
        _ body:
            @Sendable @escaping (any TestClientProtocol, ServingRuntime, PrometheusCollectorRegistry) async throws ->
            Void
    ) async throws {
        let registry = PrometheusCollectorRegistry()
        let runtime = try TestManifest.runtime(yaml, factory: PrometheusMetricsFactory(registry: registry))
        let app = Application(router: FreshlineServer.router(runtime: runtime, registry: registry))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runtime.run() }
            try await app.test(.router) { client in try await body(client, runtime, registry) }
            group.cancelAll()
        }
    }

    static func json(_ buffer: ByteBuffer) throws -> [String: JSONValue] {
        try JSONDecoder().decode([String: JSONValue].self, from: Data(buffer.readableBytesView))
    }

    static let app: HTTPFields = [.authorization: "Bearer app-secret", .contentType: "application/json"]
    static let ops: HTTPFields = [.authorization: "Bearer ops-secret"]

    @Test("a real-time prediction carries outputs and provenance")
    func predict() async throws {
        try await withServer { client, _, _ in
            let body = #"{"key": "acct-1", "inputs": {"X": \#(Self.row16)}}"#
            try await client.execute(
                uri: "/v1/features/churn/predict", method: .post, headers: Self.app, body: ByteBuffer(string: body)
            ) { response in
                #expect(response.status == .ok, "\(String(buffer: response.body))")
                #expect(response.headers[.age] == "0")
                let json = try Self.json(response.body)
                #expect(json["source"] == .string("realtime"))
                #expect(json["key"] == .string("acct-1"))
                #expect(json["age_seconds"] == .number(0) || json["age_seconds"] == .integer(0))
                guard case .string(let version)? = json["model_version"] else {
                    Issue.record("no model_version")
                    return
                }
                #expect(version.count == 12)
                guard case .string(let computedAt)? = json["computed_at"] else {
                    Issue.record("no computed_at")
                    return
                }
                #expect(computedAt.hasSuffix("Z") && computedAt.count == 24)
                guard case .object(let outputs)? = json["outputs"] else {
                    Issue.record("no outputs")
                    return
                }
                #expect(Set(outputs.keys) == ["label", "probabilities"])
            }
        }
    }

    @Test("the real-time answer equals the engine's answer for the same row")
    func predictMatchesEngine() async throws {
        try await withServer { client, runtime, _ in
            let model = try #require(runtime.models["gbdt"]?.local)
            let row: [String: JSONValue] = ["X": try JSONDecoder().decode(JSONValue.self, from: Data(Self.row16.utf8))]
            let expected = try RowBatch.rows(
                outputs: try model.run(try RowBatch.tensors(rows: [row], inputs: model.metadata.inputs)), count: 1)[0]
            let body = #"{"inputs": {"X": \#(Self.row16)}}"#
            try await client.execute(
                uri: "/v1/features/churn/predict", method: .post, headers: Self.app, body: ByteBuffer(string: body)
            ) { response in
                let json = try Self.json(response.body)
                #expect(json["outputs"] == .object(expected))
            }
        }
    }

    @Test("several rows in one request, with a per-row error")
    func multiRow() async throws {
        try await withServer { client, _, _ in
            let body =
                #"{"rows": [{"key": 1, "inputs": {"X": \#(Self.row16)}}, {"key": 2, "inputs": {"X": [1, 2]}}, {"key": "3", "inputs": {"X": \#(Self.row16)}}]}"#
            try await client.execute(
                uri: "/v1/features/churn/predict", method: .post, headers: Self.app, body: ByteBuffer(string: body)
            ) { response in
                #expect(response.status == .ok)
                let json = try Self.json(response.body)
                guard case .array(let results)? = json["results"] else {
                    Issue.record("no results")
                    return
                }
                #expect(results.count == 3)
                if case .object(let first) = results[0] {
                    #expect(first["key"] == .string("1"))
                } else {
                    Issue.record("row 0")
                }
                if case .object(let second) = results[1] {
                    guard case .object(let error)? = second["error"] else {
                        Issue.record("row 1 has no error")
                        return
                    }
                    #expect(error["code"] == .string("bad_request"))
                } else {
                    Issue.record("row 1")
                }
                if case .object(let third) = results[2] {
                    #expect(third["source"] == .string("realtime"))
                } else {
                    Issue.record("row 2")
                }
            }
        }
    }

    @Test("bad input gets a 4xx JSON error with a code and message")
    func badInput() async throws {
        try await withServer { client, _, _ in
            let cases: [(String, String, HTTPResponse.Status, String)] = [
                ("/v1/features/churn/predict", "{not json", .badRequest, "bad_request"),
                ("/v1/features/churn/predict", #"{"inputs": {"X": [1, 2, 3]}}"#, .badRequest, "bad_request"),
                ("/v1/features/churn/predict", #"{"inputs": {"X": "text"}}"#, .badRequest, "bad_request"),
                ("/v1/features/churn/predict", #"{"inputs": {}}"#, .badRequest, "bad_request"),
                (
                    "/v1/features/churn/predict", #"{"inputs": {"X": \#(Self.row16)}, "max_staleness": "soon"}"#,
                    .badRequest, "bad_request"
                ),
                ("/v1/features/nope/predict", #"{"inputs": {}}"#, .notFound, "not_found"),
            ]
            for (uri, body, status, code) in cases {
                try await client.execute(uri: uri, method: .post, headers: Self.app, body: ByteBuffer(string: body)) {
                    response in
                    #expect(response.status == status, "\(body)")
                    let json = try Self.json(response.body)
                    guard case .object(let error)? = json["error"] else {
                        Issue.record("no error object for \(body)")
                        return
                    }
                    #expect(error["code"] == .string(code), "\(body)")
                    guard case .string(let message)? = error["message"] else {
                        Issue.record("no message")
                        return
                    }
                    #expect(!message.isEmpty)
                }
            }
            let huge = #"{"inputs": {"X": ["# + String(repeating: "1.0,", count: 400_000) + "1.0]}}"
            try await client.execute(
                uri: "/v1/features/churn/predict", method: .post, headers: Self.app, body: ByteBuffer(string: huge)
            ) { response in
                #expect(response.status == .contentTooLarge)
            }
        }
    }

    @Test("tokens and scopes are enforced; health and metrics are open")
    func auth() async throws {
        try await withServer { client, _, _ in
            let body = ByteBuffer(string: #"{"inputs": {"X": \#(Self.row16)}}"#)
            try await client.execute(uri: "/v1/features/churn/predict", method: .post, body: body) {
                #expect($0.status == .unauthorized)
            }
            try await client.execute(
                uri: "/v1/features/churn/predict", method: .post, headers: [.authorization: "Bearer wrong"], body: body
            ) {
                #expect($0.status == .unauthorized)
            }
            try await client.execute(uri: "/v1/features/churn/predict", method: .post, headers: Self.ops, body: body) {
                #expect($0.status == .forbidden)
            }
            try await client.execute(uri: "/v1/features", method: .get, headers: Self.ops) { #expect($0.status == .ok) }
            try await client.execute(uri: "/healthz/live", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/healthz/ready", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/metrics", method: .get) { #expect($0.status == .ok) }
        }
    }

    @Test("a deadline that cannot be met is shed: 503 with Retry-After, or the default rung")
    func overload() async throws {
        try await withServer { client, _, registry in
            var headers = Self.app
            headers[HTTPField.Name("X-Freshline-Timeout")!] = "1us"
            let body = ByteBuffer(string: #"{"inputs": {"X": \#(Self.row16)}}"#)
            try await client.execute(uri: "/v1/features/churn/predict", method: .post, headers: headers, body: body) {
                response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] == "1")
                let json = try Self.json(response.body)
                guard case .object(let error)? = json["error"] else {
                    Issue.record("no error")
                    return
                }
                #expect(error["code"] == .string("overloaded"))
            }
            try await client.execute(uri: "/v1/features/fraud/predict", method: .post, headers: headers, body: body) {
                response in
                #expect(response.status == .ok)
                let json = try Self.json(response.body)
                #expect(json["source"] == .string("default"))
                #expect(json["outputs"] == .object(["label": .integer(0)]))
            }
            let text = String(decoding: registry.emitToBuffer(), as: UTF8.self)
            #expect(text.contains(#"freshline_shed_total{feature="churn"} 1"#))
            #expect(text.contains(#"freshline_fallback_total{feature="fraud",rung="default"} 1"#))
            #expect(text.contains(#"freshline_fallback_total{feature="churn",rung="error"} 1"#))
        }
    }

    @Test("metrics use the contract's names")
    func metrics() async throws {
        try await withServer { client, _, _ in
            let body = ByteBuffer(string: #"{"inputs": {"X": \#(Self.row16)}}"#)
            try await client.execute(uri: "/v1/features/churn/predict", method: .post, headers: Self.app, body: body) {
                #expect($0.status == .ok, "\(String(buffer: $0.body))")
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                for name in [
                    "freshline_requests_total", "freshline_request_duration_seconds",
                    "freshline_queue_duration_seconds",
                    "freshline_compute_duration_seconds", "freshline_batch_size", "freshline_served_age_seconds",
                ] {
                    #expect(text.contains(name), "missing \(name)")
                }
                #expect(text.contains(#"freshline_requests_total{feature="churn",source="realtime",outcome="ok"} 1"#))
            }
        }
    }

    @Test("feature listing and detail with live figures")
    func features() async throws {
        try await withServer { client, _, _ in
            try await client.execute(uri: "/v1/features", method: .get, headers: Self.app) { response in
                let json = try Self.json(response.body)
                guard case .array(let items)? = json["features"] else {
                    Issue.record("no features")
                    return
                }
                #expect(items.count == 3)
            }
            try await client.execute(uri: "/v1/features/recs", method: .get, headers: Self.app) { response in
                #expect(response.status == .ok)
                let json = try Self.json(response.body)
                guard case .object(let model)? = json["model"], case .object(let live)? = json["live"] else {
                    Issue.record("shape")
                    return
                }
                #expect(model["name"] == .string("towers"))
                #expect(live["queued"] == .integer(0))
            }
        }
    }

    @Test("Open Inference Protocol V2: server, model metadata, JSON and binary inference")
    func openInference() async throws {
        try await withServer { client, _, _ in
            try await client.execute(uri: "/v2", method: .get, headers: Self.app) { response in
                let json = try Self.json(response.body)
                #expect(json["name"] == .string("freshline"))
            }
            try await client.execute(uri: "/v2/models/towers/ready", method: .get, headers: Self.app) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/v2/models/nope/ready", method: .get, headers: Self.app) {
                #expect($0.status == .notFound)
            }
            try await client.execute(uri: "/v2/models/towers", method: .get, headers: Self.app) { response in
                let json = try Self.json(response.body)
                #expect(json["platform"] == .string("onnx"))
                #expect(
                    json["inputs"]
                        == .array([
                            .object([
                                "name": .string("user_id"), "datatype": .string("INT64"),
                                "shape": .array([.integer(-1)]),
                            ])
                        ]))
            }
            let request =
                #"{"id": "r1", "inputs": [{"name": "user_id", "shape": [2], "datatype": "INT64", "data": [3, 7]}]}"#
            try await client.execute(
                uri: "/v2/models/towers/infer", method: .post, headers: Self.app, body: ByteBuffer(string: request)
            ) { response in
                #expect(response.status == .ok)
                let json = try Self.json(response.body)
                #expect(json["id"] == .string("r1"))
                guard case .array(let outputs)? = json["outputs"] else {
                    Issue.record("no outputs")
                    return
                }
                #expect(outputs.count == 2)
                for case .object(let o) in outputs { #expect(o["shape"] == .array([.integer(2), .integer(10)])) }
            }
            // Binary tensor data: the JSON header, then 2 little-endian int64 values.
            let header =
                #"{"inputs": [{"name": "user_id", "shape": [2], "datatype": "INT64", "parameters": {"binary_data_size": 16}}], "outputs": [{"name": "items", "parameters": {"binary_data": true}}]}"#
            var buffer = ByteBuffer(string: header)
            buffer.writeInteger(Int64(3), endianness: .little)
            buffer.writeInteger(Int64(7), endianness: .little)
            var headers = Self.app
            headers[HTTPField.Name("Inference-Header-Content-Length")!] = String(header.utf8.count)
            try await client.execute(uri: "/v2/models/towers/infer", method: .post, headers: headers, body: buffer) {
                response in
                #expect(response.status == .ok)
                let jsonLength = Int(response.headers[HTTPField.Name("Inference-Header-Content-Length")!] ?? "") ?? 0
                #expect(jsonLength > 0)
                #expect(response.body.readableBytes == jsonLength + 2 * 10 * 8)
            }
            let bad = #"{"inputs": [{"name": "user_id", "shape": [2], "datatype": "FP32", "data": [3, 7]}]}"#
            try await client.execute(
                uri: "/v2/models/towers/infer", method: .post, headers: Self.app, body: ByteBuffer(string: bad)
            ) { response in
                #expect(response.status == .badRequest)
                let json = try Self.json(response.body)
                guard case .string(let message)? = json["error"] else {
                    Issue.record("no error")
                    return
                }
                #expect(message.contains("INT64"))
            }
        }
    }
}
