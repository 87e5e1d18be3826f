internal import Foundation
public import FreshlineCore
internal import FreshlineJSON
internal import Yams

/// Reads a manifest file (YAML) into a `Manifest`, collecting every problem with its file, line and key.
///
/// The keys, their types and defaults are documented in `docs/manifest.md`; unknown keys are errors, so a
/// typo never silently falls back to a default.
public enum ManifestLoader {
    /// Parses the manifest at `path`. Throws `ManifestErrors` listing every problem found, among them every secret
    /// (`token_env`, `server.webhooks.secret_env`) whose environment variable is unset: what serves needs them.
    public static func load(path: String) throws -> Manifest {
        try parse(try contents(path), path: path)
    }

    /// Parses the manifest at `path` as `freshline check` does, without needing production secrets: a secret whose
    /// environment variable is unset (`token_env`, `server.webhooks.secret_env`) is returned among `unsetSecrets`
    /// instead of failing the load (its token is left out, the webhooks have no secret). Every other problem throws
    /// `ManifestErrors` as `load(path:)` does.
    ///
    /// - Parameter environment: where the variables are looked up (the process's by default).
    public static func loadWithoutSecrets(path: String, environment: [String: String]? = nil) throws -> (
        manifest: Manifest, unsetSecrets: [ManifestError]
    ) {
        try read(try contents(path), path: path, environment: environment, defersSecrets: true)
    }

    private static func contents(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ManifestErrors([
                ManifestError(SourceLocation(file: path, line: 0, keyPath: "(file)"), "cannot read the file")
            ])
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Parses manifest text; `path` is used in messages. A secret whose environment variable (looked up in
    /// `environment`, the process's by default) is unset is an error.
    public static func parse(_ text: String, path: String, environment: [String: String]? = nil) throws -> Manifest {
        try read(text, path: path, environment: environment, defersSecrets: false).manifest
    }

    /// Parses manifest text. With `defersSecrets`, a secret whose variable is unset is returned among
    /// `unsetSecrets` instead of failing the parse.
    private static func read(_ text: String, path: String, environment: [String: String]?, defersSecrets: Bool) throws
        -> (manifest: Manifest, unsetSecrets: [ManifestError])
    {
        var reader = Reader(
            file: path, environment: environment ?? ProcessInfo.processInfo.environment, defersSecrets: defersSecrets)
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ManifestErrors([
                    ManifestError(SourceLocation(file: path, line: 1, keyPath: "(document)"), "the manifest is empty")
                ])
            }
            root = node
        } catch let error as ManifestErrors {
            throw error
        } catch let error as YamlError {
            throw ManifestErrors([
                ManifestError(
                    SourceLocation(file: path, line: Self.line(of: error), keyPath: "(syntax)"),
                    "not valid YAML: \(Self.problem(of: error))")
            ])
        } catch {
            throw ManifestErrors([
                ManifestError(SourceLocation(file: path, line: 1, keyPath: "(syntax)"), "not valid YAML")
            ])
        }
        let manifest = reader.manifest(root)
        if !reader.errors.isEmpty { throw ManifestErrors(reader.errors) }
        guard let manifest else {
            throw ManifestErrors([ManifestError(reader.location(root, ""), "cannot read the manifest")])
        }
        return (manifest, reader.unsetSecrets)
    }

    private static func line(of error: YamlError) -> Int {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): mark.line
        default: 1
        }
    }

    private static func problem(of error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _): problem
        case .duplicatedKeysInMapping(let duplicates, _): "duplicate keys \(duplicates.joined(separator: ", "))"
        default: "\(error)"
        }
    }
}

/// Walks the YAML tree, converting values and recording errors instead of stopping at the first.
private struct Reader {
    let file: String
    /// The environment `token_env` and `server.webhooks.secret_env` are looked up in.
    let variables: [String: String]
    /// Whether an unset secret variable goes to `unsetSecrets` (`freshline check`) instead of `errors`.
    let defersSecrets: Bool
    var errors: [ManifestError] = []
    var unsetSecrets: [ManifestError] = []

    init(file: String, environment: [String: String], defersSecrets: Bool) {
        self.file = file
        self.variables = environment
        self.defersSecrets = defersSecrets
    }

    func location(_ node: Node, _ keyPath: String) -> SourceLocation {
        SourceLocation(file: file, line: node.mark?.line ?? 0, keyPath: keyPath.isEmpty ? "(root)" : keyPath)
    }

    mutating func fail(_ node: Node, _ keyPath: String, _ message: String) {
        errors.append(ManifestError(location(node, keyPath), message))
    }

    /// The mapping's entries by key, reporting non-string keys, duplicates and keys outside `allowed`.
    mutating func entries(_ node: Node, _ keyPath: String, allowed: Set<String>?) -> [(key: String, value: Node)]? {
        guard case .mapping(let mapping) = node else {
            fail(node, keyPath, "must be a mapping of keys to values")
            return nil
        }
        var seen: Set<String> = []
        var result: [(String, Node)] = []
        for (k, v) in mapping {
            guard let key = k.string else {
                fail(k, keyPath, "keys must be strings")
                continue
            }
            let path = keyPath.isEmpty ? key : "\(keyPath).\(key)"
            if !seen.insert(key).inserted {
                fail(k, path, "is given twice")
                continue
            }
            if let allowed, !allowed.contains(key) {
                fail(k, path, "unknown key (expected one of: \(allowed.sorted().joined(separator: ", ")))")
                continue
            }
            result.append((key, v))
        }
        return result
    }

    mutating func string(_ node: Node, _ keyPath: String) -> String? {
        guard case .scalar(let scalar) = node, !scalar.string.isEmpty else {
            fail(node, keyPath, "must be a non-empty string")
            return nil
        }
        return scalar.string
    }

