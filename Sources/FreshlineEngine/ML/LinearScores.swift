/// The affine scores `X·Wᵀ + b` of the linear models: `rows × targets` single-precision values, each dot product
/// accumulated in double precision and rounded once (so it is within half an ulp of the exact value, as close
/// as one can get to onnxruntime's single-precision GEMM without reproducing its blocking).
enum LinearScores {
    /// `x` is `rows × features` row-major; `coefficients` holds `targets` rows of `features` values (extra
    /// coefficients are ignored); `intercepts`, when given, one value per target.
    static func compute(
        _ x: [Float], rows: Int, features: Int, targets: Int, coefficients: [Float],
        intercepts: [Float]?
    ) -> [Float] {
        var out = [Float](repeating: 0, count: rows * targets)
        x.withUnsafeBufferPointer { xb in
            coefficients.withUnsafeBufferPointer { wb in
                out.withUnsafeMutableBufferPointer { ob in
                    guard let xp = xb.baseAddress, let wp = wb.baseAddress, let op = ob.baseAddress else { return }
                    for r in 0..<rows {
                        let row = xp + r * features
                        for t in 0..<targets {
                            let w = wp + t * features
                            var sum: Double = 0
                            for j in 0..<features { sum += Double(row[j]) * Double(w[j]) }
                            if let intercepts { sum += Double(intercepts[t]) }
                            op[r * targets + t] = Float(sum)
                        }
                    }
                }
            }
        }
        return out
    }
}
