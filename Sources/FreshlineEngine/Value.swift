/// A value flowing through a graph: a tensor, or the sequence of maps that ZipMap produces.
public enum Value: Sendable, Equatable {
    case tensor(Tensor)
    case mapSequence(MapSequence)

    /// The tensor, or `nil` for a map sequence.
    public var tensor: Tensor? { if case .tensor(let t) = self { t } else { nil } }
}

/// ZipMap's output: one map per row from class label to score, stored as a shared key list and a
/// rows × keys matrix of values.
public struct MapSequence: Sendable, Equatable {
    /// The map keys: class labels as integers or strings.
    public enum Keys: Sendable, Equatable {
        case int64([Int64])
        case string([String])

        /// The number of keys.
        public var count: Int {
            switch self {
            case .int64(let k): k.count
            case .string(let k): k.count
            }
        }
        /// Key `i` as text (JSON object keys are strings).
        public func text(_ i: Int) -> String {
            switch self {
            case .int64(let k): String(k[i])
            case .string(let k): k[i]
            }
        }
    }
    /// The keys shared by every map.
    public var keys: Keys
    /// Row-major values: `values[row * keys.count + k]` belongs to key `k` of row `row`.
    public var values: [Float]

    /// The number of maps (rows).
    public var count: Int { keys.count == 0 ? 0 : values.count / keys.count }
}
