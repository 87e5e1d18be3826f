/// TopK: the `k` largest (or smallest) elements along an axis and their int64 indices. Equal values keep
/// the lower index first, as the ONNX specification requires. `k` is an input from opset 10, an attribute before.
struct TopKKernel: Kernel {
    let axis: Int
    let largest: Bool
    let attributeK: Int?

    static func make(_ context: NodeContext) throws -> any Kernel {
        let kIsInput = context.opsetVersion >= 10
        try context.requireInputs(kIsInput ? 2...2 : 1...1)
        var attributeK: Int?
        if !kIsInput {
            guard let k = try context.attributes.int("k"), k >= 0 else {
                throw context.error(.invalidArgument, "attribute 'k' is required and must not be negative")
            }
            attributeK = k
        }
        return TopKKernel(
            axis: try context.attributes.int("axis", default: -1),
            largest: try context.attributes.int("largest", default: 1) != 0,
            attributeK: attributeK
        )
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "TopK")
        var k = attributeK ?? 0
        if attributeK == nil {
            let kTensor = try inputs.tensor(1, "TopK")
            guard let values = kTensor.integerValues, values.count == 1 else {
                throw EngineError(.invalidArgument, "TopK: K must be a single int64")
            }
            k = values[0]
        }
        guard x.rank >= 1 else { throw EngineError(.invalidShape, "TopK: input must have at least one dimension") }
        guard x.elementType != .string, x.elementType != .bool else {
            throw EngineError(.unsupportedType, "TopK does not support \(x.elementType)")
        }
        let a = try Shape.axis(axis, rank: x.rank, op: "TopK")
        let n = x.shape[a]
        guard k >= 0, k <= n else { throw EngineError(.invalidArgument, "TopK: K = \(k) is outside 0…\(n)") }
        let outer = x.shape.prefix(a).reduce(1, *)
        let inner = x.shape.dropFirst(a + 1).reduce(1, *)
        let values = x.doubleValues
        var picked: [Int] = []
        var indices: [Int64] = []
        picked.reserveCapacity(outer * k * inner)
        indices.reserveCapacity(outer * k * inner)
        var positions = [Int](repeating: 0, count: outer * inner * k)
        var order = [Int](repeating: 0, count: n)
        let largest = self.largest
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * n * inner + i
                for j in 0..<n { order[j] = j }
                // NaN counts as larger than every number, as in onnxruntime.
                let better: (Int, Int) -> Bool = { p, q in
                    let vp = values[base + p * inner], vq = values[base + q * inner]
                    if vp.isNaN || vq.isNaN {
                        return vp.isNaN && !vq.isNaN ? largest : (vq.isNaN && !vp.isNaN ? !largest : p < q)
                    }
                    if vp != vq { return largest ? vp > vq : vp < vq }
                    return p < q
                }
                if k < n / 8 {
                    // Partial selection: keep a sorted window of the best k.
                    var best: [Int] = []
                    best.reserveCapacity(k + 1)
                    for j in 0..<n {
                        if best.count == k, let last = best.last, !better(j, last) { continue }
                        var lo = 0, hi = best.count
                        while lo < hi {
                            let mid = (lo + hi) / 2
                            if better(best[mid], j) { lo = mid + 1 } else { hi = mid }
                        }
                        best.insert(j, at: lo)
                        if best.count > k { best.removeLast() }
                    }
                    for (r, j) in best.enumerated() { positions[(o * k + r) * inner + i] = j }
                } else {
                    order.sort(by: better)
                    for r in 0..<k { positions[(o * k + r) * inner + i] = order[r] }
                }
            }
        }
        for o in 0..<outer {
            for r in 0..<k {
                for i in 0..<inner {
                    let j = positions[(o * k + r) * inner + i]
                    picked.append(o * n * inner + j * inner + i)
                    indices.append(Int64(j))
                }
            }
        }
        var shape = x.shape
        shape[a] = k
        return [
            .tensor(Tensor(unchecked: shape, x.data.selecting(picked))),
            .tensor(Tensor(unchecked: shape, .int64(indices))),
        ]
    }
}
