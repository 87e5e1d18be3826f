import ArgumentParser
import FreshlineCore
import FreshlineRuntime
import Logging
import Metrics
import ServiceLifecycle
import UnixSignals

/// `freshline worker FILE`: works on the manifest's async jobs from the shared store, without serving HTTP.
/// SIGTERM or SIGINT gives unfinished jobs back to the queue and exits.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Work on async jobs from the manifest's store (no HTTP server).")

    @Argument(help: "The manifest (YAML).") var file: String
    @Option(help: "Jobs worked on at once (default: the manifest's server.job_workers, else 2).") var concurrency: Int?

    func validate() throws {
        if let concurrency, !(1...256).contains(concurrency) {
            throw ValidationError("--concurrency must be 1…256")
        }
    }

    func run() async throws {
        var logger = Logger(label: "freshline-worker")
        logger.logLevel = .info
        let manifest: Manifest
        do { manifest = try ManifestLoader.load(path: file) } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
        let runtime: ServingRuntime
        do {
            let store = try ServingRuntime.openStore(for: manifest)
            runtime = try ServingRuntime(
                manifest: manifest, metricsFactory: NOOPMetricsHandler.instance, requestLogStore: nil,
                jobStore: store, jobWorkers: concurrency ?? max(1, manifest.server.jobWorkers), webhookStore: store,
                logger: logger)
        } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
        logger.info("worker on \(manifest.features.count) features, store \(manifest.store.location)")
        let group = ServiceGroup(
            configuration: .init(services: [runtime], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
