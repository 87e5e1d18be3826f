internal import Foundation
public import Logging
internal import Synchronization

/// Log lines on standard error, in the layout of swift-log's `StreamLogHandler`
/// (`2026-11-29T18:00:00+0000 info freshline : key=value [module] message`), except that metadata is turned into
/// text only when a line is written. `StreamLogHandler` formats it whenever it changes, and Hummingbird gives every
/// request's logger its own request id: that formatting cost about 4% of a lookup's CPU (measured with perf on
/// `bench/batch-serving`'s lookups) although nothing is logged per request.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata = Logger.Metadata()
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String

    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        // Precedence as in StreamLogHandler: the logger's own, then the provider's, then the call's, then the error.
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let explicit = event.metadata { all.merge(explicit) { _, new in new } }
        if let error = event.error {
            all["error.message"] = "\(error)"
            all["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        let pretty =
            all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: " ")
        let text = "\(Self.timestamp()) \(event.level) \(label) :\(pretty) [\(event.source)] \(event.message)\n"
        Self.output.withLock { _ in FileHandle.standardError.write(Data(text.utf8)) }
    }

    /// One writer at a time, so that lines from several threads do not interleave.
    private static let output = Mutex(())

    private static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
