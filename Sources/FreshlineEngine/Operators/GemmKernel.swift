/// General matrix multiply `Y = alpha·A'·B' + beta·C` (A' and B' optionally transposed, C broadcast to Y).
/// Float and double go to BLAS; integer types use a plain loop.
struct GemmKernel: Kernel {
    let alpha: Float
    let beta: Float
    let transA: Bool
    let transB: Bool

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(context.opsetVersion >= 11 ? 2...3 : 3...3)
        return GemmKernel(
            alpha: try context.attributes.float("alpha", default: 1),
            beta: try context.attributes.float("beta", default: 1),
            transA: try context.attributes.int("transA", default: 0) != 0,
            transB: try context.attributes.int("transB", default: 0) != 0
        )
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let a = try inputs.tensor(0, "Gemm")
        let b = try inputs.tensor(1, "Gemm")
        let c = try inputs.optionalTensor(2, "Gemm")
        guard a.rank == 2, b.rank == 2 else {
            throw EngineError(.invalidShape, "Gemm: A and B must be matrices, got shapes \(a.shape) and \(b.shape)")
        }
        let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == kb else {
            throw EngineError(
                .invalidShape,
                "Gemm: inner dimensions differ (A \(a.shape), B \(b.shape), transA \(transA), transB \(transB))")
        }
        let shape = [m, n]
        _ = try Shape.elementCount(shape)
        if let c, c.elementType != a.elementType {
            throw EngineError(.invalidArgument, "Gemm: C has type \(c.elementType), A has \(a.elementType)")
        }
        guard a.elementType == b.elementType else {
            throw EngineError(.invalidArgument, "Gemm: A and B types differ (\(a.elementType), \(b.elementType))")
        }
        // Broadcasting C must be unidirectional: C's shape must broadcast to [M, N].
        if let c {
            let broadcast = try Shape.broadcast(c.shape, shape, op: "Gemm")
            guard broadcast == shape else {
                throw EngineError(.invalidShape, "Gemm: C of shape \(c.shape) does not broadcast to \(shape)")
            }
        }
        switch (a.data, b.data) {
        case (.float(let x), .float(let y)):
            var out = initial(c?.floats, c?.shape, shape, scale: beta)
            multiply(x, y, &out, m: m, n: n, k: k, alpha: alpha, beta: c == nil || beta == 0 ? 0 : 1)
            return [.tensor(Tensor(unchecked: shape, .float(out)))]
        case (.double(let x), .double(let y)):
            var out = initial(c?.doubles, c?.shape, shape, scale: Double(beta))
            multiply(x, y, &out, m: m, n: n, k: k, alpha: Double(alpha), beta: c == nil || beta == 0 ? 0 : 1)
            return [.tensor(Tensor(unchecked: shape, .double(out)))]
        case (.int64(let x), .int64(let y)):
            let out = integerGemm(x, y, c?.int64s, c?.shape, m: m, n: n, k: k)
            return [.tensor(Tensor(unchecked: shape, .int64(out)))]
        case (.int32(let x), .int32(let y)):
            let out = integerGemm(
                x, y, c.flatMap { if case .int32(let v) = $0.data { v } else { nil } }, c?.shape, m: m, n: n, k: k)
            return [.tensor(Tensor(unchecked: shape, .int32(out)))]
        default:
            throw EngineError(.unsupportedType, "Gemm does not support \(a.elementType)")
        }
    }

    private func initial<T: BinaryFloatingPoint>(_ c: [T]?, _ cShape: [Int]?, _ shape: [Int], scale: T) -> [T] {
        let count = shape[0] * shape[1]
        guard let c, let cShape, scale != 0 else { return [T](repeating: 0, count: count) }
        let zeros = [T](repeating: 0, count: count)
        return apply(zeros, shape, c, cShape, shape) { _, v in v * scale }
    }

    private func multiply(
        _ x: [Float], _ y: [Float], _ out: inout [Float], m: Int, n: Int, k: Int, alpha: Float, beta: Float
    ) {
        guard m > 0, n > 0 else { return }
        guard k > 0 else { return }
        x.withUnsafeBufferPointer { a in
            y.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { c in
                    BLAS.gemm(
                        transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                        a: a.baseAddress!, lda: transA ? m : k, b: b.baseAddress!, ldb: transB ? k : n,
                        beta: beta, c: c.baseAddress!, ldc: n)
                }
            }
        }
    }

    private func multiply(
        _ x: [Double], _ y: [Double], _ out: inout [Double], m: Int, n: Int, k: Int, alpha: Double, beta: Double
    ) {
        guard m > 0, n > 0, k > 0 else { return }
        x.withUnsafeBufferPointer { a in
            y.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { c in
                    BLAS.gemm(
                        transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                        a: a.baseAddress!, lda: transA ? m : k, b: b.baseAddress!, ldb: transB ? k : n,
                        beta: beta, c: c.baseAddress!, ldc: n)
                }
            }
        }
    }

    private func integerGemm<T: FixedWidthInteger>(
        _ x: [T], _ y: [T], _ c: [T]?, _ cShape: [Int]?, m: Int, n: Int, k: Int
    ) -> [T] {
        let shape = [m, n]
        var out = [T](repeating: 0, count: m * n)
        let al = T(truncatingIfNeeded: CastKernel.truncatingToInt64(Double(alpha))),
            be = T(truncatingIfNeeded: CastKernel.truncatingToInt64(Double(beta)))
        for i in 0..<m {
            for j in 0..<n {
                var sum: T = 0
                for p in 0..<k {
                    let av = transA ? x[p * m + i] : x[i * k + p]
                    let bv = transB ? y[j * k + p] : y[p * n + j]
                    sum = sum &+ av &* bv
                }
                out[i * n + j] = al &* sum
            }
        }
        if let c, let cShape {
            out = apply(out, shape, c, cShape, shape) { $0 &+ be &* $1 }
        }
        return out
    }
}
