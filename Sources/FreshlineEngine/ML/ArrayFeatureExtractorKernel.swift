/// `ArrayFeatureExtractor`: picks elements along the last axis of `X` at the int64 indices `Y`. A 1-D `X` gives
/// shape `[1, k]` (onnxruntime's backward-compatible shape); otherwise the last dimension becomes `k`.
struct ArrayFeatureExtractorKernel: Kernel {
    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(2...2)
        return ArrayFeatureExtractorKernel()
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "ArrayFeatureExtractor")
        let y = try inputs.tensor(1, "ArrayFeatureExtractor")
        guard x.rank >= 1 else {
            throw EngineError(.invalidShape, "ArrayFeatureExtractor: input X must have at least one dimension")
        }
        guard let indices = y.integerValues, y.elementType == .int64 || y.elementType == .int32 else {
            throw EngineError(.invalidArgument, "ArrayFeatureExtractor: input Y must be int64, got \(y.elementType)")
        }
        guard !indices.isEmpty else { throw EngineError(.invalidArgument, "ArrayFeatureExtractor: Y is empty") }
        let stride = x.shape[x.rank - 1]
        for i in indices where i < 0 || i >= stride {
            throw EngineError(.invalidArgument, "ArrayFeatureExtractor: index \(i) is outside [0, \(stride))")
        }
        let outer = x.rank == 1 ? 1 : x.shape.dropLast().reduce(1, *)
        var shape = x.rank == 1 ? [1, indices.count] : x.shape
        if x.rank > 1 { shape[x.rank - 1] = indices.count }
        let count = try Shape.elementCount(shape)
        var picks: [Int] = []
        picks.reserveCapacity(count)
        for o in 0..<outer {
            for i in indices { picks.append(o * stride + i) }
        }
        return [.tensor(Tensor(unchecked: shape, x.data.selecting(picks)))]
    }
}
