import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking TCP client on 127.0.0.1, for tests that must send exactly the bytes a hostile client would.
public final class RawSocket: @unchecked Sendable {
    private let fd: Int32
    public private(set) var closedByPeer = false

    public init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            Glibc.close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
    }

    deinit { Glibc.close(fd) }

    public func close() { shutdown(fd, Int32(SHUT_RDWR)) }

    public func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw POSIXError(.EPIPE) }
    }

    /// What arrives until `done` holds for it, the peer closes, or `timeout` seconds pass (a response's head and
    /// body may come in separate reads).
    public func receive(until done: (String) -> Bool, timeout: Int) -> String {
        let deadline = ContinuousClock.now + .seconds(timeout)
        var text = ""
        while !done(text) && !closedByPeer && ContinuousClock.now < deadline {
            text += receive(timeout: max(1, Int((deadline - ContinuousClock.now).components.seconds)))
        }
        return text
    }

    /// What arrives within `timeout` seconds (up to the first 64 KiB); sets `closedByPeer` on end of stream.
    public func receive(timeout: Int) -> String {
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n == 0 { closedByPeer = true }
        if n < 0, errno == ECONNRESET { closedByPeer = true }
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : ""
    }
}
