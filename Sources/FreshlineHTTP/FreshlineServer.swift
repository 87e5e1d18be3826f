internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
public import FreshlineRuntime
public import Hummingbird
public import Logging
internal import NIOCore
public import Prometheus

/// Builds the HTTP application over a serving runtime: the `/v1` API, the Open Inference Protocol `/v2`,
/// `/metrics` (Prometheus text) and the health endpoints.
public enum FreshlineServer {
    /// The router with every route, the bearer-token middleware, and the store-outage answer (503).
    public static func router(runtime: ServingRuntime, registry: PrometheusCollectorRegistry) -> Router<
        FreshlineRequestContext
    > {
        let router = Router(context: FreshlineRequestContext.self)
        // Outermost, around every route and the token checks: a store outage is a 503, never a 500.
        router.add(middleware: StoreUnavailableMiddleware())
        let routes = ScopedRoutes(router, tokens: runtime.manifest.tokens)
        let limit = runtime.manifest.server.maxBodyBytes
        let inFlight = InFlightLimit(limit: runtime.manifest.server.maxInFlight)
        FeatureRoutes(runtime: runtime, maxBodyBytes: limit, inFlight: inFlight).register(on: routes)
        BatchRoutes(runtime: runtime, maxBodyBytes: limit).register(on: routes)
        JobRoutes(runtime: runtime, maxBodyBytes: limit).register(on: routes)
        OpenInferenceRoutes(runtime: runtime, maxBodyBytes: limit, inFlight: inFlight).register(on: routes)
        AdviceRoutes(runtime: runtime).register(on: routes)
        registerOpen(on: routes.open, runtime: runtime, registry: registry)
        return router
    }

    /// Health and metrics: open to all (a load balancer or Prometheus has no token).
    static func registerOpen(
        on router: RouterGroup<FreshlineRequestContext>, runtime: ServingRuntime, registry: PrometheusCollectorRegistry
    ) {
        router.get("/healthz/live") { _, _ in HTTPResponse.Status.ok }
        // Not ready while shutting down, or while a batch feature's snapshot is older than its max_staleness.
        // Warnings (a batch feature's last run failed) are reported without taking the server out of rotation.
        router.get("/healthz/ready") { _, _ -> Response in
            let problems = runtime.readinessProblems
            let warnings = runtime.readinessWarnings
            var body: [String: JSONValue] = ["status": .string(problems.isEmpty ? "ready" : "not_ready")]
            if !problems.isEmpty { body["problems"] = .array(problems.map(JSONValue.string)) }
            if !warnings.isEmpty { body["warnings"] = .array(warnings.map(JSONValue.string)) }
            return JSONResponse.make(.object(body), status: problems.isEmpty ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { _, _ in
            let text = registry.emitToBuffer()
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
    }

    /// The application listening where the manifest (or the command line) says.
    public static func application(
        runtime: ServingRuntime, registry: PrometheusCollectorRegistry, host: String, port: Int,
        logger: Logger, onServerRunning: @escaping @Sendable (Int?) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let settings = runtime.manifest.server
        let connections = BoundedCounter(limit: settings.maxConnections)
        // The idle timeout closes a connection with nothing read or written for that long: an idle keep-alive
        // connection, and a request whose head or body stops arriving (Hummingbird's connection state handler
        // counts every part read; a half-sent head has sent no part, so it is idle from the start).
        let idle = TimeAmount.milliseconds(Int64((settings.idleTimeout.seconds * 1000).rounded(.up)))
        return Application(
            router: router(runtime: runtime, registry: registry),
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [ConnectionLimitHandler(counter: connections)], idleTimeout: idle)),
            configuration: .init(address: .hostname(host, port: port), serverName: "freshline"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port) },
            logger: logger
        )
    }
}