    mutating func int(_ node: Node, _ keyPath: String, range: ClosedRange<Int>) -> Int? {
        guard let value = node.int, range.contains(value) else {
            fail(node, keyPath, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return value
    }

    mutating func double(_ node: Node, _ keyPath: String, range: ClosedRange<Double>) -> Double? {
        guard let value = node.float ?? node.int.map(Double.init), range.contains(value) else {
            fail(node, keyPath, "must be a number from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return value
    }

    mutating func bool(_ node: Node, _ keyPath: String) -> Bool? {
        guard let value = node.bool else {
            fail(node, keyPath, "must be true or false")
            return nil
        }
        return value
    }

    mutating func duration(_ node: Node, _ keyPath: String) -> Duration? {
        guard let text = node.string, let value = DurationText.parse(text) else {
            fail(node, keyPath, "must be a duration such as 250ms, 2s, 5m, 6h or 7d")
            return nil
        }
        return value
    }

    /// A duration within `range`.
    mutating func durationRange(_ node: Node, _ keyPath: String, _ range: ClosedRange<Duration>) -> Duration? {
        guard let text = node.string, let value = DurationText.parse(text), range.contains(value) else {
            let bounds = "\(DurationText.format(range.lowerBound)) to \(DurationText.format(range.upperBound))"
            fail(node, keyPath, "must be a duration from \(bounds)")
            return nil
        }
        return value
    }

    /// A store call's bound: a duration within `StoreSettings.callTimeoutRange`.
    mutating func callTimeout(_ node: Node, _ keyPath: String) -> Duration? {
        let range = StoreSettings.callTimeoutRange
        guard let text = node.string, let value = DurationText.parse(text), range.contains(value.seconds) else {
            fail(
                node, keyPath,
                "must be a duration from \(DurationText.format(.seconds(range.lowerBound))) to "
                    + "\(DurationText.format(.seconds(range.upperBound)))")
            return nil
        }
        return value
    }

    /// A duration above zero and at most `atMost` seconds.
    mutating func positiveDuration(_ node: Node, _ keyPath: String, atMost seconds: Double) -> Duration? {
        guard let text = node.string, let value = DurationText.parse(text), value > .zero, value.seconds <= seconds
        else {
            fail(node, keyPath, "must be a duration above 0 and at most \(DurationText.format(.seconds(seconds)))")
            return nil
        }
        return value
    }

    /// A YAML value as JSON. Whole numbers become integers (`1` and `1.0` alike, below 10^15), so a default output
    /// or a schema's `minimum: 0` is written as `0`, not `0.0`.
    func json(_ node: Node) -> JSONValue {
        switch node {
        case .scalar(let s):
            if node.null != nil { return .null }
            if let b = node.bool, s.style == .plain { return .bool(b) }
            if let i = node.int, s.style == .plain { return .integer(Int64(i)) }
            if let d = node.float, s.style == .plain {
                return d == d.rounded() && abs(d) < 1e15 ? .integer(Int64(d)) : .number(d)
            }
            return .string(s.string)
        case .sequence(let seq): return .array(seq.map(json))
        case .mapping(let map):
            var object: [String: JSONValue] = [:]
            for (k, v) in map { object[k.string ?? ""] = json(v) }
            return .object(object)
        case .alias: return .null
        }
    }

    mutating func manifest(_ root: Node) -> Manifest? {
        let allowed: Set<String> = [
            "version", "models", "features", "tokens", "pricing", "server", "store", "advisor",
        ]
        guard let top = entries(root, "", allowed: allowed) else { return nil }
        var manifest = Manifest(path: file, models: [:], features: [:])
        var featureNodes: [(String, Node)] = []
        var pricedModels: [(name: String, node: Node)] = []
        for (key, value) in top {
            switch key {
            case "version":
                if value.int != 1 { fail(value, "version", "must be 1") }
            case "models":
                for (name, node) in entries(value, "models", allowed: nil) ?? [] {
                    if let model = model(name, node) { manifest.models[name] = model }
                }
            case "features":
                featureNodes = (entries(value, "features", allowed: nil) ?? []).map { ($0.key, $0.value) }
            case "tokens": manifest.tokens = tokens(value)
            case "pricing": (manifest.pricing, pricedModels) = pricing(value)
            case "server": manifest.server = server(value)
            case "advisor": manifest.advisor = advisor(value)
            case "store":
                if case .mapping = value {
                    for (k, v) in entries(value, "store", allowed: ["location", "call_timeout", "snapshots"]) ?? [] {
                        switch k {
                        case "location":
                            if let s = string(v, "store.location") { manifest.store.location = s }
                        case "snapshots":
                            if let s = string(v, "store.snapshots") { manifest.store.snapshots = s }
                        case "call_timeout":
                            if let d = callTimeout(v, "store.call_timeout") { manifest.store.callTimeout = d }
                        default: break
                        }
                    }
                } else if let s = string(value, "store") {
                    manifest.store.location = s
                }
            default: break
            }
        }
        if top.first(where: { $0.key == "features" }) == nil {
            fail(root, "features", "is required: declare at least one feature")
        }
        for (name, node) in featureNodes {
            if let feature = feature(name, node, models: manifest.models) { manifest.features[name] = feature }
        }
        // Checked once every model is read: `pricing` may come before `models` in the file.
        for (name, node) in pricedModels {
            let path = "pricing.models.\(name)"
            guard let model = manifest.models[name] else {
                fail(
                    node, path,
                    "unknown model '\(name)' (models: \(manifest.models.keys.sorted().joined(separator: ", ")))")
                continue
            }
            if model.upstream == nil {
                fail(
                    node, path,
                    "token prices apply to upstream models; '\(name)' runs here and is priced by engine time")
            }
        }
        return manifest
    }

    mutating func model(_ name: String, _ node: Node) -> ModelSpec? {
        let keyPath = "models.\(name)"
        // `models: {fraud: models/fraud.onnx}` or `models: {fraud: {path: models/fraud.onnx}}`.
        if case .scalar = node {
            guard let path = string(node, keyPath) else { return nil }
            return ModelSpec(name: name, path: path, location: location(node, keyPath))
        }
        // `kind: onnx` (the default) takes a path; the upstream kinds take a URL and their own keys.
        var kind: String?
        if case .mapping(let mapping) = node, let k = mapping["kind"] {
            kind = string(k, "\(keyPath).kind")
            let kinds = ["onnx"] + UpstreamSpec.Kind.allCases.map(\.rawValue)
            if let given = kind, !kinds.contains(given) {
                fail(k, "\(keyPath).kind", "must be one of \(kinds.joined(separator: ", "))")
                return nil
            }
        }
        if let kind, let upstreamKind = UpstreamSpec.Kind(rawValue: kind) {
            guard let upstream = upstream(upstreamKind, node, keyPath) else { return nil }
            return ModelSpec(name: name, upstream: upstream, location: location(node, keyPath))
        }
        var path: String?
        for (k, v) in entries(node, keyPath, allowed: ["path", "kind"]) ?? [] where k == "path" {
            path = string(v, "\(keyPath).path")
        }
        guard let path else {
            fail(node, "\(keyPath).path", "is required")
            return nil
        }
        return ModelSpec(name: name, path: path, location: location(node, keyPath))
    }

    /// An upstream model's entry (`kind: oip | openai | http`); see docs/upstreams.md.
    mutating func upstream(_ kind: UpstreamSpec.Kind, _ node: Node, _ keyPath: String) -> UpstreamSpec? {
        // `stream` is taken from every kind so that its misuse is named below, not reported as an unknown key.
        var allowed: Set<String> = ["kind", "url", "api_key_env", "limits", "stream"]
        switch kind {
        case .oip: allowed.formUnion(["model", "version"])
        case .openai:
            allowed.formUnion([
                "model", "endpoint", "messages", "input", "response_schema", "max_tokens", "temperature", "inputs",
            ])
        case .http: allowed.formUnion(["request", "inputs", "outputs"])
        }
        var spec = UpstreamSpec(kind: kind, url: "")
        var url: String?
        var declaredInputs: [(name: String, type: UpstreamSpec.ValueType)]?
        var streamNode: Node?
        for (key, value) in entries(node, keyPath, allowed: allowed) ?? [] {
            let path = "\(keyPath).\(key)"
            switch key {
            case "url": url = httpURL(value, path)
            case "model": spec.model = string(value, path)
            case "version": spec.version = value.string.flatMap { $0.isEmpty ? nil : $0 }
            // The variable's name, not its value: the key is read when the server connects (and never stored).
            case "api_key_env":
                spec.apiKeyEnv = string(value, path)
                if let name = spec.apiKeyEnv,
                    !name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) })
                {
                    fail(value, path, "must name an environment variable (letters, digits and _)")
                }
            case "endpoint": spec.endpoint = choice(value, path, default: UpstreamSpec.Endpoint.chat)
            case "messages": spec.messages = messages(value, path)
            case "input": spec.inputTemplate = string(value, path)
            case "response_schema":
                guard case .object = json(value) else {
                    fail(value, path, "must be a JSON schema object (type: object, properties: …)")
                    continue
                }
                spec.responseSchema = json(value)
            case "max_tokens": spec.maxTokens = int(value, path, range: 1...1_000_000)
            case "temperature": spec.temperature = double(value, path, range: 0...2)
            case "stream":
                spec.stream = bool(value, path) ?? false
                streamNode = value
            case "request":
                spec.requestTemplate = string(value, path)
            case "inputs": declaredInputs = upstreamInputs(value, path)
            case "outputs": spec.outputs = upstreamOutputs(value, path)
            case "limits": spec.limits = upstreamLimits(value, path)
            default: break
            }
        }
        guard let url else {
            fail(node, "\(keyPath).url", "is required")
            return nil
        }
        spec.url = url
        if spec.stream, let streamNode, kind != .openai || spec.endpoint != .chat {
            fail(streamNode, "\(keyPath).stream", "only an openai chat model can stream (kind: openai, endpoint: chat)")
        }
        // What each kind cannot do without.
        var placeholders: [String] = []
        switch kind {
        case .oip:
            if spec.model == nil { fail(node, "\(keyPath).model", "is required (the model's name on the OIP server)") }
        case .openai:
            if spec.model == nil { fail(node, "\(keyPath).model", "is required (the model sent with each call)") }
            switch spec.endpoint {
            case .chat:
                if spec.messages.isEmpty {
                    fail(node, "\(keyPath).messages", "is required for a chat model (a list of {role, content})")
                }
                if spec.inputTemplate != nil { fail(node, "\(keyPath).input", "is for embeddings; chat uses messages") }
                placeholders = spec.messages.flatMap { UpstreamSpec.placeholders($0.content) }
            case .embeddings:
                if !spec.messages.isEmpty || spec.responseSchema != nil {
                    fail(node, keyPath, "an embeddings model takes `input`, not messages or response_schema")
                }
                placeholders = UpstreamSpec.placeholders(spec.inputTemplate ?? "{{input}}")
                if spec.inputTemplate == nil { spec.inputTemplate = "{{input}}" }
            }
        case .http:
            guard let template = spec.requestTemplate else {
                fail(node, "\(keyPath).request", "is required (the JSON body with {{input}} placeholders)")
                return nil
            }
            placeholders = UpstreamSpec.placeholders(template)
            if spec.outputs.isEmpty {
                fail(node, "\(keyPath).outputs", "is required (output name: {pointer: /json/pointer, type: float})")
            }
        }
        if let declaredInputs {
            let names = Set(declaredInputs.map(\.name))
            for name in placeholders where !names.contains(name) {
                fail(node, "\(keyPath).inputs", "does not declare '\(name)', which a template uses")
            }
            spec.inputs = declaredInputs
        } else if kind != .oip {
            spec.inputs = placeholders.map { ($0, UpstreamSpec.ValueType.string) }
        }
        if kind != .oip, spec.inputNames.isEmpty {
            fail(node, keyPath, "has no inputs: its templates use no {{input}} placeholder")
        }
        return spec
    }

    /// An absolute `http://` or `https://` URL with a host, without a trailing slash.
    mutating func httpURL(_ node: Node, _ keyPath: String) -> String? {
        guard let text = string(node, keyPath) else { return nil }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty,
            components.user == nil, components.password == nil
        else {
            fail(node, keyPath, "must be an http:// or https:// URL with a host and no credentials (use api_key_env)")
            return nil
        }
        return text.hasSuffix("/") ? String(text.dropLast()) : text
    }

    mutating func messages(_ node: Node, _ keyPath: String) -> [UpstreamSpec.Message] {
        guard case .sequence(let items) = node else {
            fail(node, keyPath, "must be a list of {role, content}")
            return []
        }
        var messages: [UpstreamSpec.Message] = []
        for (i, item) in items.enumerated() {
            let path = "\(keyPath)[\(i)]"
            var role: String?
            var content: String?
            for (k, v) in entries(item, path, allowed: ["role", "content"]) ?? [] {
                if k == "role" {
                    role = string(v, "\(path).role")
                    if let r = role, !["system", "user", "assistant", "developer"].contains(r) {
                        fail(v, "\(path).role", "must be system, developer, user or assistant")
                    }
                } else {
                    content = string(v, "\(path).content")
                }
            }
            guard let role, let content else {
                fail(item, path, "needs a role and a content")
                continue
            }
            messages.append(UpstreamSpec.Message(role: role, content: content))
        }
        return messages
    }

    mutating func upstreamInputs(_ node: Node, _ keyPath: String) -> [(name: String, type: UpstreamSpec.ValueType)] {
        var inputs: [(name: String, type: UpstreamSpec.ValueType)] = []
        for (name, value) in entries(node, keyPath, allowed: nil) ?? [] {
            let type = choice(value, "\(keyPath).\(name)", default: UpstreamSpec.ValueType.string)
            if type == .floatVector {
                fail(value, "\(keyPath).\(name)", "an input is one value: string, float, double, int64 or bool")
                continue
            }
            inputs.append((name, type))
        }
        return inputs
    }

    mutating func upstreamOutputs(_ node: Node, _ keyPath: String) -> [UpstreamSpec.Output] {
        var outputs: [UpstreamSpec.Output] = []
        for (name, value) in entries(node, keyPath, allowed: nil) ?? [] {
            let path = "\(keyPath).\(name)"
            var pointer: String?
            var type = UpstreamSpec.ValueType.double
            for (k, v) in entries(value, path, allowed: ["pointer", "type"]) ?? [] {
                if k == "pointer" {
                    pointer = v.string
                    if let p = pointer, !p.isEmpty, !p.hasPrefix("/") {
                        fail(v, "\(path).pointer", "must be a JSON pointer: empty or starting with /")
                        pointer = nil
                    }
                } else {
                    type = choice(v, "\(path).type", default: UpstreamSpec.ValueType.double)
                }
            }
            guard let pointer else {
                fail(value, "\(path).pointer", "is required (where the value is in the answer, e.g. /result/score)")
                continue
            }
            outputs.append(UpstreamSpec.Output(name: name, pointer: pointer, type: type))
        }
        return outputs
    }

    mutating func upstreamLimits(_ node: Node, _ keyPath: String) -> UpstreamLimits {
        var limits = UpstreamLimits()
        let allowed: Set<String> = [
            "max_connections", "timeout", "max_retries", "breaker_failures", "breaker_open_for",
            "requests_per_minute", "tokens_per_minute", "max_batch_rows",
        ]
        for (key, value) in entries(node, keyPath, allowed: allowed) ?? [] {
            let path = "\(keyPath).\(key)"
            switch key {
            case "max_connections": limits.maxConnections = int(value, path, range: 1...1024) ?? limits.maxConnections
            case "timeout":
                limits.timeout = durationRange(value, path, .milliseconds(10)...(.seconds(3600))) ?? limits.timeout
            case "max_retries": limits.maxRetries = int(value, path, range: 0...10) ?? limits.maxRetries
            case "breaker_failures":
                limits.breakerFailures = int(value, path, range: 1...10_000) ?? limits.breakerFailures
            case "breaker_open_for":
                limits.breakerOpenFor =
                    durationRange(value, path, .milliseconds(100)...(.seconds(3600))) ?? limits.breakerOpenFor
            case "requests_per_minute": limits.requestsPerMinute = int(value, path, range: 1...100_000_000)
            case "tokens_per_minute": limits.tokensPerMinute = int(value, path, range: 1...10_000_000_000)
            case "max_batch_rows": limits.maxBatchRows = int(value, path, range: 1...100_000) ?? limits.maxBatchRows
            default: break
            }
        }
        return limits
    }

    mutating func feature(_ name: String, _ node: Node, models: [String: ModelSpec]) -> FeatureSpec? {
        let keyPath = "features.\(name)"
        if !name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) {
            fail(node, keyPath, "feature names may use letters, digits, '_' and '-' only (they appear in URLs)")
        }
        let allowed: Set<String> = [
            "model", "pattern", "key", "max_staleness", "latency_budget", "user_blocking", "outputs", "inputs",
            "on_failure", "batching", "batch", "async", "description", "advice", "compose",
        ]
        guard let items = entries(node, keyPath, allowed: allowed) else { return nil }
        var feature = FeatureSpec(name: name, model: "", location: location(node, keyPath))
        var hasModel = false
        var batchNode: (Node, String)?
        for (key, value) in items {
            let path = "\(keyPath).\(key)"
            switch key {
            case "model":
                if let m = string(value, path) {
                    feature.model = m
                    hasModel = true
                    if models[m] == nil {
                        fail(
                            value, path,
                            "unknown model '\(m)' (models: \(models.keys.sorted().joined(separator: ", ")))")
                    }
                }
            case "pattern":
                if let text = string(value, path) {
                    if let p = ServingPattern(rawValue: text) {
                        feature.pattern = p
                    } else {
                        fail(value, path, "must be one of realtime, async, batch, hybrid")
                    }
                }
            case "key": feature.key = string(value, path)
            case "max_staleness": feature.maxStaleness = duration(value, path)
            case "latency_budget":
                if let d = duration(value, path) {
                    if d <= .zero { fail(value, path, "must be positive") } else { feature.latencyBudget = d }
                }
            case "user_blocking": feature.userBlocking = bool(value, path) ?? true
            case "outputs":
                guard case .sequence(let seq) = value else {
                    fail(value, path, "must be a list of output names")
                    continue
                }
                feature.outputs = seq.enumerated().compactMap { string($0.element, "\(path)[\($0.offset)]") }
            case "inputs":
                feature.inputs = inputDeclarations(value, path)
            case "on_failure": feature.onFailure = failurePolicy(value, path)
            case "batching": feature.batching = batching(value, path)
            case "batch": batchNode = (value, path)
            case "async":
                feature.jobs = jobPolicy(value, path)
                if case .mapping(let m) = value, let url = m["webhook"] {
                    feature.webhook = webhookURL(url, "\(path).webhook")
                }
            case "description": _ = string(value, path)
            case "advice":
                feature.decision = decisionSpec(value, path)
                feature.adviceKeys = adviceKeys(value, path, featureKey: feature.key)
            case "compose": feature.compose = composition(value, path)
            default: break
            }
        }
        if !hasModel {
            fail(node, "\(keyPath).model", "is required")
            return nil
        }
        if let (value, path) = batchNode { feature.batch = batch(value, path, featureKey: feature.key) }
        if let provider = feature.batch?.providerBatch, let model = models[feature.model] {
            if model.upstream?.kind != .openai {
                let kind = model.upstream?.kind.rawValue ?? "onnx"
                errors.append(
                    ManifestError(
                        provider.location,
                        "needs a model of kind openai (model '\(feature.model)' is of kind \(kind))"))
            }
        }
        if feature.pattern == .batch && feature.batch == nil && batchNode == nil {
            fail(node, "\(keyPath).batch", "is required for pattern: batch (schedule, source, key column)")
        }
        return feature
    }

