internal import FreshlineEngine
internal import FreshlineJSON

/// The JSON of the Open Inference Protocol V2 (KServe V2): model metadata, inference requests and answers.
enum OIPCoding {
    /// A V2 tensor datatype, and the engine element type it is carried as. Types the engine does not compute with
    /// are widened to one that holds every value (INT16 and UINT16 as int32, UINT32 and UINT64 as int64, FP16 and
    /// BF16 as float); sending narrows them back, range-checked.
    enum Datatype: String, Sendable, CaseIterable {
        case bool = "BOOL"
        case uint8 = "UINT8"
        case uint16 = "UINT16"
        case uint32 = "UINT32"
        case uint64 = "UINT64"
        case int8 = "INT8"
        case int16 = "INT16"
        case int32 = "INT32"
        case int64 = "INT64"
        case fp16 = "FP16"
        case bf16 = "BF16"
        case fp32 = "FP32"
        case fp64 = "FP64"
        case bytes = "BYTES"

        var elementType: ElementType {
            switch self {
            case .bool: .bool
            case .uint8: .uint8
            case .int8: .int8
            case .int16, .uint16, .int32: .int32
            case .uint32, .uint64, .int64: .int64
            case .fp16, .bf16, .fp32: .float
            case .fp64: .double
            case .bytes: .string
            }
        }

        /// The range of an integer datatype, for the values sent and received.
        var integerRange: ClosedRange<Int64>? {
            switch self {
            case .uint8: 0...Int64(UInt8.max)
            case .uint16: 0...Int64(UInt16.max)
            case .uint32: 0...Int64(UInt32.max)
            case .uint64: 0...Int64.max
            case .int8: Int64(Int8.min)...Int64(Int8.max)
            case .int16: Int64(Int16.min)...Int64(Int16.max)
            case .int32: Int64(Int32.min)...Int64(Int32.max)
            case .int64: Int64.min...Int64.max
            default: nil
            }
        }
    }

    /// An input or output as the server declares it.
    struct Port: Sendable, Equatable {
        var name: String
        var datatype: Datatype
        /// The declared shape, first dimension (the batch) as -1.
        var shape: [Int]
    }

    /// The parts of a model metadata answer Freshline uses.
    struct Metadata: Sendable, Equatable {
        var inputs: [Port]
        var outputs: [Port]
        var versions: [String]
        var platform: String?
    }

    /// Reads `GET /v2/models/{model}`; a message says what is wrong when the answer is not model metadata.
    static func metadata(_ json: JSONValue) -> Result<Metadata, MalformedAnswer> {
        guard case .object(let object) = json else { return .failure("expected a JSON object") }
        func ports(_ key: String) -> Result<[Port], MalformedAnswer> {
            guard let value = object[key] else { return .success([]) }
            guard case .array(let items) = value else { return .failure("expected \(key) to be an array") }
            var ports: [Port] = []
            for (i, item) in items.enumerated() {
                guard case .object(let port) = item, case .string(let name)? = port["name"], !name.isEmpty else {
                    return .failure("expected \(key)[\(i)].name")
                }
                guard case .string(let typeName)? = port["datatype"] else {
                    return .failure("expected \(key)[\(i)].datatype")
                }
                guard let datatype = Datatype(rawValue: typeName.uppercased()) else {
                    return .failure("\(key)[\(i)] ('\(name)') has the unsupported datatype \(typeName.prefix(16))")
                }
                var shape: [Int] = []
                if case .array(let dims)? = port["shape"] {
                    for dim in dims {
                        guard case .integer(let d) = dim, d >= -1, d <= Int64(Shape.maximumElementCount) else {
                            return .failure("expected \(key)[\(i)].shape to hold dimensions")
                        }
                        shape.append(Int(d))
                    }
                }
                // Freshline stacks rows along the first dimension: whatever the server declares there (a fixed
                // batch size, or nothing for a scalar per row), the metadata says "any number of rows".
                shape = shape.isEmpty ? [-1] : [-1] + shape.dropFirst()
                ports.append(Port(name: name, datatype: datatype, shape: shape))
            }
            return .success(ports)
        }
        let inputs: [Port]
        let outputs: [Port]
        switch ports("inputs") {
        case .success(let p): inputs = p
        case .failure(let e): return .failure(e)
        }
        switch ports("outputs") {
        case .success(let p): outputs = p
        case .failure(let e): return .failure(e)
        }
        var versions: [String] = []
        if case .array(let items)? = object["versions"] {
            for case .string(let v) in items { versions.append(v) }
        }
        var platform: String?
        if case .string(let p)? = object["platform"], !p.isEmpty { platform = p }
        return .success(Metadata(inputs: inputs, outputs: outputs, versions: versions, platform: platform))
    }

