import ArgumentParser
import CoreMetrics
import FreshlineCore
import FreshlineEngine
import FreshlineRuntime
import Logging

/// `freshline check FILE`: validates a manifest and its models without serving. Upstream models are connected
/// (their metadata read, their API key found), as the server would at start-up.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Validate a manifest and the models it names, without serving.")

    @Argument(help: "The manifest (YAML).") var file: String

    func run() async throws {
        let manifest: Manifest
        do { manifest = try ManifestLoader.load(path: file) } catch let errors as ManifestErrors {
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
