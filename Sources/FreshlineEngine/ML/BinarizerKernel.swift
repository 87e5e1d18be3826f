/// `Binarizer`: 1 where the input exceeds `threshold` (default 0), else 0, in the input's type. A NaN input is
/// an error, as in onnxruntime.
struct BinarizerKernel: Kernel {
    let threshold: Float

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        return BinarizerKernel(threshold: try context.attributes.float("threshold", default: 0))
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "Binarizer")
        let data: TensorData
        switch x.data {
        case .float(let v):
            if let i = v.firstIndex(where: { $0.isNaN }) {
                throw EngineError(.invalidInput, "Binarizer: input element \(i) is NaN")
            }
            data = .float(v.map { $0 > threshold ? 1 : 0 })
        case .double(let v):
            if let i = v.firstIndex(where: { $0.isNaN }) {
                throw EngineError(.invalidInput, "Binarizer: input element \(i) is NaN")
            }
            data = .double(v.map { $0 > Double(threshold) ? 1 : 0 })
        case .int64(let v): data = .int64(v.map { Float($0) > threshold ? 1 : 0 })
        case .int32(let v): data = .int32(v.map { Float($0) > threshold ? 1 : 0 })
        default:
            throw EngineError(
                .unsupportedType, "Binarizer: input must be float, double, int64 or int32, got \(x.elementType)")
        }
        return [.tensor(Tensor(unchecked: x.shape, data))]
    }
}
