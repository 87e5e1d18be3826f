/// What a kernel factory sees of a node when the model is loaded: its attributes, the operator-set version
/// that applies, and the values of inputs that are constants (initializers).
struct NodeContext {
    /// The node's name, or `#index` when it has none; used in error messages.
    let name: String
    /// The operator type, e.g. `Gemm`.
    let opType: String
    /// The operator's domain (`""` for ai.onnx).
    let domain: String
    /// The version of the node's operator set that the model imports.
    let opsetVersion: Int
    /// The node's attributes.
    let attributes: NodeAttributes
    /// How many inputs the node names (including empty optional ones).
    let inputCount: Int
    /// How many outputs the node names.
    let outputCount: Int
    /// For each input, its value when it is an initializer; `nil` otherwise.
    let constants: [Tensor?]

    /// An error located at this node.
    func error(_ code: EngineError.Code, _ message: String) -> EngineError {
        EngineError(code, "node '\(name)' (\(opType)): \(message)")
    }

    /// Checks the number of inputs against the operator's arity.
    func requireInputs(_ range: ClosedRange<Int>) throws {
        guard range.contains(inputCount) else {
            throw error(.invalidGraph, "expects \(range.lowerBound)…\(range.upperBound) inputs, has \(inputCount)")
        }
    }

    /// The constant value of input `index`, if it is an initializer.
    func constant(_ index: Int) -> Tensor? {
        index < constants.count ? constants[index] : nil
    }
}

/// A node's attributes by name, with typed accessors that report a wrong type as an error naming the node.
struct NodeAttributes {
    private let byName: [String: Onnx_AttributeProto]
    private let node: String

    init(_ attributes: [Onnx_AttributeProto], node: String) {
        var byName: [String: Onnx_AttributeProto] = [:]
        for a in attributes { byName[a.name] = a }
        self.byName = byName
        self.node = node
    }

    /// Whether the attribute is present.
    func has(_ name: String) -> Bool { byName[name] != nil }

    private func attribute(_ name: String, _ type: Onnx_AttributeProto.AttributeType) throws -> Onnx_AttributeProto? {
        guard let a = byName[name] else { return nil }
        // Old exporters sometimes leave `type` unset; then the field that is read decides.
        guard a.type == type || a.type == .undefined else {
            throw EngineError(
                .invalidArgument, "node '\(node)': attribute '\(name)' has type \(a.type), expected \(type)")
        }
        return a
    }

    func int(_ name: String) throws -> Int? {
        try attribute(name, .int).map { Int($0.i) }
    }
    func int(_ name: String, default value: Int) throws -> Int { try int(name) ?? value }

    func float(_ name: String) throws -> Float? { try attribute(name, .float)?.f }
    func float(_ name: String, default value: Float) throws -> Float { try float(name) ?? value }

    func string(_ name: String) throws -> String? {
        try attribute(name, .string).map { String(decoding: $0.s, as: UTF8.self) }
    }
    func string(_ name: String, default value: String) throws -> String { try string(name) ?? value }

    func ints(_ name: String) throws -> [Int]? { try attribute(name, .ints).map { $0.ints.map { Int($0) } } }
    func int64s(_ name: String) throws -> [Int64]? { try attribute(name, .ints)?.ints }
    func floats(_ name: String) throws -> [Float]? { try attribute(name, .floats)?.floats }
    func strings(_ name: String) throws -> [String]? {
        try attribute(name, .strings).map { $0.strings.map { String(decoding: $0, as: UTF8.self) } }
    }
    func tensor(_ name: String) throws -> Tensor? {
        guard let a = try attribute(name, .tensor) else { return nil }
        return try Tensor(proto: a.t)
    }
}
