/// An error from loading or running a model. The `code` says what kind of problem it is; the message says
/// where (node name, operator, input) and never carries tensor contents.
public struct EngineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of error. A struct over a private enum, so new codes can be added without breaking callers.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case malformedModel, unsupportedOperator, unsupportedOpset, unsupportedType, invalidGraph
            case invalidShape, invalidArgument, invalidInput, tooLarge, io
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The file is not a readable ONNX protobuf.
        public static let malformedModel = Code(.malformedModel)
        /// A node uses an operator (or an operator version) the engine does not implement.
        public static let unsupportedOperator = Code(.unsupportedOperator)
        /// The model imports an operator set version the engine does not know.
        public static let unsupportedOpset = Code(.unsupportedOpset)
        /// An element type the engine does not compute with (float16, complex, …).
        public static let unsupportedType = Code(.unsupportedType)
        /// The graph is not executable: a cycle, a name nothing produces, a duplicate output.
        public static let invalidGraph = Code(.invalidGraph)
        /// A tensor's shape does not fit what an operator needs.
        public static let invalidShape = Code(.invalidShape)
        /// An attribute or argument value is out of range.
        public static let invalidArgument = Code(.invalidArgument)
        /// The caller's input does not match the model's declared inputs.
        public static let invalidInput = Code(.invalidInput)
        /// A tensor would exceed the engine's size limit.
        public static let tooLarge = Code(.tooLarge)
        /// The model file could not be read.
        public static let io = Code(.io)

        public var description: String { base.rawValue }
    }

    /// The kind of error.
    public var code: Code
    /// What went wrong and where.
    public var message: String

    /// Makes an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
