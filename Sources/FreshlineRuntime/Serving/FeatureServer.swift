internal import Foundation
public import FreshlineCore
public import FreshlineEngine

/// Answers predictions for one feature: validates the row, applies the freshness contract, sends the row
/// through the real-time batcher and walks the fallback ladder when that path cannot answer.
public final class FeatureServer: Sendable {
    /// The feature's configuration.
    public let spec: FeatureSpec
    /// The model it runs.
    public let model: ServingModel
    let batcher: RealtimeBatcher
    private let metrics: ServingMetrics
    private let histograms: LatencyHistograms
    private let requestLog: RequestLogger?
    private let defaultOutputs: [String: JSONValue]?

    init(
        spec: FeatureSpec, model: ServingModel, pool: ComputePool, computeSlots: Int, metrics: ServingMetrics,
        histograms: LatencyHistograms, requestLog: RequestLogger?
    ) {
        self.spec = spec
        self.model = model
        self.metrics = metrics
        self.histograms = histograms
        self.requestLog = requestLog
        batcher = RealtimeBatcher(
            feature: spec, model: model.model, pool: pool, metrics: metrics, computeSlots: computeSlots)
        if case .defaultValue(let value) = spec.onFailure {
            defaultOutputs = value.mapValues(JSONValue.init)
        } else {
            defaultOutputs = nil
        }
    }

    /// Time kept back from each caller's deadline for splitting outputs and writing the response.
    static let responseAllowance = Duration.microseconds(100)

    /// The model inputs a request must supply (the key fills an input of the same name).
    public var inputs: [ModelMetadata.ValueInfo] { model.model.metadata.inputs }

    /// Answers one row. Throws `PredictionError` when no rung of the ladder can answer.
    public func predict(_ request: PredictRequest) async throws -> Prediction {
        let start = ContinuousClock.now
        let arrivedAt = Date().timeIntervalSince1970
        var source: PredictionSource?
        var outcome = "ok"
        var age = 0.0
        defer {
            let duration = ContinuousClock.now - start
            metrics.request(feature: spec.name, source: source, outcome: outcome, duration: duration)
            if outcome == "ok" { histograms.record(feature: spec.name, source: source, duration: duration) }
            let hasRequestInputs = request.inputs.keys.contains { $0 != spec.key }
            requestLog?.offer(
                RequestLogSample(
                    feature: spec.name, keyHash: request.key.map(KeyHash.hex), hasRequestInputs: hasRequestInputs,
                    source: source,
                    outcome: outcome, latencySeconds: duration.seconds, ageSeconds: age, at: arrivedAt))
        }

        let row: [String: Tensor]
        do {
            row = try validate(request)
        } catch {
            outcome = "bad_request"
            throw error
        }
        // A real-time answer is computed now, so it meets any freshness contract; the contract matters once a
        // feature can answer from a snapshot (batch and hybrid patterns).
        // The batcher plans for the model call to finish by the deadline; keep back what answering takes.
        let deadline = start + (request.timeout ?? spec.latencyBudget) - Self.responseAllowance
        do {
            var outputs = try await batcher.submit(row, deadline: deadline)
            if let selected = spec.outputs { outputs = outputs.filter { selected.contains($0.key) } }
            source = .realtime
            metrics.served(feature: spec.name, ageSeconds: 0)
            return Prediction(
                key: request.key, outputs: outputs,
                provenance: Provenance(
                    source: .realtime, computedAt: Date().timeIntervalSince1970, ageSeconds: 0,
                    modelVersion: model.model.metadata.version))
        } catch let error as PredictionError {
            // The fallback ladder: the configured default, else the error.
            if let defaultOutputs {
                metrics.fallback(feature: spec.name, rung: "default")
                source = .default
                outcome = "ok"
                age = 0
                return Prediction(
                    key: request.key, outputs: defaultOutputs,
                    provenance: Provenance(
                        source: .default, computedAt: Date().timeIntervalSince1970, ageSeconds: 0, modelVersion: nil))
            }
            metrics.fallback(feature: spec.name, rung: "error")
            outcome = error.code == .overloaded ? "shed" : error.code == .timeout ? "timeout" : "error"
            throw error
        }
    }

    /// Converts the request's inputs (and key) into one-row tensors, with errors that name the input.
    private func validate(_ request: PredictRequest) throws -> [String: Tensor] {
        var inputs = request.inputs
        if let keyName = spec.key, let key = request.key, inputs[keyName] == nil,
            let keyInput = model.model.metadata.inputs.first(where: { $0.name == keyName })
        {
            inputs[keyName] =
                keyInput.elementType == .string ? .string(key) : (Int64(key).map(JSONValue.integer) ?? .string(key))
        }
        do {
            let row = try RowBatch.tensors(rows: [inputs], inputs: model.model.metadata.inputs)
            try model.model.validate(row)
            return row
        } catch let error as EngineError {
            throw PredictionError(.badRequest, error.message.replacingOccurrences(of: "row 1: ", with: ""))
        }
    }
}

extension JSONValue {
    /// Converts configuration JSON (Core) to the engine's JSON value.
    public init(_ tree: JSONScalarTree) {
        switch tree {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let d): self = d == d.rounded() && abs(d) < 1e15 ? .integer(Int64(d)) : .number(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .array(a.map(JSONValue.init))
        case .object(let o): self = .object(o.mapValues(JSONValue.init))
        }
    }
}

extension FeatureServer {
    /// Figures for the feature API: rows queued now, the cost model's estimate per row, latency percentiles.
    public struct LiveFigures: Sendable {
        public var queued: Int
        public var estimatedRowCost: Duration
        public var latency: [String: LatencyHistograms.Summary]
    }

    /// The feature's live figures.
    public var liveFigures: LiveFigures {
        let (queued, cost) = batcher.snapshot
        return LiveFigures(queued: queued, estimatedRowCost: cost, latency: histograms.summaries(feature: spec.name))
    }
}
