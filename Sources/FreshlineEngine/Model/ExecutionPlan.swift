/// A graph compiled for execution: values live in numbered slots, nodes are sorted and pruned to what the
/// outputs need, and each step knows which slots it frees afterwards.
struct ExecutionPlan: Sendable {
    struct Step: Sendable {
        let kernel: any Kernel
        /// Slot per node input; `nil` for an omitted optional input.
        let inputs: [Int?]
        /// Slot per node output; `nil` for an output nobody reads.
        let outputs: [Int?]
        /// Slots whose last reader is this step.
        let release: [Int]
        /// `node 'name' (Op)`, for error messages.
        let label: String
    }

    struct Input: Sendable {
        let info: ModelMetadata.ValueInfo
        let slot: Int
    }

    let slotCount: Int
    let constants: [(slot: Int, value: Value)]
    let inputs: [Input]
    let outputs: [(name: String, slot: Int)]
    let steps: [Step]

    /// Compiles `graph` with the given imported operator sets. Errors name the node, the operator and the value.
    init(graph: Onnx_GraphProto, opsets: [String: Int]) throws {
        var slotOf: [String: Int] = [:]
        var constants: [(slot: Int, value: Value)] = []
        var constantValues: [String: Tensor] = [:]
        func newSlot(_ name: String) -> Int {
            let s = slotOf.count
            slotOf[name] = s
            return s
        }

        for initializer in graph.initializer {
            guard !initializer.name.isEmpty else { throw EngineError(.invalidGraph, "an initializer has no name") }
            guard slotOf[initializer.name] == nil else {
                throw EngineError(.invalidGraph, "initializer '\(initializer.name)' is defined twice")
            }
            let tensor = try Tensor(proto: initializer)
            constants.append((newSlot(initializer.name), .tensor(tensor)))
            constantValues[initializer.name] = tensor
        }

        // Graph inputs that are also initializers are defaults the caller may override (IR ≥ 4); the engine
        // treats them as constants and does not list them as inputs.
        var inputs: [Input] = []
        for input in graph.input where constantValues[input.name] == nil {
            guard !input.name.isEmpty else { throw EngineError(.invalidGraph, "a graph input has no name") }
            guard slotOf[input.name] == nil else {
                throw EngineError(.invalidGraph, "graph input '\(input.name)' is declared twice")
            }
            inputs.append(Input(info: try Self.valueInfo(input, role: "input"), slot: newSlot(input.name)))
        }

        // Producers of every node output; names are single-assignment.
        var producer: [String: Int] = [:]
        for (index, node) in graph.node.enumerated() {
            for output in node.output where !output.isEmpty {
                guard slotOf[output] == nil, producer[output] == nil else {
                    throw EngineError(
                        .invalidGraph, "\(Self.label(node, index)): output '\(output)' is already defined")
                }
                producer[output] = index
            }
        }

        // Keep only the nodes the graph outputs depend on, in dependency order (Kahn-style DFS with cycle check).
        for output in graph.output {
            guard slotOf[output.name] != nil || producer[output.name] != nil else {
                throw EngineError(.invalidGraph, "graph output '\(output.name)' is not produced by any node")
            }
        }
        var order: [Int] = []
        var state = [UInt8](repeating: 0, count: graph.node.count)  // 0 new, 1 on the stack, 2 done
        for output in graph.output {
            guard let root = producer[output.name], state[root] == 0 else { continue }
            // Iterative DFS so that a deep hostile graph cannot overflow the stack.
            var stack: [(node: Int, nextInput: Int)] = [(root, 0)]
            state[root] = 1
            while let top = stack.last {
                let node = graph.node[top.node]
                if top.nextInput == node.input.count {
                    stack.removeLast()
                    state[top.node] = 2
                    order.append(top.node)
                    continue
                }
                stack[stack.count - 1].nextInput += 1
                let name = node.input[top.nextInput]
                if name.isEmpty || slotOf[name] != nil { continue }
                guard let dependency = producer[name] else {
                    throw EngineError(
                        .invalidGraph,
                        "\(Self.label(node, top.node)): input '\(name)' is not a graph input, an initializer or any node's output"
                    )
                }
                switch state[dependency] {
                case 0:
                    state[dependency] = 1
                    stack.append((dependency, 0))
                case 1:
                    throw EngineError(
                        .invalidGraph, "\(Self.label(node, top.node)): the graph has a cycle through '\(name)'")
                default:
                    break
                }
            }
        }

        // Slots for node outputs, in execution order.
        for index in order {
            for output in graph.node[index].output where !output.isEmpty { _ = newSlot(output) }
        }

        // Last use of each slot, so that intermediate tensors are freed as soon as possible.
        let outputNames = Set(graph.output.map(\.name))
        var lastUse: [Int: Int] = [:]
        for (position, index) in order.enumerated() {
            for input in graph.node[index].input where !input.isEmpty {
                if let slot = slotOf[input] { lastUse[slot] = position }
            }
        }
        let keep = Set(constants.map(\.slot)).union(outputNames.compactMap { slotOf[$0] })

        var steps: [Step] = []
        var stepNodes: [Onnx_NodeProto] = []
        for (position, index) in order.enumerated() {
            let node = graph.node[index]
            let label = Self.label(node, index)
            let domain = OperatorRegistry.canonicalDomain(node.domain)
            guard let spec = OperatorRegistry.spec(domain: domain, opType: node.opType) else {
                let shownDomain = domain.isEmpty ? "ai.onnx" : domain
                throw EngineError(
                    .unsupportedOperator,
                    "\(label): operator '\(node.opType)' of domain '\(shownDomain)' is not supported")
            }
            guard let version = opsets[domain] else {
                throw EngineError(
                    .invalidGraph,
                    "\(label): the model does not import an operator set for domain '\(domain.isEmpty ? "ai.onnx" : domain)'"
                )
            }
            guard version >= spec.sinceVersion else {
                throw EngineError(.unsupportedOperator, "\(label): '\(node.opType)' does not exist in opset \(version)")
            }
            let context = NodeContext(
                name: node.name.isEmpty ? "#\(index)" : node.name,
                opType: node.opType,
                domain: domain,
                opsetVersion: version,
                attributes: NodeAttributes(node.attribute, node: node.name.isEmpty ? "#\(index)" : node.name),
                inputCount: node.input.count,
                outputCount: node.output.count,
                constants: node.input.map { constantValues[$0] }
            )
            let kernel: any Kernel
            do { kernel = try spec.make(context) } catch let error as EngineError {
                throw error.message.hasPrefix("node '") ? error : EngineError(error.code, "\(label): \(error.message)")
            }
            let release = Set(
                node.input.compactMap { name -> Int? in
                    guard let slot = slotOf[name], lastUse[slot] == position, !keep.contains(slot) else { return nil }
                    return slot
                })
            steps.append(
                Step(
                    kernel: kernel,
                    inputs: node.input.map { $0.isEmpty ? nil : slotOf[$0] },
                    outputs: node.output.map { $0.isEmpty ? nil : slotOf[$0] },
                    release: Array(release),
                    label: label
                ))
            stepNodes.append(node)
        }
        steps = Self.fuseDenseLayers(steps, nodes: stepNodes, constants: constantValues, graphOutputs: outputNames)

        self.slotCount = slotOf.count
        self.constants = constants
        self.inputs = inputs
        self.outputs = graph.output.map { ($0.name, slotOf[$0.name]!) }  // every output was checked above
        self.steps = steps
    }

