/// A JSON value, for moving rows of named inputs and outputs in and out of the engine (CLI, tests, and later
/// the serving API). Integers are kept apart from other numbers so that int64 ids survive exactly.
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? container.decode(Int64.self) {
            self = .integer(i)
        } else if let d = try? container.decode(Double.self) {
            self = .number(d)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .integer(let i): try container.encode(i)
        case .number(let d):
            // JSON has no NaN or infinity; they travel as the strings onnxruntime's tools print.
            if d.isNaN {
                try container.encode("NaN")
            } else if d.isInfinite {
                try container.encode(d < 0 ? "-Infinity" : "Infinity")
            } else {
                try container.encode(d)
            }
        case .string(let s): try container.encode(s)
        case .array(let a): try container.encode(a)
        case .object(let o): try container.encode(o)
        }
    }

    /// The value as a `Double`, for numbers, integers, booleans and the strings `NaN`/`Infinity`/`-Infinity`.
    public var doubleValue: Double? {
        switch self {
        case .integer(let i): Double(i)
        case .number(let d): d
        case .bool(let b): b ? 1 : 0
        case .string("NaN"), .string("nan"): .nan
        case .string("Infinity"), .string("inf"): .infinity
        case .string("-Infinity"), .string("-inf"): -.infinity
        default: nil
        }
    }
}
