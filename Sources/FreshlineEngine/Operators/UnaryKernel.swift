internal import Foundation

/// Elementwise functions of one input: Relu, Sigmoid, Tanh, Abs, and Identity (which passes any value through).
struct UnaryKernel: Kernel {
    enum Function: String, Sendable {
        case relu = "Relu"
        case sigmoid = "Sigmoid"
        case tanh = "Tanh"
        case abs = "Abs"
        case identity = "Identity"
    }
    let function: Function

    static func make(_ function: Function) -> @Sendable (NodeContext) throws -> any Kernel {
        { context in
            try context.requireInputs(1...1)
            return UnaryKernel(function: function)
        }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let op = function.rawValue
        if function == .identity {
            guard let value = inputs.first ?? nil else {
                throw EngineError(.invalidArgument, "Identity: input 0 is required")
            }
            return [value]
        }
        let x = try inputs.tensor(0, op)
        let data: TensorData
        switch (function, x.data) {
        case (.relu, .float(let v)):
            data = .float(
                v.withUnsafeBufferPointer { x in
                    [Float](unsafeUninitializedCapacity: x.count) { out, n in
                        for i in 0..<x.count { out.initializeElement(at: i, to: x[i] > 0 ? x[i] : 0) }
                        n = x.count
                    }
                })
        case (.relu, .double(let v)): data = .double(v.map { $0 > 0 ? $0 : 0 })
        case (.relu, .int64(let v)): data = .int64(v.map { max($0, 0) })
        case (.relu, .int32(let v)): data = .int32(v.map { max($0, 0) })
        case (.relu, .int8(let v)): data = .int8(v.map { max($0, 0) })
        case (.abs, .float(let v)): data = .float(v.map { Swift.abs($0) })
        case (.abs, .double(let v)): data = .double(v.map { Swift.abs($0) })
        case (.abs, .int64(let v)): data = .int64(v.map { $0 == .min ? $0 : Swift.abs($0) })
        case (.abs, .int32(let v)): data = .int32(v.map { $0 == .min ? $0 : Swift.abs($0) })
        case (.abs, .int8(let v)): data = .int8(v.map { $0 == .min ? $0 : Swift.abs($0) })
        case (.abs, .uint8(let v)): data = .uint8(v)
        case (.sigmoid, .float(let v)): data = .float(v.map(Self.sigmoid))
        case (.sigmoid, .double(let v)): data = .double(v.map(Self.sigmoid))
        case (.tanh, .float(let v)): data = .float(v.map { Foundation.tanh($0) })
        case (.tanh, .double(let v)): data = .double(v.map { Foundation.tanh($0) })
        default: throw EngineError(.unsupportedType, "\(op) does not support \(x.elementType)")
        }
        return [.tensor(Tensor(unchecked: x.shape, data))]
    }

    /// The logistic function, written so that neither branch overflows.
    static func sigmoid<T: BinaryFloatingPoint & ElementaryFunctionsLite>(_ x: T) -> T {
        if x >= 0 { return 1 / (1 + T.exponential(-x)) }
        let e = T.exponential(x)
        return e / (1 + e)
    }
}

/// The few elementary functions the operators need, for both float widths.
protocol ElementaryFunctionsLite {
    static func exponential(_ x: Self) -> Self
}
extension Float: ElementaryFunctionsLite {
    static func exponential(_ x: Float) -> Float { Foundation.exp(x) }
}
extension Double: ElementaryFunctionsLite {
    static func exponential(_ x: Double) -> Double { Foundation.exp(x) }
}
