public import CoreMetrics
internal import Foundation
public import FreshlineCore
public import FreshlineUpstream
public import Logging
public import ServiceLifecycle

/// The manifest's upstream models (`kind: oip | openai | http`), connected: each one's metadata read, its API key
/// found, its server answering. A `Service`: it waits for the graceful shutdown, then closes every model's
/// connections; list it before the runtime in the service group, so that it stops after the runtime has drained.
public final class UpstreamSet: Service {
    /// The connected models by manifest name, for `ServingRuntime(remoteModels:)`.
    public let models: [String: any RemoteModel]

    init(models: [String: any RemoteModel]) { self.models = models }

    /// Connects every upstream model of `manifest` at once. Throws `ManifestErrors` naming each entry that cannot
    /// work (its line in the manifest; `environment`: where API keys are looked up, the process's by default), the model, the URL and why — never an API key); the models that did connect
    /// are closed first.
    /// `budgets`: where rate-limit budgets are shared with the other servers of a cluster (`StoreSet.budgets`, set
    /// for PostgreSQL); `nil`: each server keeps its own.
    public static func connect(
        _ manifest: Manifest, environment: [String: String]? = nil,
        metrics: any MetricsFactory, logger: Logger, budgets: (any UpstreamBudgetStore)? = nil
    ) async throws -> UpstreamSet {
        let environment = environment ?? ProcessInfo.processInfo.environment
        let specs = manifest.models.values.filter { $0.upstream != nil }.sorted { $0.name < $1.name }
        let outcomes = await withTaskGroup(of: (ModelSpec, Result<any RemoteModel, any Error>).self) { group in
            for spec in specs {
                group.addTask {
                    do {
                        return (
                            spec,
                            .success(
                                try await Upstreams.connect(
                                    spec, environment: environment, logger: logger, metrics: metrics,
                                    budgetStore: budgets))
                        )
                    } catch {
                        return (spec, .failure(error))
                    }
                }
            }
            var outcomes: [(ModelSpec, Result<any RemoteModel, any Error>)] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        var models: [String: any RemoteModel] = [:]
        var errors: [ManifestError] = []
        for (spec, outcome) in outcomes.sorted(by: { $0.0.name < $1.0.name }) {
            switch outcome {
            case .success(let model): models[spec.name] = model
            case .failure(let error as UpstreamError): errors.append(ManifestError(spec.location, error.message))
            case .failure(let error): errors.append(ManifestError(spec.location, "cannot connect: \(error)"))
            }
        }
        guard errors.isEmpty else {
            for model in models.values { await model.shutdown() }
            throw ManifestErrors(errors)
        }
        if !models.isEmpty {
            logger.info(
                "upstream models connected",
                metadata: ["models": "\(models.keys.sorted().joined(separator: ", "))"])
        }
        return UpstreamSet(models: models)
    }

    /// Waits for the graceful shutdown (or cancellation), then closes the models' connections.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    /// Closes every model's connections (once; after the last call).
    public func close() async {
        for model in models.values { await model.shutdown() }
    }
}
