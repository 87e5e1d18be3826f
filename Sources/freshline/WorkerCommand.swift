import ArgumentParser
import FreshlineCore
import FreshlineRuntime
import FreshlineStores
import Logging
import Metrics
import ServiceLifecycle
import UnixSignals

/// `freshline worker FILE`: works on the manifest's async jobs and batch run ranges from the shared store, without
/// serving HTTP. SIGTERM or SIGINT gives unfinished jobs back to the queue and exits (a range in hand stops after its
/// chunk; its lease runs out and any worker resumes it).
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Work on async jobs and batch ranges from the manifest's store (no HTTP).")

    @Argument(help: "The manifest (YAML).") var file: String
    @Option(help: "Jobs worked on at once (default: the manifest's server.job_workers, else 2).") var concurrency: Int?
    @Option(help: "Batch ranges worked on at once (default 1; each uses the feature's batch.threads).")
    var batchWorkers: Int = 1

    func validate() throws {
        if let concurrency, !(1...256).contains(concurrency) {
            throw ValidationError("--concurrency must be 1…256")
        }
        if !(0...64).contains(batchWorkers) { throw ValidationError("--batch-workers must be 0…64") }
    }

    func run() async throws {
        var logger = Logger(label: "freshline-worker")
        logger.logLevel = .info
        let manifest: Manifest
        do { manifest = try ManifestLoader.load(path: file) } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
        let runtime: ServingRuntime
        let stores: StoreSet
        let upstreams: UpstreamSet
        do {
            stores = try StoreSet.open(for: manifest, logger: logger)
            upstreams = try await UpstreamSet.connect(
                manifest, metrics: NOOPMetricsHandler.instance, logger: logger, budgets: stores.budgets)
            runtime = try ServingRuntime(
                manifest: manifest, metricsFactory: NOOPMetricsHandler.instance, remoteModels: upstreams.models,
                stores: stores, requestLog: false,
                jobWorkers: concurrency ?? max(1, manifest.server.jobWorkers), batchWorkers: batchWorkers,
                batchSchedules: false, logger: logger)
        } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
        logger.info("worker on \(manifest.features.count) features, store \(stores.location)")
        let group = ServiceGroup(
            configuration: ServeCommand.serviceGroup(
                services: stores.services + [upstreams, runtime], shutdownTimeout: manifest.server.shutdownTimeout,
                logger: logger))
        try await group.run()
    }
}
