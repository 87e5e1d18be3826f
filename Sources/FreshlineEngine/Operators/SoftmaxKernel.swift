internal import Foundation

/// Softmax. From opset 13 it normalizes along one axis (default -1); before, it flattened the input to 2-D at
/// `axis` (default 1) and normalized each row of that matrix.
struct SoftmaxKernel: Kernel {
    let axis: Int
    let coercesTo2D: Bool

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        let legacy = context.opsetVersion < 13
        return SoftmaxKernel(axis: try context.attributes.int("axis", default: legacy ? 1 : -1), coercesTo2D: legacy)
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "Softmax")
        let rank = x.rank
        let a = try Shape.axis(axis, rank: rank, op: "Softmax")
        let outer = x.shape.prefix(a).reduce(1, *)
        let n = coercesTo2D ? x.shape.dropFirst(a).reduce(1, *) : (rank == 0 ? 1 : x.shape[a])
        let inner = coercesTo2D ? 1 : x.shape.dropFirst(a + 1).reduce(1, *)
        let data: TensorData
        switch x.data {
        case .float(let v): data = .float(Self.softmax(v, outer: outer, n: n, inner: inner))
        case .double(let v): data = .double(Self.softmax(v, outer: outer, n: n, inner: inner))
        default: throw EngineError(.unsupportedType, "Softmax does not support \(x.elementType)")
        }
        return [.tensor(Tensor(unchecked: x.shape, data))]
    }

    static func softmax<T: BinaryFloatingPoint & ElementaryFunctionsLite>(_ v: [T], outer: Int, n: Int, inner: Int)
        -> [T]
    {
        var out = v
        guard n > 0 else { return out }
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * n * inner + i
                var maximum = -T.infinity
                for j in 0..<n { maximum = max(maximum, v[base + j * inner]) }
                var sum: T = 0
                for j in 0..<n {
                    let e = T.exponential(v[base + j * inner] - maximum)
                    out[base + j * inner] = e
                    sum += e
                }
                for j in 0..<n { out[base + j * inner] /= sum }
            }
        }
        return out
    }
}
