internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON

/// A named output read from each row's JSON answer (`http`) or structured content (`openai`).
struct OutputField: Sendable, Equatable {
    var name: String
    var pointer: JSONPointer
    /// The declared type; `nil` for a JSON-schema property that is an object or an array, carried as its JSON text.
    var type: UpstreamSpec.ValueType?

    /// The engine's description of the output: one value per row (`[-1]`), or a vector per row (`[-1, -1]`, its
    /// length known from the first answer).
    var info: ModelMetadata.ValueInfo {
        ModelMetadata.ValueInfo(
            name: name, type: .tensor(Self.elementType(type), shape: type == .floatVector ? [-1, -1] : [-1]))
    }

    static func elementType(_ type: UpstreamSpec.ValueType?) -> ElementType {
        switch type {
        case .string?, nil: .string
        case .float?, .floatVector?: .float
        case .double?: .double
        case .int64?: .int64
        case .bool?: .bool
        }
    }

    /// The field's value in `document`, checked against its type; a message naming the pointer when it is missing
    /// or of another type.
    func value(in document: JSONValue) -> Result<JSONValue, MalformedAnswer> {
        guard let value = pointer.resolve(in: document) else { return .failure("expected \(pointerText)") }
        let ok: Bool
        switch (type, value) {
        case (nil, _):
            return .success(value.isString ? value : .string(String(decoding: value.serialized(), as: UTF8.self)))
        case (.string?, .string): ok = true
        case (.float?, .integer), (.float?, .number), (.double?, .integer), (.double?, .number): ok = true
        case (.int64?, .integer): ok = true
        case (.int64?, .number(let d)): ok = d == d.rounded() && abs(d) < 9.2e18
        case (.bool?, .bool): ok = true
        case (.floatVector?, .array(let items)):
            ok = items.allSatisfy { if case .integer = $0 { true } else if case .number = $0 { true } else { false } }
        default: ok = false
        }
        guard ok else { return .failure("expected \(pointerText) to be \(type.map { $0.rawValue } ?? "JSON")") }
        return .success(value)
    }

    private var pointerText: String { pointer.description.isEmpty ? "the answer itself" : pointer.description }
}

extension JSONValue {
    fileprivate var isString: Bool { if case .string = self { true } else { false } }
}

/// Builds one tensor per output field from the rows' checked values (as `OutputField.value` returned them).
enum OutputColumns {
    /// The tensors, first dimension the row count; a vector field's rows must all have the same length.
    static func tensors(_ fields: [OutputField], rows: [[JSONValue]]) -> Result<[String: Value], MalformedAnswer> {
        var result: [String: Value] = [:]
        for (column, field) in fields.enumerated() {
            let values = rows.map { $0[column] }
            let tensor: Tensor?
            switch field.type {
            case .string?, nil:
                tensor = try? Tensor(
                    shape: [values.count], strings: values.map { if case .string(let s) = $0 { s } else { "" } })
            case .float?:
                tensor = try? Tensor(shape: [values.count], floats: values.map { Float($0.doubleValue ?? .nan) })
            case .double?:
                tensor = try? Tensor(shape: [values.count], doubles: values.map { $0.doubleValue ?? .nan })
            case .int64?:
                tensor = try? Tensor(
                    shape: [values.count],
                    int64s: values.map {
                        switch $0 {
                        case .integer(let i): i
                        case .number(let d): Int64(d)
                        default: 0
                        }
                    })
            case .bool?:
                tensor = try? Tensor(shape: [values.count], data: .bool(values.map { $0 == .bool(true) }))
            case .floatVector?:
                var flat: [Float] = []
                var width: Int?
                for value in values {
                    guard case .array(let items) = value else {
                        return .failure("expected \(field.name) to be a vector")
                    }
                    if let width, width != items.count {
                        return .failure("\(field.name) has vectors of lengths \(width) and \(items.count)")
                    }
                    width = items.count
                    flat.append(contentsOf: items.map { Float($0.doubleValue ?? .nan) })
                }
                tensor = try? Tensor(shape: [values.count, width ?? 0], floats: flat)
            }
            guard let tensor else { return .failure("\(field.name) is too large") }
            result[field.name] = .tensor(tensor)
        }
        return .success(result)
    }
}