    mutating func batch(_ node: Node, _ keyPath: String, featureKey: String?) -> BatchSpec? {
        let allowed: Set<String> = [
            "schedule", "source", "key_column", "columns", "cold_start", "on_stale", "catch_up", "retention",
            "chunk_rows", "threads", "range_rows", "max_failed_share", "allow_empty", "provider_batch",
        ]
        guard let items = entries(node, keyPath, allowed: allowed) else { return nil }
        var spec = BatchSpec(
            source: .csv(path: ""), keyColumn: featureKey ?? "", location: location(node, keyPath))
        var hasSource = false
        for (key, value) in items {
            let path = "\(keyPath).\(key)"
            switch key {
            case "schedule":
                guard let text = string(value, path) else { continue }
                do { spec.schedule = try CronSchedule(parsing: text) } catch {
                    fail(value, path, "not a cron schedule: \(error.message)")
                }
            case "source":
                if let source = batchSource(value, path) {
                    spec.source = source
                    hasSource = true
                }
            case "key_column": spec.keyColumn = string(value, path) ?? spec.keyColumn
            case "columns":
                for (input, mapping) in entries(value, path, allowed: nil) ?? [] {
                    let inputPath = "\(path).\(input)"
                    spec.columnLocations[input] = location(mapping, inputPath)
                    if case .sequence(let seq) = mapping {
                        let names = seq.enumerated().compactMap { string($0.element, "\(inputPath)[\($0.offset)]") }
                        if names.isEmpty { fail(mapping, inputPath, "must list at least one column") }
                        spec.columns[input] = .columns(names)
                    } else if let column = string(mapping, inputPath) {
                        spec.columns[input] = .column(column)
                    }
                }
            case "cold_start": spec.coldStart = choice(value, path, default: spec.coldStart)
            case "on_stale": spec.onStale = choice(value, path, default: spec.onStale)
            case "catch_up": spec.catchUp = choice(value, path, default: spec.catchUp)
            case "retention": spec.retention = int(value, path, range: 1...1000) ?? spec.retention
            case "chunk_rows": spec.chunkRows = int(value, path, range: 1...1_000_000) ?? spec.chunkRows
            case "threads": spec.threads = int(value, path, range: 1...64) ?? spec.threads
            case "range_rows": spec.rangeRows = int(value, path, range: 1...1_000_000_000) ?? spec.rangeRows
            case "max_failed_share": spec.maxFailedShare = double(value, path, range: 0...1) ?? spec.maxFailedShare
            case "allow_empty": spec.allowEmpty = bool(value, path) ?? spec.allowEmpty
            case "provider_batch": spec.providerBatch = providerBatch(value, path)
            default: break
            }
        }
        if !hasSource {
            fail(node, "\(keyPath).source", "is required: csv: FILE, jsonl: FILE or sql: {database: FILE, query: SQL}")
            return nil
        }
        if spec.keyColumn.isEmpty {
            fail(node, "\(keyPath).key_column", "is required when the feature has no key")
            return nil
        }
        return spec
    }

