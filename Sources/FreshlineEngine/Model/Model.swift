public import Foundation
internal import SwiftProtobuf

/// A loaded ONNX model, validated and compiled, ready to run batches.
///
/// A `Model` is immutable; `run(_:)` may be called from several threads at once.
public final class Model: Sendable {
    /// Inputs, outputs, operator sets, operators, size and version.
    public let metadata: ModelMetadata
    let plan: ExecutionPlan

    /// The largest model file the engine reads (1 GiB); protobuf itself cannot describe more than 2 GiB.
    public static let maximumFileSize = 1 << 30

    /// Loads a model file.
    public convenience init(contentsOf url: URL) throws {
        let data: Data
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
            if let size = attributes[.size] as? Int, size > Self.maximumFileSize {
                throw EngineError(.tooLarge, "\(url.path) is \(size) bytes; the limit is \(Self.maximumFileSize)")
            }
            data = try Data(contentsOf: url)
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(.io, "cannot read \(url.path): \(error.localizedDescription)")
        }
        try self.init(data: data)
    }

    /// Loads a model from the bytes of an ONNX file.
    public init(data: Data) throws {
        _ = BLAS.configured  // process-wide BLAS threads and allocator settings, once
        guard data.count <= Self.maximumFileSize else {
            throw EngineError(.tooLarge, "the model is \(data.count) bytes; the limit is \(Self.maximumFileSize)")
        }
        let proto: Onnx_ModelProto
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 64
            proto = try Onnx_ModelProto(serializedBytes: data, options: options)
        } catch {
            throw EngineError(.malformedModel, "not an ONNX model (protobuf decoding failed: \(error))")
        }
        guard proto.hasGraph else { throw EngineError(.malformedModel, "the file has no graph") }
        guard proto.irVersion >= 3 else {
            throw EngineError(.malformedModel, "IR version \(proto.irVersion) is not supported (3 or newer is)")
        }
        guard proto.functions.isEmpty else {
            throw EngineError(
                .unsupportedOperator,
                "the model defines local functions (\(proto.functions.map(\.name).joined(separator: ", "))), which the engine does not expand"
            )
        }

        var opsets: [String: Int] = [:]
        for opset in proto.opsetImport {
            let domain = OperatorRegistry.canonicalDomain(opset.domain)
            if let newest = OperatorRegistry.newestOpset[domain] {
                guard opset.version >= 1, opset.version <= Int64(newest) else {
                    throw EngineError(
                        .unsupportedOpset,
                        "the model imports \(domain.isEmpty ? "ai.onnx" : domain) opset \(opset.version); the engine supports 1 to \(newest)"
                    )
                }
            }
            // Imports of unknown domains are harmless until a node uses one; that node is reported then.
            opsets[domain] = Int(clamping: opset.version)
        }
        if opsets[OperatorRegistry.defaultDomain] == nil, proto.opsetImport.isEmpty {
            throw EngineError(.malformedModel, "the model imports no operator set")
        }

        plan = try ExecutionPlan(graph: proto.graph, opsets: opsets)

        var operators: [String: Int] = [:]
        for node in proto.graph.node {
            let domain = OperatorRegistry.canonicalDomain(node.domain)
            operators[domain.isEmpty ? node.opType : "\(domain):\(node.opType)", default: 0] += 1
        }
        var outputs: [ModelMetadata.ValueInfo] = []
        for output in proto.graph.output {
            outputs.append(try ExecutionPlan.valueInfo(output, role: "output"))
        }
        let producer = [proto.producerName, proto.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
        metadata = ModelMetadata(
            inputs: plan.inputs.map(\.info),
            outputs: outputs,
            opsets: Dictionary(uniqueKeysWithValues: opsets.map { ($0.key.isEmpty ? "ai.onnx" : $0.key, $0.value) }),
            operators: operators,
            irVersion: Int(clamping: proto.irVersion),
            producer: producer,
            sizeBytes: data.count,
            sha256: Digests.sha256Hex(data)
        )
    }

    /// Runs the model on one batch. `feeds` maps every input name to a tensor whose type and fixed dimensions
    /// match the declaration; the result maps every output name to its value.
    public func run(_ feeds: [String: Tensor]) throws -> [String: Value] {
        var slots = [Value?](repeating: nil, count: plan.slotCount)
        for constant in plan.constants { slots[constant.slot] = constant.value }
        for input in plan.inputs {
            guard let tensor = feeds[input.info.name] else {
                throw EngineError(.invalidInput, "input '\(input.info.name)' is missing")
            }
            try ModelMetadata.check(tensor, against: input.info)
            slots[input.slot] = .tensor(tensor)
        }
        if feeds.count != plan.inputs.count {
            let known = Set(plan.inputs.map(\.info.name))
            if let unknown = feeds.keys.sorted().first(where: { !known.contains($0) }) {
                throw EngineError(.invalidInput, "the model has no input named '\(unknown)'")
            }
        }

        for step in plan.steps {
            var arguments: [Value?] = []
            arguments.reserveCapacity(step.inputs.count)
            for slot in step.inputs { arguments.append(slot.flatMap { slots[$0] }) }
            let results: [Value]
            do {
                results = try step.kernel.run(arguments)
            } catch let error as EngineError {
                throw EngineError(error.code, "\(step.label): \(error.message)")
            }
            for (index, slot) in step.outputs.enumerated() {
                guard let slot else { continue }
                guard index < results.count else {
                    throw EngineError(.invalidGraph, "\(step.label): output \(index) was not produced")
                }
                slots[slot] = results[index]
            }
            for slot in step.release { slots[slot] = nil }
        }

        var result: [String: Value] = [:]
        for output in plan.outputs {
            guard let value = slots[output.slot] else {
                throw EngineError(.invalidGraph, "output '\(output.name)' was not produced")
            }
            result[output.name] = value
        }
        return result
    }

    /// Checks feeds against the declared inputs (names, element types, ranks, fixed dimensions) without running:
    /// the serving layer validates each request's row before it joins a batch, so that one bad row cannot fail
    /// the others.
    public func validate(_ feeds: [String: Tensor]) throws {
        try metadata.validate(feeds)
    }
}
