import ArgumentParser
import CoreMetrics
import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineRuntime
import Logging

/// `freshline check FILE`: validates a manifest and its models without serving. Upstream models are connected
/// (their metadata read, their API key found), as the server would at start-up. Secrets the manifest reads from the
/// environment (`token_env`, `server.webhooks.secret_env`) need not be set: each unset one is a `warning:` line on
/// standard error, not a failure (serving refuses to start without them).
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Validate a manifest and the models it names, without serving.")

    @Argument(help: "The manifest (YAML).") var file: String

    func run() async throws {
        let manifest: Manifest
        let unsetSecrets: [ManifestError]
        do { (manifest, unsetSecrets) = try ManifestLoader.loadWithoutSecrets(path: file) } catch let errors
            as ManifestErrors
        {
            throw CLIError(errors.description)
        }
        var logger = Logger(label: "freshline-check")
        logger.logLevel = .warning
        let upstreams: UpstreamSet
        do {
            upstreams = try await UpstreamSet.connect(manifest, metrics: NOOPMetricsHandler.instance, logger: logger)
        } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
        let (models, loadErrors) = ServingModel.loadAll(manifest, remote: upstreams.models)
        let problems = loadErrors + ManifestValidator.problems(manifest, models: models)
        await upstreams.close()
        for secret in unsetSecrets { FileHandle.standardError.write(Data("warning: \(secret)\n".utf8)) }
        guard problems.isEmpty else { throw CLIError(problems.map(\.description).joined(separator: "\n")) }
        print("\(file): ok — \(manifest.models.count) models, \(manifest.features.count) features")
        for feature in manifest.features.values.sorted(by: { $0.name < $1.name }) {
            let version = models[feature.model]?.metadata.version ?? "-"
            print(
                "  \(feature.name): \(feature.pattern.rawValue), model \(feature.model) (\(version)), latency budget \(DurationText.format(feature.latencyBudget))"
            )
        }
    }
}