    /// `provider_batch: true`, or `{poll: DURATION, completion_window: 24h}`.
    mutating func providerBatch(_ node: Node, _ keyPath: String) -> ProviderBatch? {
        var settings = ProviderBatch(location: location(node, keyPath))
        if case .scalar = node {
            return bool(node, keyPath) == true ? settings : nil
        }
        for (key, value) in entries(node, keyPath, allowed: ["poll", "completion_window"]) ?? [] {
            let path = "\(keyPath).\(key)"
            switch key {
            case "poll":
                settings.pollInterval =
                    durationRange(value, path, .milliseconds(10)...(.seconds(3_600))) ?? settings.pollInterval
            case "completion_window":
                guard let window = string(value, path) else { continue }
                if window == "24h" {
                    settings.completionWindow = window
                } else {
                    fail(value, path, "must be 24h (the only completion window the Batch API takes)")
                }
            default: break
            }
        }
        return settings
    }

    mutating func jobPolicy(_ node: Node, _ keyPath: String) -> JobPolicy {
        var policy = JobPolicy()
        let allowed: Set<String> = [
            "max_attempts", "backoff", "max_backoff", "visibility_timeout", "deadline", "webhook",
        ]
        for (key, value) in entries(node, keyPath, allowed: allowed) ?? [] {
            let path = "\(keyPath).\(key)"
            switch key {
            case "max_attempts": policy.maxAttempts = int(value, path, range: 1...100) ?? policy.maxAttempts
            case "backoff": policy.backoffBase = positive(value, path) ?? policy.backoffBase
            case "max_backoff": policy.backoffMax = positive(value, path) ?? policy.backoffMax
            case "visibility_timeout": policy.visibilityTimeout = positive(value, path) ?? policy.visibilityTimeout
            case "deadline": policy.deadline = positive(value, path) ?? policy.deadline
            default: break
            }
        }
        return policy
    }

