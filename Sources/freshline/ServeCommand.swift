import ArgumentParser
import FreshlineCore
import FreshlineHTTP
import FreshlineRuntime
import FreshlineStores
import Logging
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `freshline serve FILE`: serves the manifest's features until SIGTERM or SIGINT, then drains.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve a manifest's features over HTTP (/v1, /v2, /metrics, /healthz).")

    @Argument(help: "The manifest (YAML).") var file: String
    @Option(help: "Listen address (default: the manifest's server.host, else 127.0.0.1).") var host: String?
    @Option(help: "Listen port (default: the manifest's server.port, else 8080).") var port: Int?
    @Option(
        help: ArgumentHelp(
            "Run the wall clock N times faster, for demos and simulations (hours of traffic in minutes).",
            discussion: "Only the timestamps the advisor reads are accelerated; deadlines, leases and cron keep "
                + "real time. Never in production."))
    var clockSpeed: Double?
    @Option(
        help: ArgumentHelp(
            "Batch range workers in this server (default 1).",
            discussion: "0 leaves batch computation to `freshline worker` processes on the same store; the server "
                + "still schedules runs and serves their snapshots."))
    var batchWorkers: Int = 1

    func validate() throws {
        if let clockSpeed, !(clockSpeed >= 1 && clockSpeed <= 100_000) {
            throw ValidationError("--clock-speed must be between 1 and 100000")
        }
        if !(0...64).contains(batchWorkers) { throw ValidationError("--batch-workers must be 0…64") }
    }

    func run() async throws {
        var logger = Logger(label: "freshline")
        logger.logLevel = .info
        let manifest: Manifest
        do { manifest = try ManifestLoader.load(path: file) } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
        let registry = PrometheusCollectorRegistry()
        let runtime: ServingRuntime
        let stores: StoreSet
        let upstreams: UpstreamSet
        do {
            stores = try StoreSet.open(for: manifest, logger: logger)
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.valueHistogramBuckets["freshline_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
            // Upstream models are connected before serving: one that cannot work stops the server, naming its entry.
            upstreams = try await UpstreamSet.connect(
                manifest, metrics: factory, logger: logger, budgets: stores.budgets)
            runtime = try ServingRuntime(
                manifest: manifest, metricsFactory: factory, remoteModels: upstreams.models, stores: stores,
                batchWorkers: batchWorkers,
                clock: clockSpeed.map { AcceleratedWallClock(speed: $0) } ?? SystemWallClock(), logger: logger)
        } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
        logger.info("store: \(stores.location)")
        if let clockSpeed { logger.warning("the wall clock runs \(clockSpeed)× faster (--clock-speed): a simulation") }
        if manifest.tokens.isEmpty {
            logger.warning("no tokens configured: the API is open to anyone who can reach it")
        }
        let app = FreshlineServer.application(
            runtime: runtime, registry: registry, host: host ?? manifest.server.host,
            port: port ?? manifest.server.port, logger: logger)
        // Services shut down in reverse order: the HTTP server stops first and finishes its requests, then the
        // runtime drains its queues, then the upstreams' and the store's connections close.
        let group = ServiceGroup(
            configuration: Self.serviceGroup(
                services: stores.services + [upstreams, runtime, app], shutdownTimeout: manifest.server.shutdownTimeout,
                logger: logger))
        try await group.run()
    }

    /// The service group's configuration: SIGTERM and SIGINT start a graceful shutdown, which may take at most
    /// `shutdownTimeout` before what is left is cancelled, and the cancellation at most 5 s more before the process
    /// ends regardless (streams and `Prefer: wait` end by themselves on graceful shutdown; this bounds the rest).
    static func serviceGroup(services: [any Service], shutdownTimeout: Duration, logger: Logger)
        -> ServiceGroupConfiguration
    {
        var configuration = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = shutdownTimeout
        configuration.maximumCancellationDuration = .seconds(5)
        return configuration
    }
}
