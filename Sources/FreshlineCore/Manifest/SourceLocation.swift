/// A place in a manifest file: the file, the 1-based line and the key path (`features.fraud.latency_budget`).
public struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var keyPath: String

    public init(file: String, line: Int, keyPath: String) {
        self.file = file
        self.line = line
        self.keyPath = keyPath
    }

    public var description: String { "\(file):\(line): \(keyPath)" }
}

/// A problem in a manifest, located precisely enough to fix without searching.
public struct ManifestError: Error, Sendable, Equatable, CustomStringConvertible {
    public var location: SourceLocation
    public var message: String

    public init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    /// `file:line: key: message`, the format editors and CI logs recognise.
    public var description: String { "\(location.file):\(location.line): \(location.keyPath): \(message)" }
}

/// All the problems found in a manifest; `freshline check` prints each on its own line.
public struct ManifestErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ManifestError]
    public init(_ errors: [ManifestError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
