/// Add, Sub, Mul and Div with numpy-style (multidirectional) broadcasting.
struct BinaryArithmeticKernel: Kernel {
    enum Operation: String, Sendable {
        case add = "Add"
        case sub = "Sub"
        case mul = "Mul"
        case div = "Div"
    }
    let operation: Operation

    static func make(_ operation: Operation) -> @Sendable (NodeContext) throws -> any Kernel {
        { context in
            try context.requireInputs(2...2)
            return BinaryArithmeticKernel(operation: operation)
        }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let op = operation.rawValue
        let a = try inputs.tensor(0, op)
        let b = try inputs.tensor(1, op)
        guard a.elementType == b.elementType else {
            throw EngineError(.invalidArgument, "\(op): operand types differ (\(a.elementType) and \(b.elementType))")
        }
        let shape = a.shape == b.shape ? a.shape : try Shape.broadcast(a.shape, b.shape, op: op)
        let data: TensorData
        switch (a.data, b.data) {
        case (.float(let x), .float(let y)): data = .float(floating(x, a.shape, y, b.shape, shape))
        case (.double(let x), .double(let y)): data = .double(floating(x, a.shape, y, b.shape, shape))
        case (.int64(let x), .int64(let y)): data = .int64(try integer(x, a.shape, y, b.shape, shape))
        case (.int32(let x), .int32(let y)): data = .int32(try integer(x, a.shape, y, b.shape, shape))
        case (.int8(let x), .int8(let y)): data = .int8(try integer(x, a.shape, y, b.shape, shape))
        case (.uint8(let x), .uint8(let y)): data = .uint8(try integer(x, a.shape, y, b.shape, shape))
        default: throw EngineError(.unsupportedType, "\(op) does not support \(a.elementType)")
        }
        return [.tensor(Tensor(unchecked: shape, data))]
    }

    /// One switch per call, literal closures per operation: each `apply` call is specialized and inlined.
    private func floating<T: FloatingPoint>(_ x: [T], _ xs: [Int], _ y: [T], _ ys: [Int], _ shape: [Int]) -> [T] {
        switch operation {
        case .add: apply(x, xs, y, ys, shape) { $0 + $1 }
        case .sub: apply(x, xs, y, ys, shape) { $0 - $1 }
        case .mul: apply(x, xs, y, ys, shape) { $0 * $1 }
        case .div: apply(x, xs, y, ys, shape) { $0 / $1 }
        }
    }

    /// Integer arithmetic wraps on overflow (as C++ does in onnxruntime) and division truncates toward zero;
    /// a zero divisor is an error rather than a trap.
    private func integer<T: FixedWidthInteger>(_ x: [T], _ xs: [Int], _ y: [T], _ ys: [Int], _ shape: [Int]) throws
        -> [T]
    {
        switch operation {
        case .add: return apply(x, xs, y, ys, shape) { $0 &+ $1 }
        case .sub: return apply(x, xs, y, ys, shape) { $0 &- $1 }
        case .mul: return apply(x, xs, y, ys, shape) { $0 &* $1 }
        case .div:
            guard !y.contains(0) else { throw EngineError(.invalidArgument, "Div: integer division by zero") }
            return apply(x, xs, y, ys, shape) { $0.dividedReportingOverflow(by: $1).partialValue }
        }
    }
}

