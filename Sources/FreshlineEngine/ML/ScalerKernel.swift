/// `Scaler`: `y = (x − offset) · scale`, per feature or with a single offset and scale, as a float tensor of the
/// input's shape. The arithmetic is done in the input's precision (double for double inputs, float otherwise),
/// then rounded to float, as onnxruntime does.
struct ScalerKernel: Kernel {
    let scale: [Float]
    let offset: [Float]

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        let a = MLAttributes(context)
        let scale = try a.floats("scale")
        let offset = try a.floats("offset")
        guard !scale.isEmpty else { throw context.error(.invalidArgument, "scale must not be empty") }
        guard offset.count == scale.count else {
            throw context.error(.invalidArgument, "offset has \(offset.count) values but scale has \(scale.count)")
        }
        return ScalerKernel(scale: scale, offset: offset)
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "Scaler")
        guard x.rank >= 1 else { throw EngineError(.invalidShape, "Scaler: input X must have at least one dimension") }
        let stride = x.rank == 1 ? x.shape[0] : x.shape[1]
        let perFeature = scale.count == stride
        guard perFeature || scale.count == 1 else {
            throw EngineError(
                .invalidShape, "Scaler: scale and offset must have 1 or \(stride) values, got \(scale.count)")
        }
        let k = perFeature ? stride : 1
        func index(_ i: Int) -> Int { perFeature ? i % k : 0 }
        let y: [Float]
        switch x.data {
        case .float(let v): y = v.indices.map { (v[$0] - offset[index($0)]) * scale[index($0)] }
        case .double(let v):
            y = v.indices.map { Float((v[$0] - Double(offset[index($0)])) * Double(scale[index($0)])) }
        case .int64(let v): y = v.indices.map { (Float(v[$0]) - offset[index($0)]) * scale[index($0)] }
        case .int32(let v): y = v.indices.map { (Float(v[$0]) - offset[index($0)]) * scale[index($0)] }
        default:
            throw EngineError(
                .unsupportedType, "Scaler: input X must be float, double, int64 or int32, got \(x.elementType)")
        }
        return [.tensor(Tensor(unchecked: x.shape, .float(y)))]
    }
}
