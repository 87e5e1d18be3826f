public import FreshlineCore
public import FreshlineEngine
public import FreshlineJSON

/// Turns a source row into the entity key and the model's inputs, following the batch section's column
/// mapping. Text cells (CSV, SQL text) are converted to the input's element type here, so that one bad cell
/// fails its row with a message naming the column, not the whole chunk.
public struct EntityRowMapper: Sendable {
    let keyColumn: String
    let inputs: [(info: ModelMetadata.ValueInfo, mapping: BatchSpec.ColumnMapping)]

    /// A mapper for `batch` over `model`'s inputs.
    public init(batch: BatchSpec, model: Model) {
        self.init(batch: batch, model: model.metadata)
    }

    /// A mapper for `batch` over the inputs `model` describes.
    public init(batch: BatchSpec, model: ModelMetadata) {
        keyColumn = batch.keyColumn
        inputs = model.inputs.map { ($0, batch.mapping(forInput: $0.name)) }
    }

    /// Every column the mapping reads (for checking a source's header).
    public var columns: [String] {
        [keyColumn]
            + inputs.flatMap { input -> [String] in
                switch input.mapping {
                case .column(let c): [c]
                case .columns(let cs): cs
                }
            }
    }

    /// The row's key and model inputs, or why the row cannot be used.
    public func map(_ fields: [String: JSONValue]) -> Result<(key: String, inputs: [String: JSONValue]), RowReadError> {
        key(fields).flatMap { key in inputs(fields).map { (key, $0) } }
    }

    /// The row's entity key, or why it cannot be read.
    public func key(_ fields: [String: JSONValue]) -> Result<String, RowReadError> {
        guard let keyValue = fields[keyColumn] else {
            return .failure(RowReadError(message: "key column '\(keyColumn)' is missing"))
        }
        switch keyValue {
        case .string(let s) where !s.isEmpty: return .success(s)
        case .integer(let i): return .success(String(i))
        case .number(let d) where d == d.rounded() && abs(d) < 1e15: return .success(String(Int64(d)))
        case .string: return .failure(RowReadError(message: "key column '\(keyColumn)' is empty"))
        default:
            return .failure(RowReadError(message: "key column '\(keyColumn)' is not a string or integer"))
        }
    }

    /// The row's model inputs, or why they cannot be read.
    public func inputs(_ fields: [String: JSONValue]) -> Result<[String: JSONValue], RowReadError> {
        var row: [String: JSONValue] = [:]
        for (info, mapping) in inputs {
            switch mapping {
            case .column(let column):
                guard let value = fields[column] else {
                    return .failure(RowReadError(message: "column '\(column)' (input '\(info.name)') is missing"))
                }
                switch convert(value, type: info.elementType, vectorAllowed: true) {
                case .success(let v): row[info.name] = v
                case .failure(let problem):
                    return .failure(
                        RowReadError(message: "column '\(column)' (input '\(info.name)'): \(problem.message)"))
                }
            case .columns(let columns):
                var values: [JSONValue] = []
                values.reserveCapacity(columns.count)
                for column in columns {
                    guard let value = fields[column] else {
                        return .failure(RowReadError(message: "column '\(column)' (input '\(info.name)') is missing"))
                    }
                    switch convert(value, type: info.elementType, vectorAllowed: false) {
                    case .success(let v): values.append(v)
                    case .failure(let problem):
                        return .failure(
                            RowReadError(message: "column '\(column)' (input '\(info.name)'): \(problem.message)"))
                    }
                }
                row[info.name] = .array(values)
            }
        }
        return .success(row)
    }

    /// Converts a cell to a value of `type`: text is parsed as a number (or a JSON array for a vector).
    private func convert(_ value: JSONValue, type: ElementType, vectorAllowed: Bool) -> Result<JSONValue, RowReadError>
    {
        // An empty cell in a floating-point input is a missing value (NaN, as tree models expect).
        let missing: Result<JSONValue, RowReadError> =
            type == .float || type == .double ? .success(.null) : .failure(RowReadError(message: "is empty"))
        guard case .string(let text) = value else {
            if case .null = value { return missing }
            return .success(value)
        }
        if type == .string { return .success(value) }
        let trimmed = text.trimmingSpaces()
        if trimmed.isEmpty || trimmed.lowercased() == "nan" { return missing }
        if trimmed.first == "[" {
            guard vectorAllowed else { return .failure(RowReadError(message: "must be a single value")) }
            do { return .success(try JSONValue.parse(Array(trimmed.utf8))) } catch {
                return .failure(RowReadError(message: "is not a valid JSON array: \(error.message)"))
            }
        }
        if type == .bool {
            switch trimmed.lowercased() {
            case "true", "1": return .success(.bool(true))
            case "false", "0": return .success(.bool(false))
            default: return .failure(RowReadError(message: "'\(trimmed)' is not true or false"))
            }
        }
        if let i = Int64(trimmed) { return .success(.integer(i)) }
        if let d = Double(trimmed), d.isFinite { return .success(.number(d)) }
        return .failure(RowReadError(message: "'\(trimmed.prefix(40))' is not a number"))
    }
}

extension String {
    fileprivate func trimmingSpaces() -> Substring {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s.removeLast() }
        return s
    }
}
