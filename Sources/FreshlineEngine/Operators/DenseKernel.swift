/// A fused `MatMul(X, W) + b` (optionally followed by `Relu`) with constant float weights, the layer exported
/// MLPs are made of. One output buffer: the bias is written first, the product is accumulated into it by BLAS
/// (beta = 1), and Relu runs in place — instead of three kernels, three buffers and two extra passes.
/// Inputs that are not a float matrix of the expected width run through the original kernels.
struct DenseKernel: Kernel {
    let weights: [Float]
    let bias: [Float]
    let k: Int
    let n: Int
    let relu: Bool
    /// The kernels this one replaces, in order, for inputs the fast path does not cover.
    let fallback: [any Kernel]
    /// The extra (constant) input each fallback kernel takes after the running value, and on which side.
    let fallbackOperands: [(value: Value, first: Bool)?]

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "MatMul")
        guard case .float(let values) = x.data, x.rank == 2, x.shape[1] == k else { return try runFallback(inputs[0]) }
        let m = x.shape[0]
        let count = m * n
        var out = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            bias.withUnsafeBufferPointer { b in
                guard let base = buffer.baseAddress, let row = b.baseAddress else { return }
                for r in 0..<m { (base + r * n).initialize(from: row, count: n) }
            }
            initialized = count
        }
        guard m > 0, n > 0 else { return [.tensor(Tensor(unchecked: [m, n], .float(out)))] }
        values.withUnsafeBufferPointer { a in
            weights.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { c in
                    BLAS.gemm(
                        transA: false, transB: false, m: m, n: n, k: k, alpha: 1,
                        a: a.baseAddress!, lda: k, b: b.baseAddress!, ldb: n, beta: 1, c: c.baseAddress!, ldc: n)
                }
            }
        }
        if relu {
            out.withUnsafeMutableBufferPointer { c in
                guard let p = c.baseAddress else { return }
                for i in 0..<count { p[i] = max(p[i], 0) }  // branch-free, so it vectorizes
            }
        }
        return [.tensor(Tensor(unchecked: [m, n], .float(out)))]
    }

    private func runFallback(_ input: Value?) throws -> [Value] {
        var current = input
        for (kernel, operand) in zip(fallback, fallbackOperands) {
            let arguments: [Value?]
            if let operand {
                arguments = operand.first ? [operand.value, current] : [current, operand.value]
            } else {
                arguments = [current]
            }
            current = try kernel.run(arguments).first
        }
        guard let current else { throw EngineError(.invalidGraph, "fused dense layer produced no value") }
        return [current]
    }
}
