internal import FreshlineCore
internal import FreshlineEngine
public import FreshlineRuntime
public import Hummingbird
public import Logging
public import Prometheus

/// Builds the HTTP application over a serving runtime: the `/v1` API, the Open Inference Protocol `/v2`,
/// `/metrics` (Prometheus text) and the health endpoints.
public enum FreshlineServer {
    /// The router with every route and the bearer-token middleware.
    public static func router(runtime: ServingRuntime, registry: PrometheusCollectorRegistry) -> Router<
        BasicRequestContext
    > {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: BearerAuthMiddleware(tokens: runtime.manifest.tokens))
        let limit = runtime.manifest.server.maxBodyBytes
        FeatureRoutes<BasicRequestContext>(runtime: runtime, maxBodyBytes: limit).register(on: router)
        BatchRoutes<BasicRequestContext>(runtime: runtime, maxBodyBytes: limit).register(on: router)
        JobRoutes<BasicRequestContext>(runtime: runtime, maxBodyBytes: limit).register(on: router)
        OpenInferenceRoutes<BasicRequestContext>(runtime: runtime, maxBodyBytes: limit).register(on: router)
        AdviceRoutes<BasicRequestContext>(runtime: runtime).register(on: router)
        router.get("/healthz/live") { _, _ in HTTPResponse.Status.ok }
        // Not ready while shutting down, or while a batch feature's snapshot is older than its max_staleness.
        router.get("/healthz/ready") { _, _ -> Response in
            let problems = runtime.readinessProblems
            let body: JSONValue =
                problems.isEmpty
                ? .object(["status": .string("ready")])
                : .object(["status": .string("not_ready"), "problems": .array(problems.map(JSONValue.string))])
            return JSONResponse.make(body, status: problems.isEmpty ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { _, _ in
            let text = registry.emitToBuffer()
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
        return router
    }

    /// The application listening where the manifest (or the command line) says.
    public static func application(
        runtime: ServingRuntime, registry: PrometheusCollectorRegistry, host: String, port: Int,
        logger: Logger
    ) -> some ApplicationProtocol {
        Application(
            router: router(runtime: runtime, registry: registry),
            configuration: .init(address: .hostname(host, port: port), serverName: "freshline"),
            logger: logger
        )
    }
}
