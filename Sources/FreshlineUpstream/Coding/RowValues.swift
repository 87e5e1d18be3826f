internal import FreshlineEngine
internal import FreshlineJSON

/// A row's slice of the batch tensors, as JSON: what a template renders and a per-row call sends.
enum RowValues {
    /// Row `row` of `tensor` (whose first dimension is the row count): a scalar when a row has one element and its
    /// per-row shape is `[]` or all ones, otherwise a nested array of the per-row shape.
    static func value(_ tensor: Tensor, row: Int) -> JSONValue {
        let rows = tensor.shape.first ?? 1
        let perRow = rows > 0 ? tensor.count / rows : 0
        let rowShape = Array(tensor.shape.dropFirst())
        let elements = (row * perRow..<(row * perRow + perRow)).map { element(tensor.data, $0) }
        if elements.count == 1, rowShape.allSatisfy({ $0 == 1 }) { return elements[0] }
        return nest(elements[...], shape: rowShape[...])
    }

    /// The values of every named feed for row `row`.
    static func row(_ feeds: [String: Tensor], row: Int) -> [String: JSONValue] {
        feeds.mapValues { value($0, row: $0.rank == 0 ? 0 : row) }
    }

    /// One element as JSON. A float is widened through its shortest decimal text, so `0.1` renders as `0.1` and not
    /// as the `0.10000000149011612` its exact double value would print; non-finite numbers become `null`.
    static func element(_ data: TensorData, _ i: Int) -> JSONValue {
        switch data {
        case .float(let v): v[i].isFinite ? .number(Double(v[i].description) ?? Double(v[i])) : .null
        case .double(let v): v[i].isFinite ? .number(v[i]) : .null
        case .int64(let v): .integer(v[i])
        case .int32(let v): .integer(Int64(v[i]))
        case .int8(let v): .integer(Int64(v[i]))
        case .uint8(let v): .integer(Int64(v[i]))
        case .bool(let v): .bool(v[i])
        case .string(let v): .string(v[i])
        }
    }

    private static func nest(_ values: ArraySlice<JSONValue>, shape: ArraySlice<Int>) -> JSONValue {
        guard let first = shape.first else { return values.first ?? .null }
        let inner = shape.dropFirst().reduce(1, *)
        var items: [JSONValue] = []
        var start = values.startIndex
        for _ in 0..<first {
            items.append(nest(values[start..<(start + inner)], shape: shape.dropFirst()))
            start += inner
        }
        return .array(items)
    }
}