    /// The body of `POST …/infer` for rows `rows` of `feeds`: one tensor per input, the rows stacked, `data`
    /// flattened row-major, asking for every output. A feed that is missing, or a value the input's datatype cannot
    /// hold, is the caller's fault.
    static func request(feeds: [String: Tensor], rows: Range<Int>, inputs: [Port], outputs: [Port])
        -> Result<[UInt8], BadRow>
    {
        var out: [UInt8] = []
        out.reserveCapacity(256 + rows.count * 16 * inputs.count)
        out.append(contentsOf: #"{"inputs":["#.utf8)
        for (i, input) in inputs.enumerated() {
            guard let tensor = feeds[input.name] else { return .failure("input '\(input.name)' is missing") }
            let total = tensor.shape.first ?? 0
            guard tensor.rank >= 1, total > 0 || rows.isEmpty else {
                return .failure("input '\(input.name)' has no rows")
            }
            let perRow = total > 0 ? tensor.count / total : 0
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"name":"#.utf8)
            JSONValue.writeString(input.name, into: &out)
            out.append(contentsOf: #","shape":["#.utf8)
            let shape = [rows.count] + tensor.shape.dropFirst()
            out.append(contentsOf: shape.map(String.init).joined(separator: ",").utf8)
            out.append(contentsOf: #"],"datatype":""#.utf8)
            out.append(contentsOf: input.datatype.rawValue.utf8)
            out.append(contentsOf: #"","data":["#.utf8)
            let elements = (rows.lowerBound * perRow)..<(rows.upperBound * perRow)
            if let problem = write(tensor.data, elements, as: input.datatype, into: &out) {
                return .failure("input '\(input.name)': \(problem)")
            }
            out.append(contentsOf: "]}".utf8)
        }
        out.append(contentsOf: "]".utf8)
        if !outputs.isEmpty {
            out.append(contentsOf: #","outputs":["#.utf8)
            for (i, output) in outputs.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: #"{"name":"#.utf8)
                JSONValue.writeString(output.name, into: &out)
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "}"))
        return .success(out)
    }

    /// Writes elements as JSON values of `datatype`; a message when one does not fit.
    private static func write(_ data: TensorData, _ range: Range<Int>, as datatype: Datatype, into out: inout [UInt8])
        -> String?
    {
        var first = true
        func comma() {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
        }
        func integer(_ value: Int64) -> String? {
            if let allowed = datatype.integerRange, !allowed.contains(value) {
                return "\(value) does not fit \(datatype.rawValue)"
            }
            comma()
            JSONValue.writeInteger(value, into: &out)
            return nil
        }
        switch (data, datatype) {
        case (.string(let v), .bytes):
            for i in range {
                comma()
                JSONValue.writeString(v[i], into: &out)
            }
        case (.string, _), (_, .bytes):
            return "\(data.elementType) values cannot be sent as \(datatype.rawValue)"
        case (.bool(let v), .bool):
            for i in range {
                comma()
                out.append(contentsOf: (v[i] ? "true" : "false").utf8)
            }
        case (.float(let v), .fp16), (.float(let v), .bf16), (.float(let v), .fp32), (.float(let v), .fp64):
            for i in range {
                guard v[i].isFinite else { return "non-finite values cannot be sent as JSON" }
                comma()
                // Float's own shortest text: the server parses it back to the same float32.
                out.append(contentsOf: v[i].description.utf8)
            }
        case (.double(let v), .fp16), (.double(let v), .bf16), (.double(let v), .fp32), (.double(let v), .fp64):
            for i in range {
                guard v[i].isFinite else { return "non-finite values cannot be sent as JSON" }
                comma()
                JSONValue.writeNumber(v[i], into: &out)
            }
        case (_, .bool), (_, .fp16), (_, .bf16), (_, .fp32), (_, .fp64):
            guard datatype != .bool, let integers = TensorData.integers(data) else {
                return "\(data.elementType) values cannot be sent as \(datatype.rawValue)"
            }
            for i in range {
                comma()
                JSONValue.writeNumber(Double(integers(i)), into: &out)
            }
        default:
            guard let integers = TensorData.integers(data) else {
                return "\(data.elementType) values cannot be sent as \(datatype.rawValue)"
            }
            for i in range {
                if let problem = integer(integers(i)) { return problem }
            }
        }
        return nil
    }

    /// The answer of `POST …/infer`: every expected output, converted to its engine type, with its first dimension
    /// checked against the row count; and `model_version` when the server gives one.
    static func answer(_ json: JSONValue, expected: [Port], rows: Int)
        -> Result<(outputs: [String: Tensor], modelVersion: String?), MalformedAnswer>
    {
        guard case .object(let object) = json else { return .failure("expected a JSON object") }
        guard case .array(let items)? = object["outputs"] else { return .failure("expected outputs") }
        var byName: [String: [String: JSONValue]] = [:]
        for item in items {
            if case .object(let output) = item, case .string(let name)? = output["name"] { byName[name] = output }
        }
        var tensors: [String: Tensor] = [:]
        for port in expected {
            guard let output = byName[port.name] else { return .failure("expected the output '\(port.name)'") }
            switch tensor(output, port: port, rows: rows) {
            case .success(let t): tensors[port.name] = t
            case .failure(let e): return .failure(e)
            }
        }
        var version: String?
        if case .string(let v)? = object["model_version"], !v.isEmpty { version = v }
        return .success((tensors, version))
    }

    private static func tensor(_ output: [String: JSONValue], port: Port, rows: Int) -> Result<Tensor, MalformedAnswer>
    {
        let name = port.name
        guard case .array(let dims)? = output["shape"] else { return .failure("expected \(name).shape") }
        var shape: [Int] = []
        for dim in dims {
            guard case .integer(let d) = dim, d >= 0, d <= Int64(Shape.maximumElementCount) else {
                return .failure("expected \(name).shape to hold non-negative dimensions")
            }
            shape.append(Int(d))
        }
        // A scalar per row may come back as shape [rows].
        guard shape.first == rows else {
            return .failure("\(name) has \(shape.first.map(String.init) ?? "no") rows, expected \(rows)")
        }
        // The answer's datatype wins over the metadata's (servers widen or narrow); unknown ones are malformed.
        var datatype = port.datatype
        if case .string(let typeName)? = output["datatype"] {
            guard let answered = Datatype(rawValue: typeName.uppercased()) else {
                return .failure("\(name) has the unsupported datatype \(typeName.prefix(16))")
            }
            datatype = answered
        }
        guard case .array(let nested)? = output["data"] else { return .failure("expected \(name).data") }
        var flat: [JSONValue] = []
        flatten(nested, into: &flat)
        guard let count = try? Shape.elementCount(shape), count == flat.count else {
            return .failure("\(name) has \(flat.count) values for shape \(shape)")
        }
        guard let data = convert(flat, to: datatype) else {
            return .failure("\(name) holds values that are not \(datatype.rawValue)")
        }
        guard let tensor = try? Tensor(shape: shape, data: data) else {
            return .failure("\(name) does not fit shape \(shape)")
        }
        return .success(tensor)
    }

    private static func flatten(_ items: [JSONValue], into flat: inout [JSONValue]) {
        for item in items {
            if case .array(let inner) = item { flatten(inner, into: &flat) } else { flat.append(item) }
        }
    }

    /// JSON values to elements of the datatype's engine type; `nil` when one is not of the datatype.
    static func convert(_ values: [JSONValue], to datatype: Datatype) -> TensorData? {
        func integers() -> [Int64]? {
            var result: [Int64] = []
            result.reserveCapacity(values.count)
            for value in values {
                guard case .integer(let i) = value, datatype.integerRange?.contains(i) ?? false else { return nil }
                result.append(i)
            }
            return result
        }
        func doubles() -> [Double]? {
            var result: [Double] = []
            result.reserveCapacity(values.count)
            for value in values {
                switch value {
                case .integer, .number: result.append(value.doubleValue ?? .nan)
                case .string("NaN"), .string("Infinity"), .string("-Infinity"), .string("nan"), .string("inf"),
                    .string("-inf"):
                    result.append(value.doubleValue ?? .nan)
                default: return nil
                }
            }
            return result
        }
        switch datatype.elementType {
        case .bool:
            var result: [Bool] = []
            for value in values {
                switch value {
                case .bool(let b): result.append(b)
                case .integer(0): result.append(false)
                case .integer(1): result.append(true)
                default: return nil
                }
            }
            return .bool(result)
        case .string:
            var result: [String] = []
            for value in values {
                guard case .string(let s) = value else { return nil }
                result.append(s)
            }
            return .string(result)
        case .float: return doubles().map { .float($0.map(Float.init)) }
        case .double: return doubles().map { .double($0) }
        case .int64: return integers().map { .int64($0) }
        case .int32: return integers().map { .int32($0.map { Int32($0) }) }
        case .int8: return integers().map { .int8($0.map { Int8($0) }) }
        case .uint8: return integers().map { .uint8($0.map { UInt8($0) }) }
        }
    }
}

/// What is wrong with an upstream's answer, said without quoting it.
struct MalformedAnswer: Error, Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByStringInterpolation {
    var message: String
    init(_ message: String) { self.message = message }
    init(stringLiteral value: String) { message = value }
    init(stringInterpolation: DefaultStringInterpolation) { message = String(stringInterpolation: stringInterpolation) }
}

/// Why a row cannot be sent as it is.
struct BadRow: Error, Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByStringInterpolation {
    var message: String
    init(_ message: String) { self.message = message }
    init(stringLiteral value: String) { message = value }
    init(stringInterpolation: DefaultStringInterpolation) { message = String(stringInterpolation: stringInterpolation) }
}

extension TensorData {
    /// An accessor of integer elements widened to Int64 (int64, int32, int8, uint8); `nil` for other types.
    static func integers(_ data: TensorData) -> ((Int) -> Int64)? {
        switch data {
        case .int64(let v): { v[$0] }
        case .int32(let v): { Int64(v[$0]) }
        case .int8(let v): { Int64(v[$0]) }
        case .uint8(let v): { Int64(v[$0]) }
        default: nil
        }
    }
}
