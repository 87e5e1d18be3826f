/// A dense, row-major tensor: a shape and its elements.
///
/// Tensors are values (copy-on-write arrays inside), so they can be shared between threads freely.
public struct Tensor: Sendable, Equatable {
    /// The dimensions, outermost first. A scalar has shape `[]`.
    public var shape: [Int]
    /// The elements, row-major.
    public var data: TensorData

    /// Makes a tensor; the element count must equal the product of the dimensions.
    public init(shape: [Int], data: TensorData) throws(EngineError) {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw EngineError(.invalidShape, "negative dimension in shape \(shape)")
        }
        let expected = try Shape.elementCount(shape)
        guard expected == data.count else {
            throw EngineError(.invalidShape, "shape \(shape) needs \(expected) elements, got \(data.count)")
        }
        self.shape = shape
        self.data = data
    }

    /// Makes a tensor without checking; for operators that computed the shape from checked inputs.
    init(unchecked shape: [Int], _ data: TensorData) {
        assert(shape.reduce(1, *) == data.count, "shape \(shape) does not match \(data.count) elements")
        self.shape = shape
        self.data = data
    }

    /// A float32 tensor.
    public init(shape: [Int], floats: [Float]) throws(EngineError) { try self.init(shape: shape, data: .float(floats)) }
    /// A float64 tensor.
    public init(shape: [Int], doubles: [Double]) throws(EngineError) {
        try self.init(shape: shape, data: .double(doubles))
    }
    /// An int64 tensor.
    public init(shape: [Int], int64s: [Int64]) throws(EngineError) { try self.init(shape: shape, data: .int64(int64s)) }
    /// A string tensor.
    public init(shape: [Int], strings: [String]) throws(EngineError) {
        try self.init(shape: shape, data: .string(strings))
    }

    /// The element type.
    public var elementType: ElementType { data.elementType }
    /// The number of elements.
    public var count: Int { data.count }
    /// The number of dimensions.
    public var rank: Int { shape.count }

    /// The same elements under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) throws(EngineError) -> Tensor {
        try Tensor(shape: newShape, data: data)
    }

    /// The elements as `[Float]`, or `nil` for another element type.
    public var floats: [Float]? { if case .float(let v) = data { v } else { nil } }
    /// The elements as `[Double]`, or `nil` for another element type.
    public var doubles: [Double]? { if case .double(let v) = data { v } else { nil } }
    /// The elements as `[Int64]`, or `nil` for another element type.
    public var int64s: [Int64]? { if case .int64(let v) = data { v } else { nil } }
    /// The elements as `[String]`, or `nil` for another element type.
    public var strings: [String]? { if case .string(let v) = data { v } else { nil } }

    /// Every element converted to `Double` (strings parse, booleans are 0 or 1); for tests and reports.
    public var doubleValues: [Double] {
        switch data {
        case .float(let v): v.map(Double.init)
        case .double(let v): v
        case .int64(let v): v.map(Double.init)
        case .int32(let v): v.map(Double.init)
        case .int8(let v): v.map(Double.init)
        case .uint8(let v): v.map(Double.init)
        case .bool(let v): v.map { $0 ? 1 : 0 }
        case .string(let v): v.map { Double($0) ?? .nan }
        }
    }

    /// Integer elements widened to `Int` (int64, int32, int8, uint8); `nil` for other types.
    /// Used for index-like inputs (axes, shapes, k, indices).
    public var integerValues: [Int]? {
        switch data {
        case .int64(let v): v.map { Int($0) }
        case .int32(let v): v.map { Int($0) }
        case .int8(let v): v.map { Int($0) }
        case .uint8(let v): v.map { Int($0) }
        default: nil
        }
    }
}
