/// Reads the attributes of an ai.onnx.ml node, with the defaults those operators use (absent list → empty)
/// and the `*_as_tensor` variants of ai.onnx.ml opset 3.
struct MLAttributes {
    let context: NodeContext

    init(_ context: NodeContext) {
        self.context = context
    }

    func has(_ name: String) -> Bool { context.attributes.has(name) }

    func floats(_ name: String) throws -> [Float] { try context.attributes.floats(name) ?? [] }
    func int64s(_ name: String) throws -> [Int64] { try context.attributes.int64s(name) ?? [] }
    func strings(_ name: String) throws -> [String] { try context.attributes.strings(name) ?? [] }
    func string(_ name: String, default value: String) throws -> String {
        try context.attributes.string(name, default: value)
    }
    func int(_ name: String, default value: Int) throws -> Int { try context.attributes.int(name, default: value) }
    func float(_ name: String, default value: Float) throws -> Float {
        try context.attributes.float(name, default: value)
    }

    /// A tensor attribute's elements as doubles (float and double tensors only), or `nil` when it is absent.
    /// A tensor with no dimensions counts as absent, as in onnxruntime.
    func realTensor(_ name: String) throws -> [Double]? {
        guard has(name), let tensor = try context.attributes.tensor(name), !tensor.shape.isEmpty else { return nil }
        switch tensor.data {
        case .float(let v): return v.map(Double.init)
        case .double(let v): return v
        default:
            throw context.error(
                .invalidArgument, "attribute '\(name)' must be a float or double tensor, got \(tensor.elementType)")
        }
    }

    /// An integer tensor attribute's elements (uint8, int8, int32 or int64), or `nil` when absent.
    func integerTensor(_ name: String) throws -> [Int]? {
        guard has(name), let tensor = try context.attributes.tensor(name), !tensor.shape.isEmpty else { return nil }
        guard let values = tensor.integerValues else {
            throw context.error(
                .invalidArgument, "attribute '\(name)' must be an integer tensor, got \(tensor.elementType)")
        }
        return values
    }

    /// A real-valued list given either as `name` (floats) or as `tensorName` (a float or double tensor);
    /// setting both is an error. The values are returned in double precision; float attributes convert exactly.
    func reals(_ name: String, orTensor tensorName: String) throws -> [Double] {
        let list = try floats(name)
        let tensor = try realTensor(tensorName) ?? []
        if !list.isEmpty && !tensor.isEmpty {
            throw context.error(.invalidArgument, "'\(name)' and '\(tensorName)' cannot both be set")
        }
        return tensor.isEmpty ? list.map(Double.init) : tensor
    }
}
