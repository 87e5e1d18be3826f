public import FreshlineEngine

/// Compares engine outputs with reference values and says what differs.
public enum TensorComparison {
    /// `nil` when `actual` matches `expected`: same shape and type; exact for integers, strings and booleans,
    /// within `tolerance` for floating point. Otherwise a description of the first difference.
    public static func difference(_ actual: Tensor, _ expected: Tensor, tolerance: Tolerance) -> String? {
        guard actual.shape == expected.shape else { return "shape \(actual.shape), expected \(expected.shape)" }
        guard actual.elementType == expected.elementType else {
            return "type \(actual.elementType), expected \(expected.elementType)"
        }
        switch (actual.data, expected.data) {
        case (.string(let a), .string(let e)):
            if let i = a.indices.first(where: { a[$0] != e[$0] }) {
                return "element \(i): '\(a[i])', expected '\(e[i])'"
            }
            return nil
        default:
            let a = actual.doubleValues, e = expected.doubleValues
            let exact = !actual.elementType.isFloatingPoint
            for i in 0..<a.count {
                let ok = exact ? a[i] == e[i] : tolerance.accepts(a[i], e[i])
                if !ok { return "element \(i): \(a[i]), expected \(e[i])" }
            }
            return nil
        }
    }
}
