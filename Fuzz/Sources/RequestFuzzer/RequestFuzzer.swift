import CoreMetrics
import Dispatch
import Foundation
import FreshlineCore
import FreshlineHTTP
import FreshlineRuntime
import FreshlineStore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded
import Prometheus

/// libFuzzer target over the HTTP API's request decoding: arbitrary bodies and headers (`X-Freshline-Timeout`,
/// `Prefer`, `Idempotency-Key`, `Inference-Header-Content-Length`, `Content-Length`) and query values, sent through
/// the real router (scopes, routes, the predict and job bodies, the Open Inference Protocol's JSON and binary
/// tensors, the advice query) of a running runtime. A client's input must never crash the process and never get a
/// 5xx other than 503/504 (the server's own state: overloaded, unavailable, a deadline): either is reported as a
/// crash, with the input saved by libFuzzer.
///
/// Input layout: byte 0 picks the route; the rest is split at the first four 0xFF bytes into four header values,
/// and what follows is the body. Header bytes outside visible ASCII are dropped (a client cannot send them).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequest(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: bytes, count: count))
    guard let selector = input.first else { return 0 }
    var parts = input.dropFirst().split(separator: 0xFF, maxSplits: 4, omittingEmptySubsequences: false).map(Array.init)
    while parts.count < 5 { parts.append([]) }
    let values = parts[0..<4].map { String(decoding: $0.filter { (0x20...0x7E).contains($0) }, as: UTF8.self) }
    let body = parts[4]
    let route = Harness.routes[Int(selector) % Harness.routes.count]
    var headers: HTTPFields = [.contentType: "application/json"]
    headers[.authorization] = route.admin ? "Bearer ops-secret" : "Bearer app-secret"
    let names = ["X-Freshline-Timeout", "Prefer", "Idempotency-Key", "Inference-Header-Content-Length"]
    for (name, value) in zip(names, values) where !value.isEmpty {
        headers[HTTPField.Name(name)!] = value
    }
    // Bit 7 of the selector: a declared length that disagrees with the body.
    headers[.contentLength] = String(selector & 0x80 != 0 ? body.count + Int(selector & 0x7F) : body.count)
    let path = route.path.replacingOccurrences(
        of: "{q}", with: values[0].addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? "")
    let status = Harness.shared.respond(method: route.method, path: path, headers: headers, body: body)
    if status.code >= 500 && status != .serviceUnavailable && status != .gatewayTimeout {
        fatalError("\(route.method) \(path) answered \(status) to a client's input")
    }
    return 0
}

/// The server the fuzzer talks to: a runtime over the model zoo with a job store, and the real router.
final class Harness: Sendable {
    struct Route {
        var method: HTTPRequest.Method
        var path: String
        var admin = false
    }

    static let routes: [Route] = [
        Route(method: .post, path: "/v1/features/churn/predict"),
        Route(method: .post, path: "/v1/features/recs/predict"),
        Route(method: .post, path: "/v1/features/report/jobs"),
        Route(method: .post, path: "/v2/models/towers/infer"),
        Route(method: .post, path: "/v2/models/gbdt/infer"),
        Route(method: .get, path: "/v1/advice?what_if={q}", admin: true),
        Route(method: .get, path: "/v1/jobs?limit={q}", admin: true),
        Route(method: .post, path: "/v1/features/churn/jobs"),
    ]

    static let shared = Harness()

    let responder: RouterResponder<FreshlineRequestContext>
    let runtime: ServingRuntime

    init() {
        let zoo = ProcessInfo.processInfo.environment["FRESHLINE_ZOO"] ?? "../Tests/Fixtures/zoo"
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("freshline-fuzz-\(getpid())")
        try! FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let manifest = """
            version: 1
            models:
              gbdt: \(zoo)/gbc_binary.onnx
              towers: \(zoo)/two_tower.onnx
            features:
              churn:
                model: gbdt
                key: account_id
                latency_budget: 2s
                max_staleness: 24h
                inputs:
                  X: float[16]
              recs:
                model: towers
                key: user_id
              report:
                model: gbdt
                pattern: async
                key: account_id
            server:
              job_workers: 1
            tokens:
              - {name: app, token: app-secret, scopes: [predict]}
              - {name: ops, token: ops-secret, scopes: [admin]}
            """
        let path = folder.appendingPathComponent("freshline.yaml").path
        try! manifest.write(toFile: path, atomically: true, encoding: .utf8)
        let store = try! SQLiteStore(path: folder.appendingPathComponent("state.sqlite").path)
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        runtime = try! ServingRuntime(
            manifest: try! ManifestLoader.load(path: path), metricsFactory: NOOPMetricsHandler.instance,
            requestLogStore: store, batchStore: store, jobStore: store, logger: logger)
        responder = FreshlineServer.router(runtime: runtime, registry: PrometheusCollectorRegistry()).buildResponder()
        let runtime = runtime
        Task.detached { try await runtime.run() }
    }

    /// Sends one request through the router and returns the status it answered (a thrown error's own status, or
    /// 500 for an error that is not an HTTP error, as Hummingbird would answer it).
    func respond(method: HTTPRequest.Method, path: String, headers: HTTPFields, body: [UInt8]) -> HTTPResponse.Status {
        let done = DispatchSemaphore(value: 0)
        let result = Result()
        let request = Request(
            head: HTTPRequest(
                method: method, scheme: "http", authority: "localhost", path: path, headerFields: headers),
            body: RequestBody(buffer: ByteBuffer(bytes: body)))
        let responder = responder
        Task {
            var logger = Logger(label: "fuzz")
            logger.logLevel = .critical
            let context = FreshlineRequestContext(
                source: ApplicationRequestContextSource(channel: EmbeddedChannel(), logger: logger))
            do {
                let response = try await responder.respond(to: request, context: context)
                result.set(response.status)
            } catch let error as any HTTPResponseError {
                result.set(error.status)
            } catch {
                result.set(.internalServerError)
            }
            done.signal()
        }
        done.wait()
        return result.get()
    }
}

/// The status a request task hands back to the fuzzer's thread.
final class Result: @unchecked Sendable {
    private let lock = NSLock()
    private var status: HTTPResponse.Status = .internalServerError
    func set(_ s: HTTPResponse.Status) { lock.withLock { status = s } }
    func get() -> HTTPResponse.Status { lock.withLock { status } }
}
