internal import Foundation
public import FreshlineCore
internal import Yams

/// Reads the feature map of `freshline advise --feature-map FILE` (YAML). Unknown keys are errors; every mistake
/// is reported as `FILE:LINE: key.path: message` (the first one found).
///
/// ```yaml
/// window: 7d                 # optional (duration; --window wins; default the manifest's advisor.window, 7d)
/// step: 1h                   # optional: the peak's interval (default: 1h, 5m, 1m or 10s, ≥ 12 per window)
/// features:
///   checkout_risk:
///     prometheus:            # where its traffic is (PromQL selectors: a metric name and label matchers)
///       requests: 'http_requests_total{job="risk"}'                 # counter of every request (required)
///       errors: 'http_requests_total{job="risk",status=~"5.."}'     # counter of failed requests
///       timeouts: 'risk_timeouts_total'                             # optional
///       shed: 'risk_shed_total'                                     # optional
///       latency: 'http_request_duration_seconds_bucket{job="risk"}' # histogram buckets (`_bucket`)
///       latency_unit: seconds                                       # seconds (default) or ms
///       cpu_seconds: 'process_cpu_seconds_total{job="risk"}'        # optional: CPU per answer
///     requests_file: risk.jsonl      # optional: answers (JSON Lines or CSV), relative to this file
///     pattern: realtime              # current pattern (default realtime)
///     latency_budget: 100ms          # default 100ms
///     user_blocking: true            # default true
///     max_staleness: 1h              # optional
///     refresh: 24h                   # optional: the batch interval it would run at (rule 2's age)
///     ms_per_prediction: 4           # optional: model compute at batch 1
///     batch_ms_per_prediction: 1     # optional (default a fifth of ms_per_prediction)
///     entities: 50000                # optional: rows a batch run computes
///     unbounded_input: false         # optional (without a requests file; default false)
///     failure_mode: fail closed      # optional, in words
///     decision: {kind: label, threshold: 0.5, top_k: 10, tolerance: 0.1}   # optional, for the requests file
/// ```
public enum FeatureMapLoader {
    static let topKeys: Set<String> = ["window", "step", "features"]
    static let featureKeys: Set<String> = [
        "prometheus", "requests_file", "pattern", "latency_budget", "user_blocking", "max_staleness", "refresh",
        "ms_per_prediction", "batch_ms_per_prediction", "entities", "unbounded_input", "failure_mode", "decision",
    ]
    static let metricKeys: Set<String> = [
        "requests", "errors", "timeouts", "shed", "latency", "latency_unit", "cpu_seconds",
    ]
    static let decisionKeys: Set<String> = ["kind", "threshold", "top_k", "tolerance"]

    /// Reads the map at `path`.
    public static func load(path: String) throws(FeatureMap.ParseError) -> FeatureMap {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FeatureMap.ParseError(file: path, line: 0, keyPath: "(file)", message: "cannot read the file")
        }
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    /// Parses map text; `path` names it in messages.
    public static func parse(_ text: String, path: String) throws(FeatureMap.ParseError) -> FeatureMap {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw FeatureMap.ParseError(file: path, line: 1, keyPath: "(document)", message: "the map is empty")
            }
            root = node
        } catch let error as FeatureMap.ParseError {
            throw error
        } catch let error as YamlError {
            var line = 1
            switch error {
            case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): line = mark.line
            default: break
            }
            throw FeatureMap.ParseError(file: path, line: line, keyPath: "(syntax)", message: "not valid YAML")
        } catch {
            throw FeatureMap.ParseError(file: path, line: 1, keyPath: "(syntax)", message: "not valid YAML")
        }
        let reader = MapReader(file: path)
        return try reader.map(root)
    }

    /// Whether `text` is a PromQL selector: a metric name, optionally with label matchers in braces (no functions,
    /// ranges or operators: the advisor writes the queries around it).
    static func isSelector(_ text: String) -> Bool {
        let chars = Array(text.unicodeScalars)
        var i = 0
        func nameChar(_ c: Unicode.Scalar, first: Bool) -> Bool {
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "_" || c == ":" || (!first && c >= "0" && c <= "9")
        }
        while i < chars.count, nameChar(chars[i], first: i == 0) { i += 1 }
        guard i > 0 else { return false }
        if i == chars.count { return true }
        guard chars[i] == "{", chars.last == "}" else { return false }
        // Inside the braces: no unquoted braces (quoted strings may hold anything but an unescaped quote).
        var quoted = false
        var escaped = false
        for c in chars[(i + 1)..<(chars.count - 1)] {
            if quoted {
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { quoted = false }
            } else if c == "\"" {
                quoted = true
            } else if c == "{" || c == "}" || c == "[" || c == "]" || c == "(" || c == ")" {
                return false
            }
        }
        return !quoted
    }
}

