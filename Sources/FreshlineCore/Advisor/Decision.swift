/// What a feature's answer decides, for the advisor's decision-freshness axis: two answers for the same key
/// computed at different times are compared as labels (a flip), rankings (top-k overlap) or scores (relative
/// error).
public enum DecisionKind: String, Sendable, Codable, CaseIterable {
    /// A class label; a change is a flip. Numeric outputs become labels at the feature's decision threshold.
    case label
    /// An ordered list of items (ids); the change is the share of the top k that differs.
    case ranking
    /// A number or vector; a change is a relative error above the tolerance.
    case score
}

/// A feature's `advice.decision` settings: which output is the decision and how two of them compare.
public struct DecisionSpec: Sendable, Equatable {
    /// The output that carries the decision (default: `label` when the model has it, else the first output).
    public var output: String?
    /// How to compare (default: from the output's type — strings and integer scalars are labels, integer vectors
    /// rankings, floats scores; a declared `threshold` makes a float a label).
    public var kind: DecisionKind?
    /// The decision threshold for numeric outputs read as labels (positive when `value ≥ threshold`; for a
    /// vector, its last element — the positive class's probability).
    public var threshold: Double?
    /// How many leading items of a ranking count (default 10).
    public var topK: Int
    /// The relative error above which a score counts as changed (default 0.1).
    public var tolerance: Double

    public init(
        output: String? = nil, kind: DecisionKind? = nil, threshold: Double? = nil, topK: Int = 10,
        tolerance: Double = 0.1
    ) {
        self.output = output
        self.kind = kind
        self.threshold = threshold
        self.topK = topK
        self.tolerance = tolerance
    }
}

/// A feature's `advice.keys`: the entity set a batch would enumerate (for features without a batch section),
/// so that the advisor measures predictability against it instead of against earlier traffic.
public struct AdviceKeys: Sendable, Equatable {
    public var source: BatchSpec.Source
    public var keyColumn: String

    public init(source: BatchSpec.Source, keyColumn: String) {
        self.source = source
        self.keyColumn = keyColumn
    }
}

/// One answer's decision, reduced to what the comparison needs.
public enum DecisionValue: Sendable, Equatable {
    case label(String)
    case ranking([String])
    case score([Double])

    /// A compact text form for the request log: `L<label>`, `R<item>\u{1F}<item>…`, `S<number>,<number>…`.
    public var encoded: String {
        switch self {
        case .label(let label): "L" + label
        case .ranking(let items): "R" + items.joined(separator: "\u{1F}")
        case .score(let values): "S" + values.map { "\($0)" }.joined(separator: ",")
        }
    }

    /// Reads `encoded`; `nil` for anything else.
    public init?(encoded text: String) {
        guard let tag = text.first else { return nil }
        let body = text.dropFirst()
        switch tag {
        case "L": self = .label(String(body))
        case "R":
            self = .ranking(
                body.isEmpty ? [] : body.split(separator: "\u{1F}", omittingEmptySubsequences: false).map(String.init))
        case "S":
            var values: [Double] = []
            for part in body.split(separator: ",") {
                guard let v = Double(part) else { return nil }
                values.append(v)
            }
            self = .score(values)
        default: return nil
        }
    }

    /// How much the decision changed from `old` to `self`: 0 or 1 for labels and scores (relative error above
    /// `tolerance`), the share of the top `k` items not shared for rankings. `relativeError` is set for scores.
    /// Scores are compared relative to the larger of the old value's norm and `scale` (half the typical norm),
    /// so that a score near zero does not make every small move a change.
    public func change(from old: DecisionValue, topK k: Int, tolerance: Double, scale: Double = 0) -> (
        change: Double, relativeError: Double?
    ) {
        switch (old, self) {
        case (.label(let a), .label(let b)):
            return (a == b ? 0 : 1, nil)
        case (.ranking(let a), .ranking(let b)):
            let n = min(k, max(a.count, b.count))
            guard n > 0 else { return (0, nil) }
            let shared = Set(a.prefix(n)).intersection(b.prefix(n)).count
            return (1 - Double(shared) / Double(n), nil)
        case (.score(let a), .score(let b)):
            guard a.count == b.count else { return (1, nil) }
            var difference = 0.0
            var norm = 0.0
            for (x, y) in zip(a, b) {
                difference += (y - x) * (y - x)
                norm += x * x
            }
            let error = difference == 0 ? 0 : difference.squareRoot() / max(norm.squareRoot(), scale, 1e-12)
            return (error > tolerance ? 1 : 0, error)
        default:
            return (1, nil)  // the output changed kind: a model change, counted as a change
        }
    }
}
