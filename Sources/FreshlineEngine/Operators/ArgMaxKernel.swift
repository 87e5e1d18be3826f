/// ArgMax: the index of the largest element along an axis (the first one on ties, or the last with
/// `select_last_index`), as int64.
struct ArgMaxKernel: Kernel {
    let axis: Int
    let keepDims: Bool
    let selectLastIndex: Bool

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        return ArgMaxKernel(
            axis: try context.attributes.int("axis", default: 0),
            keepDims: try context.attributes.int("keepdims", default: 1) != 0,
            selectLastIndex: try context.attributes.int("select_last_index", default: 0) != 0
        )
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "ArgMax")
        guard x.rank >= 1 else { throw EngineError(.invalidShape, "ArgMax: input must have at least one dimension") }
        let a = try Shape.axis(axis, rank: x.rank, op: "ArgMax")
        let n = x.shape[a]
        guard n > 0 else { throw EngineError(.invalidShape, "ArgMax: axis \(a) has size 0") }
        let values = x.doubleValues
        guard x.elementType != .string else { throw EngineError(.unsupportedType, "ArgMax does not support string") }
        let outer = x.shape.prefix(a).reduce(1, *)
        let inner = x.shape.dropFirst(a + 1).reduce(1, *)
        var result = [Int64](repeating: 0, count: outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * n * inner + i
                var best = 0
                var bestValue = values[base]
                for j in 1..<max(n, 1) {
                    let v = values[base + j * inner]
                    if v > bestValue || (selectLastIndex && v == bestValue) {
                        best = j
                        bestValue = v
                    }
                }
                result[o * inner + i] = Int64(best)
            }
        }
        var shape = x.shape
        if keepDims { shape[a] = 1 } else { shape.remove(at: a) }
        return [.tensor(Tensor(unchecked: shape, .int64(result)))]
    }
}
