public import FreshlineJSON

/// Converts between rows (one JSON object of named values per row, without the batch dimension) and the
/// batch tensors a model runs on (batch dimension first).
public enum RowBatch {
    /// Stacks rows into one tensor per model input. Each row's value is that row's slice of the input: a
    /// scalar or a nested array. A row may give a scalar where the model's per-row shape has one element.
    public static func tensors(rows: [[String: JSONValue]], inputs: [ModelMetadata.ValueInfo]) throws -> [String:
        Tensor]
    {
        var result: [String: Tensor] = [:]
        for input in inputs {
            var flat: [JSONValue] = []
            var rowShape: [Int]?
            for (index, row) in rows.enumerated() {
                guard let value = row[input.name] else {
                    throw EngineError(.invalidInput, "row \(index + 1): input '\(input.name)' is missing")
                }
                var shape: [Int] = []
                var elements: [JSONValue] = []
                try flatten(value, depth: 0, shape: &shape, into: &elements, input: input.name, row: index + 1)
                if let expected = input.shape, expected.count >= 1 {
                    let perRow = Array(expected.dropFirst())
                    if shape != perRow, elements.count == 1, perRow.allSatisfy({ $0 == 1 || $0 == -1 }) {
                        shape = perRow.map { _ in 1 }
                    }
                }
                if let rowShape, rowShape != shape {
                    throw EngineError(
                        .invalidInput,
                        "row \(index + 1): input '\(input.name)' has shape \(shape), earlier rows \(rowShape)")
                }
                rowShape = shape
                flat.append(contentsOf: elements)
            }
            let shape = [rows.count] + (rowShape ?? [])
            let data = try TensorData(json: flat, type: input.elementType, input: input.name)
            result[input.name] = try Tensor(shape: shape, data: data)
        }
        for (index, row) in rows.enumerated() {
            if let unknown = row.keys.sorted().first(where: { name in !inputs.contains { $0.name == name } }) {
                throw EngineError(.invalidInput, "row \(index + 1): the model has no input named '\(unknown)'")
            }
        }
        return result
    }

    private static func flatten(
        _ value: JSONValue, depth: Int, shape: inout [Int], into elements: inout [JSONValue], input: String, row: Int
    ) throws {
        guard depth < 32 else { throw EngineError(.invalidInput, "row \(row): input '\(input)' is nested too deeply") }
        guard case .array(let items) = value else {
            guard depth == shape.count else {
                throw EngineError(.invalidInput, "row \(row): input '\(input)' is a ragged array")
            }
            elements.append(value)
            return
        }
        if depth == shape.count {
            shape.append(items.count)
        } else if shape[depth] != items.count {
            throw EngineError(.invalidInput, "row \(row): input '\(input)' is a ragged array")
        }
        for item in items {
            try flatten(item, depth: depth + 1, shape: &shape, into: &elements, input: input, row: row)
        }
    }

    /// Splits each output along its first dimension into per-row JSON values. Map sequences (ZipMap) become
    /// one JSON object per row, keyed by class label.
    public static func rows(outputs: [String: Value], count: Int) throws -> [[String: JSONValue]] {
        var rows = [[String: JSONValue]](repeating: [:], count: count)
        for (name, value) in outputs {
            switch value {
            case .tensor(let t):
                guard t.rank >= 1, t.shape[0] == count else {
                    throw EngineError(
                        .invalidShape, "output '\(name)' has shape \(t.shape), not one row per input row (\(count))")
                }
                let perRow = Array(t.shape.dropFirst())
                let size = perRow.reduce(1, *)
                let values = t.data.jsonValues
                for r in 0..<count {
                    rows[r][name] = nest(values[(r * size)..<((r + 1) * size)], shape: perRow[...])
                }
            case .mapSequence(let maps):
                guard maps.count == count else {
                    throw EngineError(.invalidShape, "output '\(name)' has \(maps.count) maps for \(count) rows")
                }
                let k = maps.keys.count
                for r in 0..<count {
                    var object: [String: JSONValue] = [:]
                    for j in 0..<k { object[maps.keys.text(j)] = .number(Double(maps.values[r * k + j])) }
                    rows[r][name] = .object(object)
                }
            }
        }
        return rows
    }

    /// Each row's outputs as compact JSON object text — the same text as `JSONValue.object(rows(…)[r])
    /// .serialized()`, without building the per-row dictionaries. `selected` limits the outputs written.
    public static func serializedRows(outputs: [String: Value], count: Int, selected: [String]? = nil) throws
        -> [[UInt8]]
    {
        let packed = try packedRows(outputs: outputs, count: count, selected: selected)
        var rows: [[UInt8]] = []
        rows.reserveCapacity(count)
        var offset = 0
        while offset < packed.count {
            let length = packed[offset..<(offset + 4)].reversed().reduce(0) { $0 << 8 | Int($1) }
            rows.append(Array(packed[(offset + 4)..<(offset + 4 + length)]))
            offset += 4 + length
        }
        return rows
    }

