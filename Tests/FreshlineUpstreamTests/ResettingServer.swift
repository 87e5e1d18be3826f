import NIOCore
import NIOPosix
import Synchronization

/// A test double of an upstream whose connections break: it accepts a connection, waits for the request, and
/// closes the connection without answering. Hummingbird cannot do that from a handler, hence a raw NIO server. It
/// counts the requests it broke. (A true RST needs SO_LINGER 0, which NIO's socket options cannot set: its option
/// values are integers; to the client both are a connection that ends before the answer.)
final class ResettingServer: Sendable {
    private let channel: any Channel
    private let counter: ResetCounter

    private init(channel: any Channel, counter: ResetCounter) {
        self.channel = channel
        self.counter = counter
    }

    static func start() async throws -> ResettingServer {
        let counter = ResetCounter()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ResetHandler(counter: counter))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ResettingServer(channel: channel, counter: counter)
    }

    var url: String { "http://127.0.0.1:\(channel.localAddress?.port ?? 0)" }
    var resets: Int { counter.value }

    func stop() async throws { try await channel.close() }
}

final class ResetCounter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

private final class ResetHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let counter: ResetCounter
    var reset = false

    init(counter: ResetCounter) { self.counter = counter }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !reset else { return }
        reset = true
        counter.increment()
        context.close(promise: nil)
    }
}