    /// Replaces `MatMul(X, W) → Add(·, b) [→ Relu]` chains with constant float `W` (2-D) and `b` (one row) by a
    /// `DenseKernel`, when each intermediate value has no other reader. Everything else is left as it is.
    static func fuseDenseLayers(
        _ steps: [Step], nodes: [Onnx_NodeProto], constants: [String: Tensor], graphOutputs: Set<String>
    ) -> [Step] {
        var readers: [String: Int] = [:]
        for node in nodes { for input in node.input where !input.isEmpty { readers[input, default: 0] += 1 } }
        func soleReader(_ name: String) -> Bool { readers[name] == 1 && !graphOutputs.contains(name) }

        var result: [Step] = []
        var i = 0
        while i < steps.count {
            let matmul = nodes[i]
            guard matmul.opType == "MatMul", matmul.domain.isEmpty || matmul.domain == "ai.onnx",
                matmul.input.count == 2,
                let w = constants[matmul.input[1]], w.rank == 2, let weights = w.floats,
                i + 1 < steps.count, soleReader(matmul.output[0]),
                nodes[i + 1].opType == "Add", nodes[i + 1].input.count == 2,
                nodes[i + 1].input.contains(matmul.output[0])
            else {
                result.append(steps[i])
                i += 1
                continue
            }
            let add = nodes[i + 1]
            let biasFirst = add.input[0] != matmul.output[0]
            let biasName = biasFirst ? add.input[0] : add.input[1]
            let n = w.shape[1]
            guard let b = constants[biasName], let bias = b.floats, bias.count == n, b.shape.last == n,
                b.shape.dropLast().allSatisfy({ $0 == 1 }), b.rank <= 2
            else {
                result.append(steps[i])
                i += 1
                continue
            }
            var last = i + 1
            var relu = false
            if i + 2 < steps.count, nodes[i + 2].opType == "Relu", nodes[i + 2].input.first == add.output[0],
                soleReader(add.output[0])
            {
                relu = true
                last = i + 2
            }
            var kernels: [any Kernel] = [steps[i + 1].kernel]
            var operands: [(value: Value, first: Bool)?] = [(.tensor(b), biasFirst)]
            if relu {
                kernels.append(steps[i + 2].kernel)
                operands.append(nil)
            }
            // The fallback starts from the MatMul's output: run MatMul with W, then the rest.
            kernels.insert(steps[i].kernel, at: 0)
            operands.insert((.tensor(w), false), at: 0)
            let dense = DenseKernel(
                weights: weights, bias: bias, k: w.shape[0], n: n, relu: relu, fallback: kernels,
                fallbackOperands: operands)
            result.append(
                Step(
                    kernel: dense,
                    inputs: [steps[i].inputs[0]],
                    outputs: steps[last].outputs,
                    release: Array(Set(steps[i...last].flatMap(\.release))),
                    label: steps[i].label + (relu ? " (fused with Add, Relu)" : " (fused with Add)")
                ))
            i = last + 1
        }
        return result
    }

