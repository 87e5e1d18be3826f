/// Matrix product with numpy semantics: 1-D operands are promoted and the added dimension removed again,
/// leading (batch) dimensions broadcast. Float and double go to BLAS.
struct MatMulKernel: Kernel {
    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(2...2)
        return MatMulKernel()
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let a = try inputs.tensor(0, "MatMul")
        let b = try inputs.tensor(1, "MatMul")
        guard a.elementType == b.elementType else {
            throw EngineError(.invalidArgument, "MatMul: operand types differ (\(a.elementType), \(b.elementType))")
        }
        guard a.rank >= 1, b.rank >= 1 else {
            throw EngineError(.invalidShape, "MatMul: operands must have at least one dimension")
        }
        let aShape = a.rank == 1 ? [1, a.shape[0]] : a.shape
        let bShape = b.rank == 1 ? [b.shape[0], 1] : b.shape
        let m = aShape[aShape.count - 2], k = aShape[aShape.count - 1]
        let kb = bShape[bShape.count - 2], n = bShape[bShape.count - 1]
        guard k == kb else { throw EngineError(.invalidShape, "MatMul: shapes \(a.shape) and \(b.shape) do not align") }
        let aBatch = Array(aShape.dropLast(2)), bBatch = Array(bShape.dropLast(2))
        let batch = try Shape.broadcast(aBatch, bBatch, op: "MatMul")
        var shape = batch + [m, n]
        _ = try Shape.elementCount(shape)

        let batchCount = batch.reduce(1, *)
        // Offsets of each batch's matrices in A and B.
        let aIndex = Shape.broadcastIndices(from: aBatch, to: batch)
        let bIndex = Shape.broadcastIndices(from: bBatch, to: batch)
        let data: TensorData
        switch (a.data, b.data) {
        case (.float(let x), .float(let y)):
            data = .float(product(x, y, aIndex, bIndex, batchCount, m, n, k, bIsShared: bBatch.reduce(1, *) == 1))
        case (.double(let x), .double(let y)):
            data = .double(product(x, y, aIndex, bIndex, batchCount, m, n, k, bIsShared: bBatch.reduce(1, *) == 1))
        case (.int64(let x), .int64(let y)): data = .int64(integerProduct(x, y, aIndex, bIndex, batchCount, m, n, k))
        case (.int32(let x), .int32(let y)): data = .int32(integerProduct(x, y, aIndex, bIndex, batchCount, m, n, k))
        default: throw EngineError(.unsupportedType, "MatMul does not support \(a.elementType)")
        }
        if a.rank == 1 { shape.remove(at: shape.count - 2) }
        if b.rank == 1 { shape.removeLast() }
        return [.tensor(Tensor(unchecked: shape, data))]
    }

    private func product<T: BLASScalar>(
        _ x: [T], _ y: [T], _ aIndex: [Int], _ bIndex: [Int], _ batchCount: Int, _ m: Int, _ n: Int, _ k: Int,
        bIsShared: Bool
    ) -> [T] {
        var out = [T](repeating: 0, count: batchCount * m * n)
        guard m > 0, n > 0, k > 0, batchCount > 0 else { return out }
        x.withUnsafeBufferPointer { a in
            y.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { c in
                    if bIsShared, aIndex == Array(0..<batchCount) {
                        // One shared right operand: fold the batch into the rows of a single product.
                        T.gemm(m: batchCount * m, n: n, k: k, a: a.baseAddress!, b: b.baseAddress!, c: c.baseAddress!)
                        return
                    }
                    for i in 0..<batchCount {
                        T.gemm(
                            m: m, n: n, k: k, a: a.baseAddress! + aIndex[i] * m * k,
                            b: b.baseAddress! + bIndex[i] * k * n,
                            c: c.baseAddress! + i * m * n)
                    }
                }
            }
        }
        return out
    }

    private func integerProduct<T: FixedWidthInteger>(
        _ x: [T], _ y: [T], _ aIndex: [Int], _ bIndex: [Int], _ batchCount: Int, _ m: Int, _ n: Int, _ k: Int
    ) -> [T] {
        var out = [T](repeating: 0, count: batchCount * m * n)
        for bi in 0..<batchCount {
            let ao = aIndex[bi] * m * k, bo = bIndex[bi] * k * n, co = bi * m * n
            for i in 0..<m {
                for p in 0..<k {
                    let av = x[ao + i * k + p]
                    for j in 0..<n { out[co + i * n + j] = out[co + i * n + j] &+ av &* y[bo + p * n + j] }
                }
            }
        }
        return out
    }
}

/// Float types with a BLAS matrix product (no transposes, alpha 1, beta 0).
protocol BLASScalar: BinaryFloatingPoint {
    static func gemm(
        m: Int, n: Int, k: Int, a: UnsafePointer<Self>, b: UnsafePointer<Self>, c: UnsafeMutablePointer<Self>)
}
extension Float: BLASScalar {
    static func gemm(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>
    ) {
        BLAS.gemm(
            transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n, beta: 0, c: c, ldc: n)
    }
}
extension Double: BLASScalar {
    static func gemm(
        m: Int, n: Int, k: Int, a: UnsafePointer<Double>, b: UnsafePointer<Double>, c: UnsafeMutablePointer<Double>
    ) {
        BLAS.gemm(
            transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n, beta: 0, c: c, ldc: n)
    }
}
