/// `Imputer`: replaces the elements equal to the replaced value (NaN matches NaN) with the imputed value of their
/// feature, or with the single imputed value. Float inputs use the float attributes, int64 inputs the int64 ones.
struct ImputerKernel: Kernel {
    let floatValues: [Float]
    let floatReplaced: Float
    let intValues: [Int64]
    let intReplaced: Int64

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        let a = MLAttributes(context)
        let floats = try a.floats("imputed_value_floats")
        let ints = try a.int64s("imputed_value_int64s")
        guard floats.isEmpty != ints.isEmpty else {
            throw context.error(
                .invalidArgument, "exactly one of imputed_value_floats and imputed_value_int64s must be set")
        }
        return ImputerKernel(
            floatValues: floats, floatReplaced: try a.float("replaced_value_float", default: 0),
            intValues: ints, intReplaced: Int64(try a.int("replaced_value_int64", default: 0)))
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "Imputer")
        guard x.rank >= 1 else { throw EngineError(.invalidShape, "Imputer: input must have at least one dimension") }
        let stride = x.rank == 1 ? x.shape[0] : x.shape[1]
        switch x.data {
        case .float(let v):
            guard !floatValues.isEmpty else {
                throw EngineError(.invalidArgument, "Imputer: no imputed_value_floats for a float input")
            }
            let perFeature = floatValues.count == stride
            let nanReplaced = floatReplaced.isNaN
            let y = v.indices.map { i -> Float in
                let e = v[i]
                guard (e.isNaN && nanReplaced) || e == floatReplaced else { return e }
                return floatValues[perFeature ? i % stride : 0]
            }
            return [.tensor(Tensor(unchecked: x.shape, .float(y)))]
        case .int64(let v):
            guard !intValues.isEmpty else {
                throw EngineError(.invalidArgument, "Imputer: no imputed_value_int64s for an int64 input")
            }
            let perFeature = intValues.count == stride
            let y = v.indices.map { i in v[i] == intReplaced ? intValues[perFeature ? i % stride : 0] : v[i] }
            return [.tensor(Tensor(unchecked: x.shape, .int64(y)))]
        default:
            throw EngineError(.unsupportedType, "Imputer: input must be float or int64, got \(x.elementType)")
        }
    }
}