    static func label(_ node: Onnx_NodeProto, _ index: Int) -> String {
        "node '\(node.name.isEmpty ? "#\(index)" : node.name)' (\(node.opType))"
    }

    /// Reads a graph input's or output's declared type.
    static func valueInfo(_ proto: Onnx_ValueInfoProto, role: String) throws -> ModelMetadata.ValueInfo {
        let type = proto.type
        switch type.value {
        case .tensorType(let tensor):
            guard let element = ElementType(onnx: tensor.elemType) else {
                throw EngineError(
                    .unsupportedType,
                    "\(role) '\(proto.name)' has element type \(ElementType.onnxName(tensor.elemType))")
            }
            guard tensor.hasShape else {
                return .init(name: proto.name, type: .tensor(element, shape: nil), dimensionNames: [])
            }
            var dims: [Int] = []
            var names: [String?] = []
            for d in tensor.shape.dim {
                switch d.value {
                case .dimValue(let v):
                    guard v >= 0, v <= Int64(Shape.maximumElementCount) else {
                        throw EngineError(.invalidShape, "\(role) '\(proto.name)' declares dimension \(v)")
                    }
                    dims.append(Int(v))
                    names.append(nil)
                case .dimParam(let p):
                    dims.append(-1)
                    names.append(p)
                case nil:
                    dims.append(-1)
                    names.append(nil)
                }
            }
            return .init(name: proto.name, type: .tensor(element, shape: dims), dimensionNames: names)
        case .sequenceType(let sequence):
            if case .mapType(let map) = sequence.elemType.value,
                case .tensorType(let valueTensor) = map.valueType.value,
                let key = ElementType(onnx: map.keyType), let value = ElementType(onnx: valueTensor.elemType)
            {
                return .init(name: proto.name, type: .mapSequence(key: key, value: value), dimensionNames: [])
            }
            throw EngineError(
                .unsupportedType, "\(role) '\(proto.name)' is a sequence of a type the engine does not support")
        case .mapType, .optionalType:
            throw EngineError(
                .unsupportedType,
                "\(role) '\(proto.name)' is a map or optional value, which the engine does not support")
        case nil:
            // Graph outputs of some exporters carry no type; the kernels decide.
            return .init(name: proto.name, type: .tensor(.float, shape: nil), dimensionNames: [])
        }
    }
}
