public import Hummingbird
public import NIOCore

/// Runs a test server for the rest of the test process instead of stopping it when its test ends.
///
/// Stopping a Hummingbird (NIO async) server while a connection is being accepted can drop that connection before
/// anything serves it, and NIO traps on the dropped connection's writer ("Deinited NIOAsyncWriter without calling
/// finish()", swift-nio issues 2637 and 2813, open): the whole test process dies. A test double whose clients may
/// still connect as its test ends (a retry, a pooled connection opening) is therefore never stopped; it costs a
/// listening socket until the process exits.
public enum ResidentServer {
    /// Starts the application `make` builds (it must pass `onServerRunning` to its `Application`) and returns the
    /// port it listens on.
    public static func start<App: ApplicationProtocol>(
        _ make: (_ onServerRunning: @escaping @Sendable (any Channel) async -> Void) -> App
    ) async throws -> Int {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = make { channel in
            continuation.yield(channel.localAddress?.port ?? 0)
            continuation.finish()
        }
        // Unstructured on purpose: it outlives the test (see above). No signal handlers: the test process owns them.
        Task { try? await app.runService(gracefulShutdownSignals: []) }
        for await port in ports where port > 0 { return port }
        throw ResidentServerError(description: "the test server did not start listening")
    }
}

/// Why a resident server could not start.
public struct ResidentServerError: Error, CustomStringConvertible {
    public var description: String
}
