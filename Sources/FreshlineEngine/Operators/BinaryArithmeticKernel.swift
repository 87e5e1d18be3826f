/// Add, Sub, Mul and Div with numpy-style (multidirectional) broadcasting.
struct BinaryArithmeticKernel: Kernel {
    enum Operation: String, Sendable {
        case add = "Add", sub = "Sub", mul = "Mul", div = "Div"
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
        case (.float(let x), .float(let y)): data = .float(apply(x, a.shape, y, b.shape, shape, floating(Float.self)))
        case (.double(let x), .double(let y)): data = .double(apply(x, a.shape, y, b.shape, shape, floating(Double.self)))
        case (.int64(let x), .int64(let y)): data = .int64(apply(x, a.shape, y, b.shape, shape, try integer(y)))
        case (.int32(let x), .int32(let y)): data = .int32(apply(x, a.shape, y, b.shape, shape, try integer(y)))
        case (.int8(let x), .int8(let y)): data = .int8(apply(x, a.shape, y, b.shape, shape, try integer(y)))
        case (.uint8(let x), .uint8(let y)): data = .uint8(apply(x, a.shape, y, b.shape, shape, try integer(y)))
        default: throw EngineError(.unsupportedType, "\(op) does not support \(a.elementType)")
        }
        return [.tensor(Tensor(unchecked: shape, data))]
    }

    private func floating<T: FloatingPoint>(_: T.Type) -> (T, T) -> T {
        switch operation {
        case .add: { $0 + $1 }
        case .sub: { $0 - $1 }
        case .mul: { $0 * $1 }
        case .div: { $0 / $1 }
        }
    }

    /// Integer arithmetic wraps on overflow (as C++ does in onnxruntime) and division truncates toward zero;
    /// a zero divisor is an error rather than a trap.
    private func integer<T: FixedWidthInteger>(_ divisors: [T]) throws -> (T, T) -> T {
        switch operation {
        case .add: return { $0 &+ $1 }
        case .sub: return { $0 &- $1 }
        case .mul: return { $0 &* $1 }
        case .div:
            guard !divisors.contains(0) else { throw EngineError(.invalidArgument, "Div: integer division by zero") }
            return { $0.dividedReportingOverflow(by: $1).partialValue }
        }
    }
}

/// Applies `f` elementwise with broadcasting; fast paths for equal shapes, a scalar operand, and a trailing
/// vector (a bias row).
@inline(__always)
func apply<T>(_ a: [T], _ aShape: [Int], _ b: [T], _ bShape: [Int], _ shape: [Int], _ f: (T, T) -> T) -> [T] {
    let count = shape.reduce(1, *)
    if a.count == count, b.count == count, aShape == bShape {
        return (0..<count).map { f(a[$0], b[$0]) }
    }
    if b.count == 1, a.count == count { let y = b[0]; return a.map { f($0, y) } }
    if a.count == 1, b.count == count { let x = a[0]; return b.map { f(x, $0) } }
    if a.count == count, !b.isEmpty, count % b.count == 0, aShape.suffix(bShape.count).elementsEqual(bShape) {
        let inner = b.count
        var out = [T]()
        out.reserveCapacity(count)
        for start in stride(from: 0, to: count, by: inner) {
            for j in 0..<inner { out.append(f(a[start + j], b[j])) }
        }
        return out
    }
    let ai = Shape.broadcastIndices(from: aShape, to: shape)
    let bi = Shape.broadcastIndices(from: bShape, to: shape)
    return (0..<count).map { f(a[ai[$0]], b[bi[$0]]) }
}
