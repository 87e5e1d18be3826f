public import FreshlineJSON

/// A model input that a feature takes from another feature's published snapshot instead of from the request —
/// a candidate set, an embedding, a precomputed entity feature such as a user's risk score — with its own
/// freshness limit and missing-key policy (`compose:` in the manifest). This is the hybrid pattern: batch
/// precomputes the expensive part, the real-time model composes it with request-time signals.
public struct ComposedInput: Sendable, Equatable {
    /// What to do when the snapshot lacks the key, or holds it older than `maxStaleness`.
    public enum OnMissing: Sendable, Equatable {
        /// Refuse the request: 404 `unknown_key` (missing) or 503 `stale` (too old).
        case error
        /// Use this value (reported with `source: default`).
        case defaultValue(JSONValue)
    }

    /// The model input it fills.
    public var input: String
    /// The feature whose snapshot holds the values.
    public var feature: String
    /// That feature's output to take.
    public var output: String
    /// The request input that holds the other feature's key; `nil`: the request's own key.
    public var keyInput: String?
    /// The oldest value accepted; `nil`: the source feature's `max_staleness` (if any).
    public var maxStaleness: Duration?
    public var onMissing: OnMissing
    /// Where it is declared.
    public var location: SourceLocation

    public init(
        input: String, feature: String, output: String, keyInput: String? = nil, maxStaleness: Duration? = nil,
        onMissing: OnMissing = .error, location: SourceLocation
    ) {
        self.input = input
        self.feature = feature
        self.output = output
        self.keyInput = keyInput
        self.maxStaleness = maxStaleness
        self.onMissing = onMissing
        self.location = location
    }
}

/// Where one composed input's value came from, reported with the answer.
public struct InputProvenance: Sendable, Equatable {
    /// The source feature.
    public var feature: String
    /// The key looked up.
    public var key: String
    /// `batch` (from the snapshot) or `default` (the missing-key policy's value).
    public var source: PredictionSource
    /// The snapshot label (`v3`), for batch values.
    public var snapshot: String?
    /// When the value was computed (the snapshot's input time), for batch values.
    public var computedAt: Double?
    public var ageSeconds: Double?
    /// Set when the snapshot held the key but older than the limit (the default stood in).
    public var stale: Bool

    public init(
        feature: String, key: String, source: PredictionSource, snapshot: String? = nil, computedAt: Double? = nil,
        ageSeconds: Double? = nil, stale: Bool = false
    ) {
        self.feature = feature
        self.key = key
        self.source = source
        self.snapshot = snapshot
        self.computedAt = computedAt
        self.ageSeconds = ageSeconds
        self.stale = stale
    }
}

public enum Composition {
    /// A cycle among the features' compositions (`a → b → a`), or `nil`. Iterative depth-first search.
    public static func cycle(in features: [String: FeatureSpec]) -> [String]? {
        var state: [String: Int] = [:]  // 1: on the path, 2: done
        for start in features.keys.sorted() where state[start] == nil {
            var path: [String] = [start]
            var next: [[String]] = [dependencies(of: start, features)]
            state[start] = 1
            while !next.isEmpty {
                if var pending = next.last, let dependency = pending.popLast() {
                    next[next.count - 1] = pending
                    switch state[dependency] {
                    case 1?:
                        let from = path.firstIndex(of: dependency)!
                        return Array(path[from...]) + [dependency]
                    case 2?: continue
                    default:
                        guard features[dependency] != nil else { continue }
                        state[dependency] = 1
                        path.append(dependency)
                        next.append(dependencies(of: dependency, features))
                    }
                } else {
                    state[path.removeLast()] = 2
                    next.removeLast()
                }
            }
        }
        return nil
    }

    /// The features in an order where each comes after those it composes from (cycles must be excluded first).
    public static func order(_ features: [String: FeatureSpec]) -> [String] {
        var done = Set<String>()
        var result: [String] = []
        func visit(_ name: String) {
            guard !done.contains(name), features[name] != nil else { return }
            done.insert(name)
            for dependency in dependencies(of: name, features) { visit(dependency) }
            result.append(name)
        }
        for name in features.keys.sorted() { visit(name) }
        return result
    }

    static func dependencies(of name: String, _ features: [String: FeatureSpec]) -> [String] {
        (features[name]?.compose ?? []).map(\.feature).sorted().reversed()
    }
}
