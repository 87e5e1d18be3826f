/// What a model declares about itself: inputs, outputs, operator sets, operators and version.
public struct ModelMetadata: Sendable, Equatable {
    /// The type of a graph input or output.
    public enum ValueType: Sendable, Equatable, CustomStringConvertible {
        /// A tensor; `shape` has `-1` for a variable dimension, and is `nil` when the model declares no shape.
        case tensor(ElementType, shape: [Int]?)
        /// A sequence of maps, one per row (ZipMap's output).
        case mapSequence(key: ElementType, value: ElementType)

        public var description: String {
            switch self {
            case .tensor(let type, let shape):
                "tensor(\(type))"
                    + (shape.map { "[" + $0.map { $0 < 0 ? "?" : String($0) }.joined(separator: ",") + "]" } ?? "")
            case .mapSequence(let key, let value): "seq(map(\(key),tensor(\(value))))"
            }
        }
    }

    /// A named graph input or output.
    public struct ValueInfo: Sendable, Equatable {
        /// The name callers use.
        public var name: String
        /// The declared type.
        public var type: ValueType
        /// Names of symbolic dimensions (`N`, `batch`) by position, where the model gives one.
        public var dimensionNames: [String?]

        public init(name: String, type: ValueType, dimensionNames: [String?] = []) {
            self.name = name
            self.type = type
            self.dimensionNames = dimensionNames
        }

        /// The element type for tensors, or the map's value type for map sequences.
        public var elementType: ElementType {
            switch type {
            case .tensor(let t, _): t
            case .mapSequence(_, let v): v
            }
        }
        /// The declared shape of a tensor (`-1` for variable dimensions); `nil` if undeclared or not a tensor.
        public var shape: [Int]? {
            if case .tensor(_, let shape) = type { shape } else { nil }
        }
    }

    /// Inputs the caller must feed (initializers excluded).
    public var inputs: [ValueInfo]
    /// Outputs the model produces.
    public var outputs: [ValueInfo]
    /// Imported operator sets: domain (`ai.onnx`, `ai.onnx.ml`) → version.
    public var opsets: [String: Int]
    /// Operators used, `domain:op` for non-default domains, with how many nodes use each.
    public var operators: [String: Int]
    /// The ONNX IR version.
    public var irVersion: Int
    /// The exporting tool and its version, as the file records them.
    public var producer: String
    /// The file size in bytes.
    public var sizeBytes: Int
    /// The SHA-256 of the file, hex: the model's version.
    public var sha256: String

    /// The version a model served from elsewhere reports (an upstream server's model version); `nil` for a file.
    public var remoteVersion: String?

    /// A short model version: the first 12 hex digits of the SHA-256, or the upstream's own version.
    public var version: String { remoteVersion ?? String(sha256.prefix(12)) }

    init(
        inputs: [ValueInfo], outputs: [ValueInfo], opsets: [String: Int], operators: [String: Int], irVersion: Int,
        producer: String, sizeBytes: Int, sha256: String
    ) {
        self.inputs = inputs
        self.outputs = outputs
        self.opsets = opsets
        self.operators = operators
        self.irVersion = irVersion
        self.producer = producer
        self.sizeBytes = sizeBytes
        self.sha256 = sha256
    }

    /// The metadata of a model that runs elsewhere (an upstream server): its inputs and outputs, who serves it
    /// (`producer`) and the version it reports. No file: no operators, size or digest.
    public init(remoteInputs inputs: [ValueInfo], outputs: [ValueInfo], producer: String, version: String) {
        self.inputs = inputs
        self.outputs = outputs
        opsets = [:]
        operators = [:]
        irVersion = 0
        self.producer = producer
        sizeBytes = 0
        sha256 = ""
        remoteVersion = version
    }
}

extension ModelMetadata {
    /// Checks that `feeds` holds every input with its declared element type, rank and fixed dimensions.
    public func validate(_ feeds: [String: Tensor]) throws {
        for input in inputs {
            guard let tensor = feeds[input.name] else {
                throw EngineError(.invalidInput, "input '\(input.name)' is missing")
            }
            try Self.check(tensor, against: input)
        }
    }

    static func check(_ tensor: Tensor, against info: ValueInfo) throws {
        guard case .tensor(let type, let shape) = info.type else { return }
        guard tensor.elementType == type else {
            throw EngineError(.invalidInput, "input '\(info.name)' must be \(type), got \(tensor.elementType)")
        }
        guard let shape else { return }
        guard tensor.rank == shape.count else {
            throw EngineError(
                .invalidInput,
                "input '\(info.name)' must have \(shape.count) dimensions \(info.type), got shape \(tensor.shape)")
        }
        for (axis, (expected, actual)) in zip(shape, tensor.shape).enumerated()
        where expected >= 0 && expected != actual {
            throw EngineError(
                .invalidInput, "input '\(info.name)' dimension \(axis) must be \(expected), got \(actual)")
        }
    }
}