    mutating func webhookURL(_ node: Node, _ keyPath: String) -> String? {
        guard let text = string(node, keyPath) else { return nil }
        guard text.hasPrefix("https://") || text.hasPrefix("http://") else {
            fail(node, keyPath, "must be an http:// or https:// URL")
            return nil
        }
        return text
    }

    mutating func webhookSettings(_ node: Node, _ keyPath: String) -> WebhookSettings {
        var settings = WebhookSettings()
        let allowed: Set<String> = [
            "secret_env", "allow_loopback", "allow_private", "retry_window", "backoff", "max_backoff", "timeout",
        ]
        for (key, value) in entries(node, keyPath, allowed: allowed) ?? [] {
            let path = "\(keyPath).\(key)"
            switch key {
            case "secret_env": settings.secret = environment(value, path) ?? settings.secret
            case "allow_loopback": settings.allowLoopback = bool(value, path) ?? false
            case "allow_private": settings.allowPrivate = bool(value, path) ?? false
            case "retry_window": settings.retryWindow = positive(value, path) ?? settings.retryWindow
            case "backoff": settings.backoffBase = positive(value, path) ?? settings.backoffBase
            case "max_backoff": settings.backoffMax = positive(value, path) ?? settings.backoffMax
            case "timeout": settings.timeout = positive(value, path) ?? settings.timeout
            default: break
            }
        }
        return settings
    }

