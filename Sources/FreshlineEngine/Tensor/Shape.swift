/// Shape arithmetic shared by the operators, with the overflow and size checks that keep a hostile model from
/// asking for an unbounded allocation.
public enum Shape {
    /// The largest tensor, in elements, that the engine will create (2^28, 1 GiB of float32).
    /// A model or input that would need more is rejected with an error instead.
    public static let maximumElementCount = 1 << 28

    /// The product of the dimensions, checked for negative values, overflow and `maximumElementCount`.
    public static func elementCount(_ dims: [Int]) throws(EngineError) -> Int {
        var product = 1
        for d in dims {
            guard d >= 0 else { throw EngineError(.invalidShape, "negative dimension in shape \(dims)") }
            let (p, overflow) = product.multipliedReportingOverflow(by: d)
            guard !overflow, p <= maximumElementCount else {
                throw EngineError(
                    .tooLarge, "shape \(dims) exceeds the engine's limit of \(maximumElementCount) elements")
            }
            product = p
        }
        return product
    }

    /// Row-major strides of a shape (elements, not bytes).
    public static func strides(_ dims: [Int]) -> [Int] {
        var strides = Array(repeating: 1, count: dims.count)
        var s = 1
        for i in stride(from: dims.count - 1, through: 0, by: -1) {
            strides[i] = s
            s *= dims[i]
        }
        return strides
    }

    /// Normalizes a possibly negative axis for a tensor of `rank` dimensions.
    public static func axis(_ axis: Int, rank: Int, op: String) throws(EngineError) -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < max(rank, 1) else {
            throw EngineError(.invalidArgument, "\(op): axis \(axis) is out of range for rank \(rank)")
        }
        return a
    }

    /// The numpy-style broadcast of two shapes, or an error naming both.
    public static func broadcast(_ a: [Int], _ b: [Int], op: String) throws(EngineError) -> [Int] {
        let rank = max(a.count, b.count)
        var out = Array(repeating: 0, count: rank)
        for i in 0..<rank {
            let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            if da == db || db == 1 {
                out[i] = da
            } else if da == 1 {
                out[i] = db
            } else {
                throw EngineError(.invalidShape, "\(op): shapes \(a) and \(b) cannot be broadcast together")
            }
        }
        _ = try elementCount(out)
        return out
    }

    /// For each element of `outShape`, the index of the element of a tensor of shape `inShape` that
    /// broadcasting maps to it.
    public static func broadcastIndices(from inShape: [Int], to outShape: [Int]) -> [Int] {
        let rank = outShape.count
        let padded = Array(repeating: 1, count: rank - inShape.count) + inShape
        let inStrides = strides(padded)
        let count = outShape.reduce(1, *)
        var result = [Int](repeating: 0, count: count)
        if count == 0 { return result }
        var counter = [Int](repeating: 0, count: rank)
        var offset = 0
        for i in 0..<count {
            result[i] = offset
            var d = rank - 1
            while d >= 0 {
                counter[d] += 1
                if padded[d] != 1 { offset += inStrides[d] }
                if counter[d] < outShape[d] { break }
                if padded[d] != 1 { offset -= inStrides[d] * outShape[d] }
                counter[d] = 0
                d -= 1
            }
        }
        return result
    }
}