    /// `serializedRows`' texts packed in one buffer, as the stores keep a chunk's outputs: each row's length as four
    /// little-endian bytes, then its text. One buffer for the chunk, written row by row, so a run does not make an
    /// array per row.
    public static func packedRows(outputs: [String: Value], count: Int, selected: [String]? = nil) throws -> [UInt8] {
        let names = outputs.keys.filter { selected?.contains($0) ?? true }.sorted()
        var columns: [SerializedColumn] = []
        // The rare outputs written from JSON values (other element types, more than one dimension per row, maps):
        // their values and row shapes, by `SerializedColumn.Values` index.
        var jsonValues: [[JSONValue]] = []
        var rowShapes: [[Int]] = []
        defer { for column in columns { column.deallocate() } }
        for (index, name) in names.enumerated() {
            // `,"name":` made once, not per row.
            var prefix: [UInt8] = index > 0 ? [UInt8(ascii: ",")] : []
            JSONValue.writeString(name, into: &prefix)
            prefix.append(UInt8(ascii: ":"))
            switch outputs[name]! {
            case .tensor(let t):
                guard t.rank >= 1, t.shape[0] == count else {
                    throw EngineError(
                        .invalidShape, "output '\(name)' has shape \(t.shape), not one row per input row (\(count))")
                }
                let rowShape = Array(t.shape.dropFirst())
                let values: SerializedColumn.Values
                // Scalars and vectors per row (nearly every model output) are written from typed copies.
                switch (rowShape.count <= 1, t.data) {
                case (true, .float(let v)): values = .floats(.copy(v))
                case (true, .double(let v)): values = .doubles(.copy(v))
                case (true, .int64(let v)): values = .integers(.copy(v))
                case (true, .int32(let v)): values = .integers(.copy(v.map(Int64.init)))
                default:
                    values = .general(jsonValues.count)
                    jsonValues.append(t.data.jsonValues)
                    rowShapes.append(rowShape)
                }
                columns.append(
                    SerializedColumn(
                        prefix: .copy(prefix), isScalar: rowShape.isEmpty, size: rowShape.reduce(1, *), values: values))
            case .mapSequence:
                // Rare (ZipMap): through the general path.
                let perRow = try rows(outputs: [name: outputs[name]!], count: count)
                columns.append(
                    SerializedColumn(prefix: .copy(prefix), isScalar: true, size: 0, values: .perRow(jsonValues.count)))
                jsonValues.append(perRow.map { $0[name] ?? .null })
                rowShapes.append([])
            }
        }
        // Room for every row at once (a number's text is at most 24 bytes), so the buffer grows rarely.
        let rowCapacity = 6 + columns.reduce(0) { $0 + $1.prefix.count + 2 + max(1, $1.size) * 25 }
        var out = ByteWriter(capacity: count * rowCapacity)
        var scratch: [UInt8] = []
        for r in 0..<count {
            let start = out.count
            for _ in 0..<4 { out.append(0) }  // the length, stored once the row is written
            out.append(UInt8(ascii: "{"))
            for c in 0..<columns.count {
                let column = columns[c]
                out.append(bytes: UnsafeBufferPointer(column.prefix))
                switch column.values {
                case .floats(let v): column.elements(r, into: &out) { JSONValue.appendNumber(Double(v[$0]), to: &$1) }
                case .doubles(let v): column.elements(r, into: &out) { JSONValue.appendNumber(v[$0], to: &$1) }
                case .integers(let v): column.elements(r, into: &out) { JSONValue.appendInteger(v[$0], to: &$1) }
                case .general(let i):
                    scratch.removeAll(keepingCapacity: true)
                    let size = column.size
                    writeNested(jsonValues[i][(r * size)..<(r * size + size)], shape: rowShapes[i][...], into: &scratch)
                    scratch.withUnsafeBufferPointer { out.append(bytes: $0) }
                case .perRow(let i):
                    scratch.removeAll(keepingCapacity: true)
                    jsonValues[i][r].write(into: &scratch)
                    scratch.withUnsafeBufferPointer { out.append(bytes: $0) }
                }
            }
            out.append(UInt8(ascii: "}"))
            out.storeLength(UInt32(out.count - start - 4), at: start)
        }
        return out.array()
    }

    /// One output of `packedRows`: its `"name":` prefix and its values. Trivially copied (owned pointers and
    /// indices), so nothing in the per-row path is reference counted.
    private struct SerializedColumn {
        enum Values {
            // Typed values are copied out of the tensor (owned here, freed by `deallocate`).
            case floats(UnsafeMutableBufferPointer<Float>)
            case doubles(UnsafeMutableBufferPointer<Double>)
            case integers(UnsafeMutableBufferPointer<Int64>)
            /// Any other element type, or more than one dimension per row: JSON values at this index.
            case general(Int)
            /// One JSON value per row (maps), at this index.
            case perRow(Int)
        }
        /// `,"name":`, owned here.
        var prefix: UnsafeMutableBufferPointer<UInt8>
        /// Whether a row's value is a scalar (no brackets).
        var isScalar: Bool
        var size: Int
        var values: Values

