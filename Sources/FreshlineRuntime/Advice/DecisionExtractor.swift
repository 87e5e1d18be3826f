public import FreshlineCore
internal import FreshlineEngine
public import FreshlineJSON

/// Reduces a feature's answer to its decision (`DecisionValue`) for the advisor's shadow comparisons, following
/// the feature's `advice.decision` settings, and hashes request inputs so that the advisor can tell which of
/// them change per key.
public struct DecisionExtractor: Sendable {
    let spec: DecisionSpec
    /// The output that carries the decision.
    let output: String?

    /// `outputs`: the names the feature serves, in the model's order.
    public init(spec: DecisionSpec, outputs: [String]) {
        self.spec = spec
        output = spec.output ?? (outputs.contains("label") ? "label" : outputs.first)
    }

    /// The decision in `outputs`, or `nil` when the output is missing or of no comparable shape.
    public func decision(_ outputs: [String: JSONValue]) -> DecisionValue? {
        guard let output, let value = outputs[output] else { return nil }
        return Self.decision(value, spec: spec)
    }

    static func decision(_ value: JSONValue, spec: DecisionSpec) -> DecisionValue? {
        switch value {
        case .string(let s): return .label(s)
        case .bool(let b): return .label(b ? "true" : "false")
        case .integer(let i):
            if spec.kind == .score { return .score([Double(i)]) }
            return .label(String(i))
        case .number(let d):
            if spec.kind == .label || spec.threshold != nil { return .label(d >= (spec.threshold ?? 0.5) ? "1" : "0") }
            return .score([d])
        case .array(let items):
            let flat = flatten(items)
            if spec.kind == .ranking || (spec.kind == nil && flat.allSatisfy(isIdentifier) && flat.count > 1) {
                return .ranking(flat.prefix(max(1, spec.topK)).map(text))
            }
            let numbers = flat.compactMap(\.doubleValue)
            guard numbers.count == flat.count, !numbers.isEmpty else {
                return flat.count == 1 ? decision(flat[0], spec: spec) : nil
            }
            if spec.kind == .label || spec.threshold != nil {
                // A probability vector: the positive class is the last element.
                return .label(numbers.last! >= (spec.threshold ?? 0.5) ? "1" : "0")
            }
            return .score(numbers)
        case .object(let map):
            // ZipMap probabilities {class: p}: the most probable class is the label.
            let scored = map.compactMap { k, v in v.doubleValue.map { (k, $0) } }
            guard let best = scored.max(by: { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 > $1.0) }) else { return nil }
            return .label(best.0)
        case .null: return nil
        }
    }

    private static func flatten(_ items: [JSONValue]) -> [JSONValue] {
        items.flatMap { item -> [JSONValue] in
            if case .array(let inner) = item { return flatten(inner) }
            return [item]
        }
    }

    private static func isIdentifier(_ v: JSONValue) -> Bool {
        switch v {
        case .integer, .string: true
        default: false
        }
    }

    private static func text(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): s
        case .integer(let i): String(i)
        default: "\(v)"
        }
    }

    /// A 64-bit hash of each input's value (its JSON text).
    public static func inputHashes(_ inputs: [String: JSONValue], excluding key: String?) -> [String: UInt64] {
        var result: [String: UInt64] = [:]
        var bytes: [UInt8] = []
        for (name, value) in inputs where name != key {
            bytes.removeAll(keepingCapacity: true)
            value.write(into: &bytes)
            result[name] = KeyHash.value(bytes: bytes)
        }
        return result
    }
}