/// Walks the map's YAML tree.
private struct MapReader {
    let file: String

    func fail(_ node: Node, _ keyPath: String, _ message: String) -> FeatureMap.ParseError {
        FeatureMap.ParseError(file: file, line: node.mark?.line ?? 0, keyPath: keyPath, message: message)
    }

    func entries(_ node: Node, _ keyPath: String, allowed: Set<String>?) throws(FeatureMap.ParseError) -> [(
        key: String, line: Int, value: Node
    )] {
        guard case .mapping(let mapping) = node else {
            throw fail(node, keyPath, "must be a mapping of keys to values")
        }
        var seen: Set<String> = []
        var result: [(String, Int, Node)] = []
        for (k, v) in mapping {
            guard let key = k.string, !key.isEmpty else { throw fail(k, keyPath, "keys must be strings") }
            let path = keyPath.isEmpty ? key : "\(keyPath).\(key)"
            guard seen.insert(key).inserted else { throw fail(k, path, "is given twice") }
            if let allowed, !allowed.contains(key) {
                throw fail(k, path, "unknown key (expected one of: \(allowed.sorted().joined(separator: ", ")))")
            }
            result.append((key, k.mark?.line ?? 0, v))
        }
        return result
    }

    func string(_ node: Node, _ keyPath: String) throws(FeatureMap.ParseError) -> String {
        guard case .scalar(let s) = node, !s.string.isEmpty else {
            throw fail(node, keyPath, "must be a non-empty string")
        }
        return s.string
    }

    func selector(_ node: Node, _ keyPath: String) throws(FeatureMap.ParseError) -> String {
        let text = try string(node, keyPath).trimmingCharacters(in: .whitespaces)
        guard FeatureMapLoader.isSelector(text) else {
            throw fail(node, keyPath, "'\(text)' is not a selector (a metric name with optional {label matchers})")
        }
        return text
    }

    func number(_ node: Node, _ keyPath: String, range: ClosedRange<Double>) throws(FeatureMap.ParseError) -> Double {
        guard let v = node.float ?? node.int.map(Double.init), v.isFinite, range.contains(v) else {
            throw fail(
                node, keyPath,
                "must be a number from \(CostModel.format(range.lowerBound)) to \(CostModel.format(range.upperBound))")
        }
        return v
    }

    func bool(_ node: Node, _ keyPath: String) throws(FeatureMap.ParseError) -> Bool {
        guard let v = node.bool else { throw fail(node, keyPath, "must be true or false") }
        return v
    }

    func duration(_ node: Node, _ keyPath: String) throws(FeatureMap.ParseError) -> Double {
        guard let text = node.string, let d = DurationText.parse(text), d > .zero else {
            throw fail(node, keyPath, "must be a duration above 0 such as 250ms, 2s, 5m, 6h or 7d")
        }
        return d.seconds
    }

    func map(_ root: Node) throws(FeatureMap.ParseError) -> FeatureMap {
        var map = FeatureMap(path: file)
        var sawFeatures = false
        for (key, _, value) in try entries(root, "", allowed: FeatureMapLoader.topKeys) {
            switch key {
            case "window": map.windowSeconds = try duration(value, key)
            case "step": map.stepSeconds = try duration(value, key)
            default:
                sawFeatures = true
                for (name, line, node) in try entries(value, "features", allowed: nil) {
                    map.features.append(try feature(name, line: line, node))
                }
            }
        }
        guard sawFeatures, !map.features.isEmpty else {
            throw fail(root, "features", "is required: at least one feature")
        }
        return map
    }

