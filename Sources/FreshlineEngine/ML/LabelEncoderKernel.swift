/// `LabelEncoder`: maps each input element through a key → value table, with a default for missing keys.
///
/// - opset 1: `classes_strings`; strings become their index (default `default_int64`, −1) and int64 indices
///   become their string (default `default_string`, "_Unused").
/// - opset 2: `keys_*` / `values_*` lists of strings, int64s or floats (defaults "_Unused", −1, −0.0).
/// - opset 4: adds the `keys_tensor` / `values_tensor` / `default_tensor` forms (which may hold doubles); NaN
///   keys match NaN.
///
/// When a key repeats, its first value wins (in opset 1, a repeated class keeps its last index). Float keys compare by value (0.0 and −0.0 are the same key).
struct LabelEncoderKernel: Kernel {
    /// A key in a form that hashes like onnxruntime's table compares.
    enum Key: Hashable, Sendable {
        case string(String)
        case int(Int64)
        case real(UInt64)

        /// A floating-point key: `-0.0` folds into `0.0`; NaN folds into one key (matched only from opset 4).
        static func real(_ v: Double) -> Key {
            if v.isNaN { return .real(Double.nan.bitPattern) }
            return .real((v == 0 ? 0.0 : v).bitPattern)
        }
    }

    let keyType: ElementType
    let table: [Key: Int]
    let values: TensorData
    /// The default value, as a one-element `TensorData` of the values' type.
    let fallback: TensorData
    let matchesNaN: Bool

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        let a = MLAttributes(context)
        if context.opsetVersion < 2 {
            let classes = try a.strings("classes_strings")
            // The output type is only known from the input: strings map to indices, indices to strings.
            var table: [Key: Int] = [:]
            for (i, c) in classes.enumerated() { table[.string(c)] = i }  // a repeated class keeps its last index
            return LabelEncoderV1Kernel(
                classes: classes, table: table,
                defaultString: try a.string("default_string", default: "_Unused"),
                defaultInt: Int64(try a.int("default_int64", default: -1)))
        }

        let (keyType, keyData) = try keysOrValues(a, prefix: "keys", context)
        let (valueType, valueData) = try keysOrValues(a, prefix: "values", context)
        guard keyData.count == valueData.count else {
            throw context.error(.invalidArgument, "\(keyData.count) keys but \(valueData.count) values")
        }
        var table: [Key: Int] = [:]
        table.reserveCapacity(keyData.count)
        for i in 0..<keyData.count {
            let key = Self.key(keyData, i)
            if table[key] == nil { table[key] = i }
        }
        let fallback = try defaultValue(a, type: valueType, context)
        return LabelEncoderKernel(
            keyType: keyType, table: table, values: valueData, fallback: fallback,
            matchesNaN: context.opsetVersion >= 4)
    }

    /// The `keys_*` (or `values_*`) attribute that is set, with its element type.
    private static func keysOrValues(_ a: MLAttributes, prefix: String, _ context: NodeContext) throws -> (
        ElementType, TensorData
    ) {
        var found: [(ElementType, TensorData)] = []
        if a.has("\(prefix)_strings") { found.append((.string, .string(try a.strings("\(prefix)_strings")))) }
        if a.has("\(prefix)_int64s") { found.append((.int64, .int64(try a.int64s("\(prefix)_int64s")))) }
        if a.has("\(prefix)_floats") { found.append((.float, .float(try a.floats("\(prefix)_floats")))) }
        if a.has("\(prefix)_tensor"), let tensor = try context.attributes.tensor("\(prefix)_tensor") {
            found.append((tensor.elementType, tensor.data))
        }
        guard found.count == 1, let only = found.first else {
            throw context.error(.invalidArgument, "exactly one \(prefix)_* attribute must be set, found \(found.count)")
        }
        switch only.0 {
        case .string, .int64, .float, .double: return only
        default: throw context.error(.invalidArgument, "\(prefix) of type \(only.0) are not supported")
        }
    }

    private static func defaultValue(_ a: MLAttributes, type: ElementType, _ context: NodeContext) throws -> TensorData
    {
        if a.has("default_tensor"), let t = try context.attributes.tensor("default_tensor"), t.count >= 1,
            t.elementType == type
        {
            return t.data.selecting([0])
        }
        switch type {
        case .string: return .string([try a.string("default_string", default: "_Unused")])
        case .int64: return .int64([Int64(try a.int("default_int64", default: -1))])
        case .float: return .float([try a.float("default_float", default: -0.0)])
        case .double: return .double([Double(try a.float("default_float", default: -0.0))])
        default: throw context.error(.invalidArgument, "values of type \(type) are not supported")
        }
    }

    private static func key(_ data: TensorData, _ i: Int) -> Key {
        switch data {
        case .string(let v): .string(v[i])
        case .int64(let v): .int(v[i])
        case .float(let v): .real(Double(v[i]))
        case .double(let v): .real(v[i])
        case .int32(let v): .int(Int64(v[i]))
        default: .int(0)
        }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "LabelEncoder")
        guard x.elementType == keyType else {
            throw EngineError(
                .invalidArgument, "LabelEncoder: input has type \(x.elementType) but the keys are \(keyType)")
        }
        var picks: [Int] = []
        picks.reserveCapacity(x.count)
        let fallbackIndex = values.count
        for i in 0..<x.count {
            let key = Self.key(x.data, i)
            if case .real(let bits) = key, Double(bitPattern: bits).isNaN, !matchesNaN {
                picks.append(fallbackIndex)
                continue
            }
            picks.append(table[key] ?? fallbackIndex)
        }
        let extended = TensorData.concatenating([values, fallback], runs: [(0, 0, values.count), (1, 0, 1)])
        return [.tensor(Tensor(unchecked: x.shape, extended.selecting(picks)))]
    }
}