    /// The value of the environment variable the node names (a secret kept out of the manifest). An unset one is an
    /// error, or with `defersSecrets` an entry of `unsetSecrets`.
    mutating func environment(_ node: Node, _ keyPath: String) -> String? {
        guard let variable = string(node, keyPath) else { return nil }
        guard let value = variables[variable], !value.isEmpty else {
            if defersSecrets {
                unsetSecrets.append(
                    ManifestError(
                        location(node, keyPath),
                        "environment variable \(variable) is not set (serving refuses to start without it)"))
            } else {
                fail(node, keyPath, "environment variable \(variable) is not set")
            }
            return nil
        }
        return value
    }

    mutating func positive(_ node: Node, _ keyPath: String) -> Duration? {
        guard let d = duration(node, keyPath) else { return nil }
        guard d > .zero else {
            fail(node, keyPath, "must be positive")
            return nil
        }
        return d
    }

    mutating func batchSource(_ node: Node, _ keyPath: String) -> BatchSpec.Source? {
        guard let items = entries(node, keyPath, allowed: ["csv", "jsonl", "sql"]) else { return nil }
        guard items.count == 1, let (kind, value) = items.first else {
            fail(node, keyPath, "must name exactly one of csv, jsonl, sql")
            return nil
        }
        let path = "\(keyPath).\(kind)"
        switch kind {
        case "csv": return string(value, path).map { .csv(path: $0) }
        case "jsonl": return string(value, path).map { .jsonLines(path: $0) }
        default:
            var database: String?
            var query: String?
            for (k, v) in entries(value, path, allowed: ["database", "query"]) ?? [] {
                if k == "database" {
                    database = string(v, "\(path).database")
                } else {
                    query = string(v, "\(path).query")
                }
            }
            guard let database, let query else {
                fail(value, path, "needs database (an SQLite file) and query")
                return nil
            }
            return .sql(database: database, query: query)
        }
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ keyPath: String, default value: T) -> T
    where T.RawValue == String {
        guard let text = string(node, keyPath) else { return value }
        guard let chosen = T(rawValue: text) else {
            fail(node, keyPath, "must be one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            return value
        }
        return chosen
    }

    mutating func inputDeclarations(_ node: Node, _ keyPath: String) -> [InputDeclaration] {
        var result: [InputDeclaration] = []
        for (name, value) in entries(node, keyPath, allowed: nil) ?? [] {
            let path = "\(keyPath).\(name)"
            guard let text = string(value, path) else { continue }
            guard let declaration = InputDeclaration(name: name, text: text, location: location(value, path)) else {
                fail(value, path, "must be a type such as float, int64, string, float[30] or double[4,4]")
                continue
            }
            result.append(declaration)
        }
        return result
    }

    mutating func failurePolicy(_ node: Node, _ keyPath: String) -> FailurePolicy {
        if let text = node.string, case .scalar = node {
            if text == "error" { return .error }
            fail(node, keyPath, "must be 'error' or a mapping with 'default'")
            return .error
        }
        var policy = FailurePolicy.error
        for (key, value) in entries(node, keyPath, allowed: ["default"]) ?? [] where key == "default" {
            guard case .object(let object) = json(value) else {
                fail(value, "\(keyPath).default", "must map output names to values")
                continue
            }
            policy = .defaultValue(object)
        }
        return policy
    }

    mutating func batching(_ node: Node, _ keyPath: String) -> BatchingSettings {
        var settings = BatchingSettings()
        for (key, value) in entries(node, keyPath, allowed: ["max_batch_size", "max_queue_delay", "max_queue_length"])
            ?? []
        {
            let path = "\(keyPath).\(key)"
            switch key {
            case "max_batch_size": settings.maxBatchSize = int(value, path, range: 1...65_536) ?? settings.maxBatchSize
            case "max_queue_delay": settings.maxQueueDelay = duration(value, path) ?? settings.maxQueueDelay
            case "max_queue_length":
                settings.maxQueueLength = int(value, path, range: 1...1_000_000) ?? settings.maxQueueLength
            default: break
            }
        }
        return settings
    }

    mutating func tokens(_ node: Node) -> [TokenSpec] {
        guard case .sequence(let seq) = node else {
            fail(node, "tokens", "must be a list of {name, token or token_env, scopes}")
            return []
        }
        var result: [TokenSpec] = []
        for (index, item) in seq.enumerated() {
            let path = "tokens[\(index)]"
            var name = "token\(index)"
            var secret: String?
            var scopes: Set<TokenSpec.Scope> = [.predict]
            let unsetBefore = unsetSecrets.count
            for (key, value) in entries(item, path, allowed: ["name", "token", "token_env", "scopes"]) ?? [] {
                switch key {
                case "name": name = string(value, "\(path).name") ?? name
                case "token": secret = string(value, "\(path).token")
                case "token_env": secret = environment(value, "\(path).token_env") ?? secret
                case "scopes":
                    guard case .sequence(let list) = value else {
                        fail(value, "\(path).scopes", "must be a list of predict, admin")
                        continue
                    }
                    scopes = Set(
                        list.compactMap { v in
                            guard let s = v.string, let scope = TokenSpec.Scope(rawValue: s) else {
                                fail(v, "\(path).scopes", "unknown scope (predict, admin)")
                                return nil
                            }
                            return scope
                        })
                default: break
                }
            }
            if let secret {
                result.append(TokenSpec(name: name, secret: secret, scopes: scopes))
            } else if errors.isEmpty && unsetSecrets.count == unsetBefore {  // an unset token_env is reported already
                fail(item, path, "needs 'token' or 'token_env'")
            }
        }
        return result
    }

    /// `compose:` — model inputs from other features' snapshots:
    /// `{INPUT: {from: FEATURE, output: NAME, key: REQUEST_INPUT, max_staleness: D, on_missing: error|{default: V}}}`.
    mutating func composition(_ node: Node, _ keyPath: String) -> [ComposedInput] {
        var result: [ComposedInput] = []
        for (input, entry) in entries(node, keyPath, allowed: nil) ?? [] {
            let base = "\(keyPath).\(input)"
            let allowed: Set<String> = ["from", "output", "key", "max_staleness", "on_missing"]
            guard let items = entries(entry, base, allowed: allowed) else { continue }
            var composed = ComposedInput(input: input, feature: "", output: "", location: location(entry, base))
            for (k, v) in items {
                let path = "\(base).\(k)"
                switch k {
                case "from": composed.feature = string(v, path) ?? ""
                case "output": composed.output = string(v, path) ?? ""
                case "key": composed.keyInput = string(v, path)
                case "max_staleness": composed.maxStaleness = duration(v, path)
                case "on_missing":
                    if case .mapping(let m) = v {
                        for (dk, dv) in entries(v, path, allowed: ["default"]) ?? [] where dk == "default" {
                            composed.onMissing = .defaultValue(json(dv))
                        }
                        if m.isEmpty { fail(v, path, "must be 'error' or {default: VALUE}") }
                    } else if string(v, path) != "error" {
                        fail(v, path, "must be 'error' or {default: VALUE}")
                    }
                default: break
                }
            }
            if composed.feature.isEmpty {
                fail(entry, "\(base).from", "is required: the feature whose snapshot holds it")
            }
            if composed.output.isEmpty { fail(entry, "\(base).output", "is required: the output to take") }
            result.append(composed)
        }
        return result
    }

    /// `advisor:` — the thresholds of the decision rules (docs/manifest.md, "Advisor").
    mutating func advisor(_ node: Node) -> AdvisorSettings {
        var a = AdvisorSettings()
        let allowed: Set<String> = [
            "window", "unbounded_input_share", "predictable_share", "realtime_p99_limit", "decision_change_limit",
            "reference_age", "min_calls_per_day", "min_cost_ratio", "target_utilization", "min_pairs",
            "stable_input_share", "ages", "min_monthly_saving", "failure_share_limit",
        ]
        for (key, value) in entries(node, "advisor", allowed: allowed) ?? [] {
            let path = "advisor.\(key)"
            func positive(_ d: Duration?) -> Double? {
                guard let d else { return nil }
                if d <= .zero {
                    fail(value, path, "must be positive")
                    return nil
                }
                return d.seconds
            }
            switch key {
            case "window": a.windowSeconds = positive(duration(value, path)) ?? a.windowSeconds
            case "unbounded_input_share":
                a.unboundedInputShare = double(value, path, range: 0...1) ?? a.unboundedInputShare
            case "predictable_share": a.predictableShare = double(value, path, range: 0...1) ?? a.predictableShare
            case "realtime_p99_limit": a.realtimeP99Limit = positive(duration(value, path)) ?? a.realtimeP99Limit
            case "decision_change_limit":
                a.decisionChangeLimit = double(value, path, range: 0...1) ?? a.decisionChangeLimit
            case "reference_age": a.referenceAgeSeconds = positive(duration(value, path)) ?? a.referenceAgeSeconds
            case "min_calls_per_day": a.minCallsPerDay = double(value, path, range: 0...1e12) ?? a.minCallsPerDay
            case "min_cost_ratio": a.minCostRatio = double(value, path, range: 0...1e6) ?? a.minCostRatio
            case "min_monthly_saving": a.minMonthlySaving = double(value, path, range: 0...1e12) ?? a.minMonthlySaving
            case "failure_share_limit":
                a.failureShareLimit = double(value, path, range: 0...1) ?? a.failureShareLimit
            case "target_utilization":
                a.targetUtilization = double(value, path, range: 0.05...1) ?? a.targetUtilization
            case "min_pairs": a.minPairs = int(value, path, range: 1...1_000_000) ?? a.minPairs
            case "stable_input_share": a.stableInputShare = double(value, path, range: 0...1) ?? a.stableInputShare
            case "ages":
                guard case .sequence(let seq) = value, !seq.isEmpty else {
                    fail(value, path, "must be a list of durations, e.g. [1m, 1h, 24h]")
                    continue
                }
                let ages = seq.enumerated().compactMap { positive(duration($0.element, "\(path)[\($0.offset)]")) }
                if ages.count == seq.count { a.ages = ages.sorted() }
            default: break
            }
        }
        return a
    }

    /// A feature's `advice:` section: `decision: {output, kind, threshold, top_k, tolerance}`.
    mutating func decisionSpec(_ node: Node, _ keyPath: String) -> DecisionSpec {
        var spec = DecisionSpec()
        for (key, value) in entries(node, keyPath, allowed: ["decision", "keys"]) ?? [] where key == "decision" {
            let base = "\(keyPath).decision"
            let allowed: Set<String> = ["output", "kind", "threshold", "top_k", "tolerance"]
            for (k, v) in entries(value, base, allowed: allowed) ?? [] {
                let path = "\(base).\(k)"
                switch k {
                case "output": spec.output = string(v, path)
                case "kind":
                    if let text = string(v, path) {
                        if let kind = DecisionKind(rawValue: text) {
                            spec.kind = kind
                        } else {
                            fail(v, path, "must be one of label, ranking, score")
                        }
                    }
                case "threshold": spec.threshold = double(v, path, range: -1e12...1e12)
                case "top_k": spec.topK = int(v, path, range: 1...10_000) ?? spec.topK
                case "tolerance": spec.tolerance = double(v, path, range: 0...1e6) ?? spec.tolerance
                default: break
                }
            }
        }
        return spec
    }

    /// `advice.keys: {csv|jsonl|sql: …, key_column: NAME}` — the entity set a batch would enumerate.
    mutating func adviceKeys(_ node: Node, _ keyPath: String, featureKey: String?) -> AdviceKeys? {
        guard case .mapping(let m) = node, let keysNode = m.first(where: { $0.key.string == "keys" })?.value else {
            return nil
        }
        let path = "\(keyPath).keys"
        guard case .mapping(let fields) = keysNode else {
            fail(keysNode, path, "must be {csv: FILE, key_column: NAME} (or jsonl, sql)")
            return nil
        }
        var column = featureKey
        var sourceFields: [Node: Node] = [:]
        for (k, v) in fields {
            if k.string == "key_column" { column = string(v, "\(path).key_column") } else { sourceFields[k] = v }
        }
        guard let source = batchSource(.mapping(Node.Mapping(sourceFields.map { ($0.key, $0.value) })), path) else {
            return nil
        }
        guard let column else {
            fail(keysNode, "\(path).key_column", "is required when the feature has no key")
            return nil
        }
        return AdviceKeys(source: source, keyColumn: column)
    }

    /// The `pricing` section, and the names of the models it prices per token with their nodes (checked against
    /// `models` once those are read).
    mutating func pricing(_ node: Node) -> (Pricing, [(name: String, node: Node)]) {
        var pricing = Pricing()
        var priced: [(name: String, node: Node)] = []
        let allowed: Set<String> = [
            "core_hour", "spot_discount", "currency", "models", "min_instances", "instance_cores", "instance_hour",
            "batch_overhead_per_month", "storage_gb_month", "async_min_workers", "store_write_per_million",
        ]
        for (key, value) in entries(node, "pricing", allowed: allowed) ?? [] {
            let path = "pricing.\(key)"
            switch key {
            case "min_instances": pricing.minInstances = int(value, path, range: 0...10_000) ?? pricing.minInstances
            case "instance_cores":
                pricing.instanceCores = double(value, path, range: 0.125...1_024) ?? pricing.instanceCores
            case "instance_hour": pricing.instanceHour = double(value, path, range: 0...100_000)
            case "batch_overhead_per_month":
                pricing.batchOverheadPerMonth = double(value, path, range: 0...1e9) ?? pricing.batchOverheadPerMonth
            case "storage_gb_month":
                pricing.storageGBMonth = double(value, path, range: 0...1_000) ?? pricing.storageGBMonth
            case "async_min_workers":
                pricing.asyncMinWorkers = int(value, path, range: 0...10_000) ?? pricing.asyncMinWorkers
            case "store_write_per_million":
                pricing.storeWritePerMillion = double(value, path, range: 0...1e6) ?? pricing.storeWritePerMillion
            case "core_hour": pricing.coreHour = double(value, "pricing.core_hour", range: 0...1000) ?? pricing.coreHour
            case "spot_discount":
                pricing.spotDiscount = double(value, "pricing.spot_discount", range: 0...1) ?? pricing.spotDiscount
            case "currency": pricing.currency = string(value, "pricing.currency") ?? pricing.currency
            case "models":
                for (name, entry) in entries(value, "pricing.models", allowed: nil) ?? [] {
                    // The name's own line (a block mapping's value starts on the next one).
                    var keyNode = entry
                    if case .mapping(let m) = value, let k = m.first(where: { $0.key.string == name })?.key {
                        keyNode = k
                    }
                    priced.append((name, keyNode))
                    if let price = tokenPrice(entry, "pricing.models.\(name)") { pricing.models[name] = price }
                }
            default: break
            }
        }
        return (pricing, priced)
    }

    /// `{input_per_million: X, output_per_million: Y, batch_discount: 0.5}`: prices per million tokens, both
    /// required; the batch discount defaults to OpenAI's Batch API's (half price).
    mutating func tokenPrice(_ node: Node, _ keyPath: String) -> TokenPrice? {
        let allowed: Set<String> = ["input_per_million", "output_per_million", "batch_discount"]
        guard let fields = entries(node, keyPath, allowed: allowed) else { return nil }
        var input: Double?
        var output: Double?
        var discount = TokenPrice.defaultBatchDiscount
        var valid = true
        for (key, value) in fields {
            let path = "\(keyPath).\(key)"
            switch key {
            case "input_per_million":
                input = double(value, path, range: 0...100_000)
                valid = valid && input != nil
            case "output_per_million":
                output = double(value, path, range: 0...100_000)
                valid = valid && output != nil
            case "batch_discount":
                if let d = double(value, path, range: 0...1) { discount = d } else { valid = false }
            default: break
            }
        }
        if input == nil, !fields.contains(where: { $0.key == "input_per_million" }) {
            fail(node, "\(keyPath).input_per_million", "is required")
        }
        if output == nil, !fields.contains(where: { $0.key == "output_per_million" }) {
            fail(node, "\(keyPath).output_per_million", "is required")
        }
        guard valid, let input, let output else { return nil }
        return TokenPrice(inputPerMillion: input, outputPerMillion: output, batchDiscount: discount)
    }

    mutating func server(_ node: Node) -> ServerSettings {
        var s = ServerSettings()
        let allowed: Set<String> = [
            "host", "port", "max_body_bytes", "compute_threads", "request_log_sample_rate", "request_log_retention",
            "job_workers", "webhooks", "idle_timeout", "max_connections", "shutdown_timeout", "max_streams",
            "max_streams_per_token", "max_in_flight", "max_queued_jobs_per_token", "job_retention",
        ]
        for (key, value) in entries(node, "server", allowed: allowed) ?? [] {
            let path = "server.\(key)"
            switch key {
            case "host": s.host = string(value, path) ?? s.host
            case "port": s.port = int(value, path, range: 0...65_535) ?? s.port
            case "max_body_bytes": s.maxBodyBytes = int(value, path, range: 1024...(1 << 30)) ?? s.maxBodyBytes
            case "compute_threads": s.computeThreads = int(value, path, range: 1...64) ?? s.computeThreads
            case "request_log_sample_rate":
                s.requestLogSampleRate = double(value, path, range: 0...1) ?? s.requestLogSampleRate
            case "request_log_retention": s.requestLogRetention = duration(value, path) ?? s.requestLogRetention
            case "job_workers": s.jobWorkers = int(value, path, range: 0...256) ?? s.jobWorkers
            case "webhooks": s.webhooks = webhookSettings(value, path)
            case "idle_timeout": s.idleTimeout = positiveDuration(value, path, atMost: 3600) ?? s.idleTimeout
            case "max_connections": s.maxConnections = int(value, path, range: 1...1_000_000) ?? s.maxConnections
            case "max_in_flight": s.maxInFlightSetting = int(value, path, range: 1...1_000_000)
            case "shutdown_timeout":
                s.shutdownTimeout = positiveDuration(value, path, atMost: 3600) ?? s.shutdownTimeout
            case "max_streams": s.maxStreams = int(value, path, range: 0...100_000) ?? s.maxStreams
            case "max_streams_per_token":
                s.maxStreamsPerToken = int(value, path, range: 0...100_000) ?? s.maxStreamsPerToken
            case "max_queued_jobs_per_token":
                s.maxQueuedJobsPerToken = int(value, path, range: 1...10_000_000) ?? s.maxQueuedJobsPerToken
            case "job_retention":
                s.jobRetention = durationRange(value, path, .seconds(60)...(.seconds(3650 * 86_400))) ?? s.jobRetention
            default: break
            }
        }
        return s
    }
}
