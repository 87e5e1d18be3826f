internal import NIOCore
internal import Synchronization

/// Caps the connections a server holds open: a connection accepted over the cap is closed at once, before a byte
/// of it is read. With the idle timeout (`server.idle_timeout`) this bounds what slow or half-open clients can hold.
final class ConnectionCounter: Sendable {
    let limit: Int
    private let open = Mutex(0)

    init(limit: Int) { self.limit = limit }

    /// Counts a new connection; `false` when it would exceed the limit (and is not counted).
    func admit() -> Bool {
        open.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func release() { open.withLock { $0 -= 1 } }

    /// Connections open now.
    var current: Int { open.withLock { $0 } }
}

/// The per-connection side of `ConnectionCounter`: takes a place when added to the connection's pipeline, closes the
/// connection as soon as it is active when there was none, and releases its place when the connection closes.
final class ConnectionLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let counter: ConnectionCounter
    private var admitted = false

    init(counter: ConnectionCounter) { self.counter = counter }

    func handlerAdded(context: ChannelHandlerContext) {
        admitted = counter.admit()
    }

    /// Closed only once the whole pipeline is active: closing while it is still being set up (in `handlerAdded`)
    /// makes NIO's async channel drop a writer it never finished, which traps ("Deinited NIOAsyncWriter without
    /// calling finish()"; seen in `make test`). Nothing has been read yet, so nothing reaches the router.
    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        if !admitted { context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // An over-cap connection is closing: what it sent is dropped.
        if admitted { context.fireChannelRead(data) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if admitted {
            admitted = false
            counter.release()
        }
    }
}
