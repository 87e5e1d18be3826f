/// The element types the engine computes with. Raw values are ONNX's `TensorProto.DataType` numbers.
public enum ElementType: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case float = 1
    case uint8 = 2
    case int8 = 3
    case int32 = 6
    case int64 = 7
    case string = 8
    case bool = 9
    case double = 11

    /// Parses an ONNX data-type number; `nil` for types the engine does not support (float16, complex, …).
    public init?(onnx code: Int32) {
        self.init(rawValue: code)
    }

    /// The name ONNX uses in its documentation (`tensor(float)` → `float`).
    public var description: String {
        switch self {
        case .float: "float"
        case .uint8: "uint8"
        case .int8: "int8"
        case .int32: "int32"
        case .int64: "int64"
        case .string: "string"
        case .bool: "bool"
        case .double: "double"
        }
    }

    /// Whether the type is a floating-point type.
    public var isFloatingPoint: Bool { self == .float || self == .double }

    /// The name of an ONNX data-type number, for error messages about types the engine does not support.
    static func onnxName(_ code: Int32) -> String {
        let names: [Int32: String] = [
            0: "undefined", 1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
            8: "string", 9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64", 14: "complex64",
            15: "complex128", 16: "bfloat16", 17: "float8e4m3fn", 18: "float8e4m3fnuz", 19: "float8e5m2",
            20: "float8e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4e2m1",
        ]
        return names[code] ?? "type \(code)"
    }
}
