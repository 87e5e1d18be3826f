internal import Foundation
public import FreshlineCore
public import FreshlineEngine
public import FreshlineUpstream

/// A manifest model as the server runs it: an ONNX file loaded by the engine (run on the compute pool), or a model
/// on another server (`kind: oip | openai | http`, called over the network through `FreshlineUpstream`).
public struct ServingModel: Sendable {
    /// Where the model runs.
    public enum Backend: Sendable {
        case local(Model)
        case remote(any RemoteModel)
    }

    /// The manifest entry.
    public let spec: ModelSpec
    public let backend: Backend
    /// The resolved file path; the upstream's URL for a remote model.
    public let path: String

    /// Inputs, outputs and version, whichever the backend.
    public var metadata: ModelMetadata {
        switch backend {
        case .local(let model): model.metadata
        case .remote(let model): model.metadata
        }
    }

    /// The engine's model, for what only a local model can do (the columnar batch paths, measuring, the CLI's
    /// model tools); `nil` for a remote model.
    public var local: Model? {
        if case .local(let model) = backend { model } else { nil }
    }

    public init(spec: ModelSpec, model: Model, path: String) {
        self.spec = spec
        backend = .local(model)
        self.path = path
    }

    public init(spec: ModelSpec, remote: any RemoteModel) {
        self.spec = spec
        backend = .remote(remote)
        path = spec.upstream?.url ?? ""
    }

    /// Whether the model streams its answers as they are generated (an upstream chat model with `stream: true`).
    public var streams: Bool {
        if case .remote(let model) = backend { model.streams } else { false }
    }

    /// Runs one batch of `rows` rows (each feed's first dimension): a local model on `pool`, a remote one over the
    /// network within `deadline` at `priority`; a streaming model reports each row's text so far to `partial`.
    /// Errors are `PredictionError`s.
    func run(
        _ feeds: [String: Tensor], rows: Int, pool: ComputePool, priority: CallPriority,
        deadline: ContinuousClock.Instant?, partial: PartialText? = nil
    ) async throws -> ModelAnswer {
        switch backend {
        case .local(let model):
            do {
                let outputs = try await pool.run { try model.run(feeds) }
                return ModelAnswer(outputs: outputs, modelVersion: model.metadata.version, usage: [])
            } catch {
                throw PredictionError(modelCall: error)
            }
        case .remote(let model):
            do {
                let answer = try await model.infer(
                    feeds, rows: rows, priority: priority, deadline: deadline, partial: partial)
                return ModelAnswer(outputs: answer.outputs, modelVersion: answer.modelVersion, usage: answer.usage)
            } catch {
                throw PredictionError(upstream: error)
            }
        }
    }

    /// Loads every ONNX model of the manifest (paths relative to the manifest's folder) and takes the upstream
    /// models from `remote` (connected beforehand: `Upstreams.connect`). Errors name the entry.
    public static func loadAll(_ manifest: Manifest, remote: [String: any RemoteModel] = [:]) -> (
        models: [String: ServingModel], errors: [ManifestError]
    ) {
        var models: [String: ServingModel] = [:]
        var errors: [ManifestError] = []
        let base = URL(fileURLWithPath: manifest.path).deletingLastPathComponent()
        for (name, spec) in manifest.models.sorted(by: { $0.key < $1.key }) {
            if let upstream = spec.upstream {
                guard let model = remote[name] else {
                    errors.append(ManifestError(spec.location, "the \(upstream.kind.rawValue) model is not connected"))
                    continue
                }
                models[name] = ServingModel(spec: spec, remote: model)
                continue
            }
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

/// One model call's outputs and where they came from.
struct ModelAnswer: Sendable {
    /// Every output, rows first.
    var outputs: [String: Value]
    /// The version that answered: the file's digest prefix, or the upstream's model and version.
    var modelVersion: String
    /// Tokens per row (upstream LLMs); empty otherwise.
    var usage: [TokenUsage]
}