        func deallocate() {
            prefix.deallocate()
            switch values {
            case .floats(let v): v.deallocate()
            case .doubles(let v): v.deallocate()
            case .integers(let v): v.deallocate()
            case .general, .perRow: break
            }
        }

        /// Row `r`'s elements `r·size ..< (r+1)·size`: a scalar, or a vector.
        @inline(__always)
        func elements(_ r: Int, into out: inout ByteWriter, _ element: (Int, inout ByteWriter) -> Void) {
            guard !isScalar else {
                element(r * size, &out)
                return
            }
            out.append(UInt8(ascii: "["))
            for j in 0..<size {
                if j > 0 { out.append(UInt8(ascii: ",")) }
                element(r * size + j, &out)
            }
            out.append(UInt8(ascii: "]"))
        }
    }

    fileprivate static func writeNested(
        _ values: ArraySlice<JSONValue>, shape: ArraySlice<Int>, into out: inout [UInt8]
    ) {
        guard let first = shape.first else {
            (values.first ?? .null).write(into: &out)
            return
        }
        let inner = shape.dropFirst().reduce(1, *)
        out.append(UInt8(ascii: "["))
        var start = values.startIndex
        for j in 0..<first {
            if j > 0 { out.append(UInt8(ascii: ",")) }
            writeNested(values[start..<(start + inner)], shape: shape.dropFirst(), into: &out)
            start += inner
        }
        out.append(UInt8(ascii: "]"))
    }

    private static func nest(_ values: ArraySlice<JSONValue>, shape: ArraySlice<Int>) -> JSONValue {
        guard let first = shape.first else { return values.first ?? .null }
        let inner = shape.dropFirst().reduce(1, *)
        var items: [JSONValue] = []
        items.reserveCapacity(first)
        var start = values.startIndex
        for _ in 0..<first {
            items.append(nest(values[start..<(start + inner)], shape: shape.dropFirst()))
            start += inner
        }
        return .array(items)
    }
}

extension TensorData {
    /// Converts JSON scalars to elements of `type`; an error names the input on the first mismatch.
    public init(json values: [JSONValue], type: ElementType, input: String) throws {
        func fail(_ v: JSONValue) -> EngineError {
            EngineError(.invalidInput, "input '\(input)' expects \(type) values, got \(v.kindDescription)")
        }
        func double(_ v: JSONValue) throws -> Double {
            guard let d = v.doubleValue else { throw fail(v) }
            return d
        }
        func integer(_ v: JSONValue) throws -> Int64 {
            switch v {
            case .integer(let i): return i
            case .number(let d) where d == d.rounded() && abs(d) < 9.2e18: return Int64(d)
            case .bool(let b): return b ? 1 : 0
            default: throw fail(v)
            }
        }
        switch type {
        // JSON has no NaN: `null` in a floating-point input is a missing value (NaN), as tree models expect.
        case .float: self = .float(try values.map { $0 == .null ? .nan : Float(try double($0)) })
        case .double: self = .double(try values.map { $0 == .null ? .nan : try double($0) })
        case .int64: self = .int64(try values.map(integer))
        case .int32:
            self = .int32(
                try values.map { v in
                    let i = try integer(v)
                    guard let narrow = Int32(exactly: i) else { throw fail(v) }
                    return narrow
                })
        case .int8:
            self = .int8(
                try values.map { v in
                    guard let n = Int8(exactly: try integer(v)) else { throw fail(v) }
                    return n
                })
        case .uint8:
            self = .uint8(
                try values.map { v in
                    guard let n = UInt8(exactly: try integer(v)) else { throw fail(v) }
                    return n
                })
        case .bool:
            self = .bool(
                try values.map { v in
                    switch v {
                    case .bool(let b): return b
                    case .integer(let i): return i != 0
                    default: throw fail(v)
                    }
                })
        case .string:
            self = .string(
                try values.map { v in
                    switch v {
                    case .string(let s): return s
                    case .integer(let i): return String(i)
                    default: throw fail(v)
                    }
                })
        }
    }

    /// The elements as JSON scalars.
    public var jsonValues: [JSONValue] {
        switch self {
        case .float(let v): v.map { .number(Double($0)) }
        case .double(let v): v.map { .number($0) }
        case .int64(let v): v.map { .integer($0) }
        case .int32(let v): v.map { .integer(Int64($0)) }
        case .int8(let v): v.map { .integer(Int64($0)) }
        case .uint8(let v): v.map { .integer(Int64($0)) }
        case .bool(let v): v.map { .bool($0) }
        case .string(let v): v.map { .string($0) }
        }
    }
}

extension JSONValue {
    var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer, .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

extension UnsafeMutableBufferPointer {
    /// An owned copy of `values` (the caller deallocates it).
    fileprivate static func copy(_ values: [Element]) -> UnsafeMutableBufferPointer<Element> {
        let buffer = UnsafeMutableBufferPointer<Element>.allocate(capacity: values.count)
        _ = buffer.initialize(from: values)
        return buffer
    }
}
