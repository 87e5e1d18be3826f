/// `LabelEncoder` of ai.onnx.ml opset 1: strings to class indices, or class indices to strings.
struct LabelEncoderV1Kernel: Kernel {
    let classes: [String]
    let table: [LabelEncoderKernel.Key: Int]
    let defaultString: String
    let defaultInt: Int64

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "LabelEncoder")
        switch x.data {
        case .string(let v):
            return [
                .tensor(Tensor(unchecked: x.shape, .int64(v.map { table[.string($0)].map(Int64.init) ?? defaultInt })))
            ]
        case .int64(let v):
            let out = v.map { i in i >= 0 && i < Int64(classes.count) ? classes[Int(i)] : defaultString }
            return [.tensor(Tensor(unchecked: x.shape, .string(out)))]
        default:
            throw EngineError(.unsupportedType, "LabelEncoder: input must be string or int64, got \(x.elementType)")
        }
    }
}
