public import FreshlineCore
public import FreshlineEngine
public import FreshlineJSON

/// Shape-correct inputs for a replayed request whose values the request log does not keep (it keeps a hash of
/// each): one value per model input besides the key, shaped as the feature declares it (`inputs:`) or else as the
/// model's metadata gives it per row (variable dimensions as 1), filled like the engine's `syntheticFeeds` —
/// numbers in [-1, 1], integers 0 or 1, strings `a`/`b`/`c`. Values are seeded by the recorded input hash, so the
/// same recorded value gives the same synthetic value and inputs that were stable per key stay stable.
public struct SyntheticInputs: Sendable {
    /// One input to fill: its name, element type and per-row shape.
    public struct Slot: Sendable, Equatable {
        public var name: String
        public var elementType: ElementType
        public var shape: [Int]

        public init(name: String, elementType: ElementType, shape: [Int]) {
            self.name = name
            self.elementType = elementType
            self.shape = shape
        }
    }

    public let slots: [Slot]

    public init(slots: [Slot]) { self.slots = slots }

    /// The inputs of `feature` on a model with `metadata`: the declared shape when the feature declares the input,
    /// else the model's per-row shape. Without metadata (a model not loaded here), the feature's declared inputs.
    public init(feature: FeatureSpec, metadata: ModelMetadata?) {
        guard let metadata else {
            slots = feature.inputs.filter { $0.name != feature.key }.compactMap { declared in
                ElementType.allCases.first { $0.description == declared.elementType }.map {
                    Slot(name: declared.name, elementType: $0, shape: declared.shape)
                }
            }
            return
        }
        slots = metadata.inputs.filter { $0.name != feature.key }.map { input in
            if let declared = feature.inputs.first(where: { $0.name == input.name }) {
                return Slot(name: input.name, elementType: input.elementType, shape: declared.shape)
            }
            let perRow = Array((input.shape ?? [-1]).dropFirst()).map { $0 < 0 ? 1 : $0 }
            return Slot(name: input.name, elementType: input.elementType, shape: perRow)
        }
    }

    /// Inputs for one logged sample: each seeded by the input's recorded hash when there is one, else by the key's
    /// hash and the input's name; `copy` (a stand-in for a key the sampling left out) varies the seed.
    public func values(for sample: RequestLogSample, copy: Int = 0) -> [String: JSONValue] {
        var values: [String: JSONValue] = [:]
        for slot in slots {
            var seed =
                sample.inputHashes[slot.name] ?? KeyHash.value((sample.keyHash ?? "\(sample.at)") + "/" + slot.name)
            if copy > 0 { seed ^= KeyHash.value("copy \(copy)") }
            values[slot.name] = Self.value(slot, seed: seed)
        }
        return values
    }

    /// A value of the slot's shape, the same for the same seed.
    public static func value(_ slot: Slot, seed: UInt64) -> JSONValue {
        var state = seed
        func next() -> UInt64 {
            // SplitMix64.
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func element() -> JSONValue {
            let r = next()
            switch slot.elementType {
            case .float, .double:
                // Four decimals: short JSON, exact enough for a synthetic input.
                let unit = Double(r >> 11) / Double(1 << 53)
                return .number(((unit * 2 - 1) * 10_000).rounded() / 10_000)
            case .int64, .int32, .int8, .uint8: return .integer(Int64(r % 2))
            case .bool: return .bool(r % 2 == 1)
            case .string: return .string(["a", "b", "c"][Int(r % 3)])
            }
        }
        func nested(_ dimensions: ArraySlice<Int>) -> JSONValue {
            guard let count = dimensions.first else { return element() }
            return .array((0..<max(0, count)).map { _ in nested(dimensions.dropFirst()) })
        }
        return nested(slot.shape[...])
    }
}