    func feature(_ name: String, line: Int, _ node: Node) throws(FeatureMap.ParseError) -> FeatureMap.Entry {
        let base = "features.\(name)"
        var entry = FeatureMap.Entry(name: name, line: line)
        for (key, _, value) in try entries(node, base, allowed: FeatureMapLoader.featureKeys) {
            let path = "\(base).\(key)"
            switch key {
            case "prometheus": entry.metrics = try metrics(value, path)
            case "requests_file": entry.requestsFile = try string(value, path)
            case "pattern":
                let text = try string(value, path)
                guard let p = ServingPattern(rawValue: text) else {
                    throw fail(value, path, "'\(text)' is not one of realtime, async, batch, hybrid")
                }
                entry.pattern = p
            case "latency_budget": entry.latencyBudgetSeconds = try duration(value, path)
            case "user_blocking": entry.userBlocking = try bool(value, path)
            case "max_staleness": entry.maxStalenessSeconds = try duration(value, path)
            case "refresh": entry.refreshSeconds = try duration(value, path)
            case "ms_per_prediction": entry.msPerPrediction = try number(value, path, range: 0...3_600_000)
            case "batch_ms_per_prediction": entry.batchMsPerPrediction = try number(value, path, range: 0...3_600_000)
            case "entities": entry.entities = try number(value, path, range: 1...1e12)
            case "unbounded_input": entry.unboundedInput = try bool(value, path)
            case "failure_mode": entry.failureMode = try string(value, path)
            default: entry.decision = try decision(value, path)
            }
        }
        guard entry.metrics != nil || entry.requestsFile != nil else {
            throw fail(node, base, "needs prometheus (where its traffic is) or requests_file, or both")
        }
        return entry
    }

    func metrics(_ node: Node, _ keyPath: String) throws(FeatureMap.ParseError) -> FeatureMap.Metrics {
        let fields = try entries(node, keyPath, allowed: FeatureMapLoader.metricKeys)
        guard let requests = fields.first(where: { $0.key == "requests" }) else {
            throw fail(node, "\(keyPath).requests", "is required: the counter of every request")
        }
        var m = FeatureMap.Metrics(requests: try selector(requests.value, "\(keyPath).requests"))
        for (key, _, value) in fields {
            let path = "\(keyPath).\(key)"
            switch key {
            case "errors": m.errors = try selector(value, path)
            case "timeouts": m.timeouts = try selector(value, path)
            case "shed": m.shed = try selector(value, path)
            case "latency":
                let s = try selector(value, path)
                guard s.prefix(while: { $0 != "{" }).hasSuffix("_bucket") else {
                    throw fail(value, path, "'\(s)' is not a histogram's _bucket series")
                }
                m.latencyBuckets = s
            case "latency_unit":
                switch try string(value, path) {
                case "seconds", "s": m.latencyUnitSeconds = 1
                case "ms", "milliseconds": m.latencyUnitSeconds = 0.001
                case let other: throw fail(value, path, "'\(other)' is not seconds or ms")
                }
            case "cpu_seconds": m.cpuSeconds = try selector(value, path)
            default: break
            }
        }
        return m
    }

    func decision(_ node: Node, _ keyPath: String) throws(FeatureMap.ParseError) -> DecisionSpec {
        var spec = DecisionSpec()
        for (key, _, value) in try entries(node, keyPath, allowed: FeatureMapLoader.decisionKeys) {
            let path = "\(keyPath).\(key)"
            switch key {
            case "kind":
                let text = try string(value, path)
                guard let kind = DecisionKind(rawValue: text) else {
                    throw fail(value, path, "'\(text)' is not one of label, ranking, score")
                }
                spec.kind = kind
            case "threshold": spec.threshold = try number(value, path, range: -1e12...1e12)
            case "top_k": spec.topK = Int(try number(value, path, range: 1...1_000))
            default: spec.tolerance = try number(value, path, range: 0...1_000)
            }
        }
        return spec
    }
}