/// Applies `f` elementwise with broadcasting. Fast paths for equal shapes, a scalar operand, and a trailing
/// vector on either side (a bias row: `MatMul + b` and `b + MatMul` both occur in exported models).
@inline(__always)
func apply<T>(_ a: [T], _ aShape: [Int], _ b: [T], _ bShape: [Int], _ shape: [Int], _ f: (T, T) -> T) -> [T] {
    let count = shape.reduce(1, *)
    return a.withUnsafeBufferPointer { x in
        b.withUnsafeBufferPointer { y in
            [T](unsafeUninitializedCapacity: count) { out, initialized in
                defer { initialized = count }
                guard count > 0 else { return }
                if x.count == count, y.count == count {
                    for i in 0..<count { out.initializeElement(at: i, to: f(x[i], y[i])) }
                } else if y.count == 1, x.count == count {
                    let v = y[0]
                    for i in 0..<count { out.initializeElement(at: i, to: f(x[i], v)) }
                } else if x.count == 1, y.count == count {
                    let v = x[0]
                    for i in 0..<count { out.initializeElement(at: i, to: f(v, y[i])) }
                } else if x.count == count, !y.isEmpty, count % y.count == 0, isTrailing(bShape, of: shape) {
                    let inner = y.count
                    for start in stride(from: 0, to: count, by: inner) {
                        for j in 0..<inner { out.initializeElement(at: start + j, to: f(x[start + j], y[j])) }
                    }
                } else if y.count == count, !x.isEmpty, count % x.count == 0, isTrailing(aShape, of: shape) {
                    let inner = x.count
                    for start in stride(from: 0, to: count, by: inner) {
                        for j in 0..<inner { out.initializeElement(at: start + j, to: f(x[j], y[start + j])) }
                    }
                } else if x.count == count, let inner = shape.last, inner > 1, y.count * inner == count,
                    isColumn(bShape, of: shape)
                {
                    // A per-row scalar (`[N, M, C] · [N, M, 1]`).
                    for r in 0..<(count / inner) {
                        let v = y[r]
                        for j in 0..<inner { out.initializeElement(at: r * inner + j, to: f(x[r * inner + j], v)) }
                    }
                } else if y.count == count, let inner = shape.last, inner > 1, x.count * inner == count,
                    isColumn(aShape, of: shape)
                {
                    for r in 0..<(count / inner) {
                        let v = x[r]
                        for j in 0..<inner { out.initializeElement(at: r * inner + j, to: f(v, y[r * inner + j])) }
                    }
                } else if x.count == count, shape.count >= 2, isMiddle(bShape, of: shape) {
                    // A row repeated over the second-to-last axis (`[N, M, C] · [N, 1, C]`).
                    let inner = shape[shape.count - 1]
                    let middle = shape[shape.count - 2]
                    for o in 0..<(count / (inner * middle)) {
                        for m in 0..<middle {
                            let base = (o * middle + m) * inner
                            for j in 0..<inner {
                                out.initializeElement(at: base + j, to: f(x[base + j], y[o * inner + j]))
                            }
                        }
                    }
                } else if y.count == count, shape.count >= 2, isMiddle(aShape, of: shape) {
                    let inner = shape[shape.count - 1]
                    let middle = shape[shape.count - 2]
                    for o in 0..<(count / (inner * middle)) {
                        for m in 0..<middle {
                            let base = (o * middle + m) * inner
                            for j in 0..<inner {
                                out.initializeElement(at: base + j, to: f(x[o * inner + j], y[base + j]))
                            }
                        }
                    }
                } else {
                    let ai = Shape.broadcastIndices(from: aShape, to: shape)
                    let bi = Shape.broadcastIndices(from: bShape, to: shape)
                    for i in 0..<count { out.initializeElement(at: i, to: f(x[ai[i]], y[bi[i]])) }
                }
            }
        }
    }
}

/// Whether `operand` is `shape` with its last dimension 1 (one value per row), after left-padding with 1s.
@inline(__always)
func isColumn(_ operand: [Int], of shape: [Int]) -> Bool {
    guard operand.count <= shape.count, let last = shape.last, last != 1 else { return false }
    let padded = Array(repeating: 1, count: shape.count - operand.count) + operand
    return padded.last == 1 && padded.dropLast().elementsEqual(shape.dropLast())
}

/// Whether `operand` is `shape` with its second-to-last dimension 1 (a row repeated over that axis).
@inline(__always)
func isMiddle(_ operand: [Int], of shape: [Int]) -> Bool {
    let rank = shape.count
    guard rank >= 2, operand.count <= rank, shape[rank - 2] != 1 else { return false }
    let padded = Array(repeating: 1, count: rank - operand.count) + operand
    for d in 0..<rank where padded[d] != (d == rank - 2 ? 1 : shape[d]) { return false }
    return true
}

/// Whether `inner`, without leading 1s, equals the trailing dimensions of `shape` (so it repeats as a block).
@inline(__always)
func isTrailing(_ inner: [Int], of shape: [Int]) -> Bool {
    let trimmed = inner.drop { $0 == 1 }
    return trimmed.count <= shape.count && shape.suffix(trimmed.count).elementsEqual(trimmed)
}
