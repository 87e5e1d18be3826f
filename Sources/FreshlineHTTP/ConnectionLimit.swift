internal import NIOCore
internal import Synchronization

/// A count with an upper bound, shared between threads: connections open (`ConnectionLimitHandler`) and real-time
/// requests in flight (`InFlightLimit`).
final class BoundedCounter: Sendable {
    let limit: Int
    private let count = Mutex(0)

    init(limit: Int) { self.limit = limit }

    /// Counts one more, unless `limit` are counted already (then it is not counted).
    func enter() -> Bool {
        count.withLock { n in
            guard n < limit else { return false }
            n += 1
            return true
        }
    }

    func leave() { count.withLock { $0 -= 1 } }

    /// The count now.
    var current: Int { count.withLock { $0 } }
}

/// Caps the connections a server holds open (`server.max_connections`; one `BoundedCounter` for the server, a handler
/// per connection): with the idle timeout this bounds what slow or half-open clients can hold. The handler takes a
/// place when added to the connection's pipeline, closes the
/// connection as soon as it is active when there was none, and releases its place when the connection closes.
final class ConnectionLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let counter: BoundedCounter
    private var admitted = false

    init(counter: BoundedCounter) { self.counter = counter }

    func handlerAdded(context: ChannelHandlerContext) {
        admitted = counter.enter()
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
            counter.leave()
        }
    }
}
