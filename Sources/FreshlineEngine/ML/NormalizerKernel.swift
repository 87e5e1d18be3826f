internal import Foundation

/// `Normalizer`: scales each row by its maximum (MAX), its L1 norm or its L2 norm, producing floats. Rows whose
/// norm is zero are copied unchanged. Follows onnxruntime's single-precision arithmetic (the squares of L2 are
/// taken in the input's type first).
struct NormalizerKernel: Kernel {
    enum Norm: Sendable { case max, l1, l2 }
    let norm: Norm

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        let norm: Norm
        switch try context.attributes.string("norm", default: "MAX") {
        case "MAX": norm = .max
        case "L1": norm = .l1
        case "L2": norm = .l2
        case let other: throw context.error(.invalidArgument, "unknown norm '\(other)'")
        }
        return NormalizerKernel(norm: norm)
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "Normalizer")
        guard x.rank == 1 || x.rank == 2 else {
            throw EngineError(.invalidShape, "Normalizer: input X must have rank 1 or 2, got shape \(x.shape)")
        }
        let rows = x.rank == 1 ? 1 : x.shape[0]
        let width = x.rank == 1 ? x.shape[0] : x.shape[1]
        let y: [Float]
        switch x.data {
        case .float(let v): y = normalize(rows, width, { v[$0] }, { abs(v[$0]) }, { v[$0] * v[$0] })
        case .double(let v):
            y = normalize(rows, width, { Float(v[$0]) }, { Float(abs(v[$0])) }, { Float(v[$0] * v[$0]) })
        case .int64(let v):
            y = normalize(rows, width, { Float(v[$0]) }, { Float(v[$0].magnitude) }, { Float(v[$0] &* v[$0]) })
        case .int32(let v):
            y = normalize(rows, width, { Float(v[$0]) }, { Float(v[$0].magnitude) }, { Float(v[$0] &* v[$0]) })
        default:
            throw EngineError(
                .unsupportedType, "Normalizer: input X must be float, double, int64 or int32, got \(x.elementType)")
        }
        return [.tensor(Tensor(unchecked: x.shape, .float(y)))]
    }

    /// `value(i)`: element i as float; `magnitude(i)`: |element i| as float; `square(i)`: element i squared in
    /// its own type, then as float.
    private func normalize(
        _ rows: Int, _ width: Int, _ value: (Int) -> Float, _ magnitude: (Int) -> Float,
        _ square: (Int) -> Float
    ) -> [Float] {
        var out = [Float](repeating: 0, count: rows * width)
        for r in 0..<rows {
            let start = r * width
            let range = start..<(start + width)
            switch norm {
            case .max:
                var maximum = -Float.greatestFiniteMagnitude
                for i in range where maximum < value(i) { maximum = value(i) }
                for i in range { out[i] = maximum != 0 ? value(i) / maximum : value(i) }
            case .l1:
                var sum: Float = 0
                for i in range { sum += magnitude(i) }
                for i in range { out[i] = sum != 0 ? value(i) / sum : value(i) }
            case .l2:
                var sum: Float = 0
                for i in range {
                    out[i] = square(i)
                    sum += out[i]
                }
                for i in range {
                    if sum != 0 {
                        let root = (out[i] / sum).squareRoot()
                        out[i] = value(i) < 0 ? -root : root
                    } else {
                        out[i] = value(i)
                    }
                }
            }
        }
        return out
    }
}
