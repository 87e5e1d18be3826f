import ArgumentParser
import FreshlineCore
import FreshlineEngine
import FreshlineRuntime

/// `freshline check FILE`: validates a manifest and its models without serving.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Validate a manifest and the models it names, without serving.")

    @Argument(help: "The manifest (YAML).") var file: String

    func run() throws {
        let manifest: Manifest
        do { manifest = try ManifestLoader.load(path: file) } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
        let (models, loadErrors) = ServingModel.loadAll(manifest)
        let problems = loadErrors + ManifestValidator.problems(manifest, models: models)
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
