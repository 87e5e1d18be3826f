/// How to build a kernel for one operator, and from which operator-set version the engine implements it.
struct OperatorSpec: Sendable {
    /// The domain: `""` (ai.onnx) or `"ai.onnx.ml"`.
    let domain: String
    /// The operator type.
    let opType: String
    /// The first operator-set version of the domain in which this operator exists.
    let sinceVersion: Int
    /// Builds the kernel; parses and validates attributes, so a bad node fails at load time.
    let make: @Sendable (NodeContext) throws -> any Kernel

    init(
        _ domain: String, _ opType: String, since: Int = 1,
        _ make: @escaping @Sendable (NodeContext) throws -> any Kernel
    ) {
        self.domain = domain
        self.opType = opType
        self.sinceVersion = since
        self.make = make
    }
}

/// Every operator the engine implements, and the operator-set versions it understands.
enum OperatorRegistry {
    /// The ai.onnx domain's canonical name; models may also write it as `""`.
    static let defaultDomain = ""
    /// The ai.onnx.ml domain.
    static let mlDomain = "ai.onnx.ml"

    /// The newest operator-set version known per domain. A model that imports a newer one is refused:
    /// its operators may have semantics the engine has not implemented. Checked against the schema history of
    /// onnx 1.23 (`onnx.defs.get_all_schemas_with_history`): of the operators implemented here, versions 24 to 28
    /// only add element types (TopK-24 bfloat16; Reshape, Flatten, Identity, Transpose, Squeeze, Unsqueeze,
    /// Constant 24/25 float8e8m0 and 2-bit integers; Cast-24/25/28 the same), which the engine refuses by type.
    static let newestOpset: [String: Int] = [defaultDomain: 28, mlDomain: 5]

    static let specs: [String: OperatorSpec] = {
        var table: [String: OperatorSpec] = [:]
        for spec in StandardOperators.specs + MLOperators.specs {
            table[key(spec.domain, spec.opType)] = spec
        }
        return table
    }()

    /// Normalizes the domain spelling (`ai.onnx` and `""` are the same domain).
    static func canonicalDomain(_ domain: String) -> String {
        domain == "ai.onnx" ? defaultDomain : domain
    }

    static func key(_ domain: String, _ opType: String) -> String { canonicalDomain(domain) + "::" + opType }

    /// The spec for an operator, or `nil` if the engine does not implement it.
    static func spec(domain: String, opType: String) -> OperatorSpec? { specs[key(domain, opType)] }

    /// The operators the engine implements, as `domain:op` strings (ai.onnx ops without a prefix).
    static var supportedOperators: [String] {
        specs.values.map { $0.domain.isEmpty ? $0.opType : "\($0.domain):\($0.opType)" }.sorted()
    }
}
