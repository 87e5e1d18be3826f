internal import Foundation
public import FreshlineCore
public import FreshlineEngine

/// A manifest model loaded by the engine.
public struct ServingModel: Sendable {
    /// The manifest entry.
    public let spec: ModelSpec
    /// The loaded model.
    public let model: Model
    /// The resolved file path.
    public let path: String

    /// Loads every model of the manifest; paths are relative to the manifest's folder. Errors name the entry.
    public static func loadAll(_ manifest: Manifest) -> (models: [String: ServingModel], errors: [ManifestError]) {
        var models: [String: ServingModel] = [:]
        var errors: [ManifestError] = []
        let base = URL(fileURLWithPath: manifest.path).deletingLastPathComponent()
        for (name, spec) in manifest.models.sorted(by: { $0.key < $1.key }) {
            let url =
                spec.path.hasPrefix("/") ? URL(fileURLWithPath: spec.path) : base.appendingPathComponent(spec.path)
            do {
                models[name] = ServingModel(spec: spec, model: try Model(contentsOf: url), path: url.path)
            } catch let error as EngineError {
                errors.append(ManifestError(spec.location, "cannot load \(url.path): \(error.message)"))
            } catch {
                errors.append(ManifestError(spec.location, "cannot load \(url.path): \(error)"))
            }
        }
        return (models, errors)
    }
}
