/// Which IP addresses a webhook may be delivered to: every special-purpose range of the IANA IPv4 and IPv6
/// special-purpose address registries is refused, except loopback and private/link-local when the manifest allows
/// them (`server.webhooks.allow_loopback`, `allow_private`). Pure logic: the caller resolves the name and hands over
/// the raw addresses, then connects to one of the addresses it checked (never resolves again).
///
/// IPv4 embedded in IPv6:
/// - IPv4-mapped `::ffff:0:0/96` is judged as the IPv4 address it carries, allowances included: a dual-stack socket
///   connecting to `::ffff:a.b.c.d` reaches `a.b.c.d` on this machine's IPv4 stack.
/// - NAT64 `64:ff9b::/96` (RFC 6052, what DNS64 synthesises for IPv4-only hosts on IPv6-only networks) is judged as
///   the IPv4 address it carries by the strict rules (no allowances: the gateway, not this machine, reaches it), so a
///   public IPv4 host behind NAT64 still works while `64:ff9b::a9fe:a9fe` (169.254.169.254) is refused.
/// - Every other embedding is refused outright, whatever it carries: IPv4-compatible `::/96` (deprecated,
///   RFC 4291), IPv4-translated `::ffff:0:0:0/96` (SIIT), local-use NAT64 `64:ff9b:1::/48` (RFC 8215; its
///   embedding depends on a site-chosen prefix length, so the IPv4 part cannot be read reliably), 6to4
///   `2002::/16` (deprecated, RFC 7526) and Teredo (inside `2001::/23`). None is needed to reach a public host.
///
/// Anything outside global unicast `2000::/3` is refused as reserved, so IPv6 space IANA has not assigned yet is
/// refused too.
public struct WebhookAddressPolicy: Sendable, Equatable {
    /// Why an address is refused: a stable short text, shown to operators (store and log) and at submission.
    public struct Refusal: Sendable, Hashable, CustomStringConvertible {
        public let description: String
        private init(_ description: String) { self.description = description }

        /// 127.0.0.0/8, ::1 (allowed with `allowLoopback`).
        public static let loopback = Refusal("a loopback address")
        /// 10/8, 172.16/12, 192.168/16, 100.64/10 (shared, carrier-grade NAT), fc00::/7, fec0::/10 (deprecated
        /// site-local) (allowed with `allowPrivate`).
        public static let privateAddress = Refusal("a private address")
        /// 169.254/16, fe80::/10 (allowed with `allowPrivate`).
        public static let linkLocal = Refusal("a link-local address")
        /// 0.0.0.0/8, `::`.
        public static let unspecified = Refusal("an unspecified ('this network') address")
        /// 224/4, ff00::/8.
        public static let multicast = Refusal("a multicast address")
        /// 240/4 (future use), 255.255.255.255.
        public static let reservedIPv4 = Refusal("a reserved or broadcast address")
        /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
        public static let documentation = Refusal("a documentation address")
        /// 198.18/15 (benchmarking).
        public static let benchmarking = Refusal("a benchmarking address")
        /// 192.0.0.0/24, 192.88.99.0/24 (6to4 relay anycast), 2001::/23 (Teredo, benchmarking, ORCHID…).
        public static let protocolAssignment = Refusal("an IETF protocol-assignment address")
        /// 100::/64 (discard-only), 100:0:0:1::/64 (dummy prefix).
        public static let discard = Refusal("a discard-only address")
        /// 5f00::/16 (SRv6 segment identifiers) and everything outside 2000::/3 not listed above.
        public static let reservedIPv6 = Refusal("a reserved IPv6 address")
        /// ::/96, ::ffff:0:0:0/96, 64:ff9b:1::/48, 2002::/16: prefixes that embed an IPv4 address, refused outright.
        public static let embeddedIPv4 = Refusal("an IPv6 address that embeds an IPv4 address")
        /// Neither 4 nor 16 bytes.
        public static let notAnAddress = Refusal("not an IP address")
    }

    /// Whether loopback targets (127.0.0.0/8, ::1 and their IPv4-mapped form) are allowed.
    public var allowLoopback: Bool
    /// Whether private, shared (100.64/10) and link-local targets are allowed.
    public var allowPrivate: Bool

    /// A policy; by default only publicly routable unicast addresses are allowed.
    public init(allowLoopback: Bool = false, allowPrivate: Bool = false) {
        self.allowLoopback = allowLoopback
        self.allowPrivate = allowPrivate
    }

    /// Why `address` (4 bytes for IPv4, 16 for IPv6, network order) may not be a webhook target; `nil`: allowed.
    public func refusal(address: [UInt8]) -> Refusal? {
        switch address.count {
        case 4: return refusal(ipv4: address[0], address[1], address[2], address[3])
        case 16: return refusal(ipv6: address)
        default: return .notAnAddress
        }
    }

    private func refusal(ipv4 a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> Refusal? {
        switch a {
        case 0: return .unspecified
        case 10: return allowPrivate ? nil : .privateAddress
        case 100 where (64...127).contains(b): return allowPrivate ? nil : .privateAddress
        case 127: return allowLoopback ? nil : .loopback
        case 169 where b == 254: return allowPrivate ? nil : .linkLocal
        case 172 where (16...31).contains(b): return allowPrivate ? nil : .privateAddress
        case 192 where b == 168: return allowPrivate ? nil : .privateAddress
        case 192 where b == 0 && c == 0: return .protocolAssignment
        case 192 where b == 0 && c == 2: return .documentation
        case 192 where b == 88 && c == 99: return .protocolAssignment
        case 198 where b == 18 || b == 19: return .benchmarking
        case 198 where b == 51 && c == 100: return .documentation
        case 203 where b == 0 && c == 113: return .documentation
        case 224...239: return .multicast
        case 240...255: return .reservedIPv4
        default: return nil
        }
    }

    private func refusal(ipv6 x: [UInt8]) -> Refusal? {
        // The address as eight 16-bit groups, as written.
        let g = (0..<8).map { UInt16(x[2 * $0]) << 8 | UInt16(x[2 * $0 + 1]) }
        if g[0..<6].allSatisfy({ $0 == 0 }) {
            if g[6] == 0 && g[7] == 0 { return .unspecified }
            if g[6] == 0 && g[7] == 1 { return allowLoopback ? nil : .loopback }
            return .embeddedIPv4  // IPv4-compatible ::/96
        }
        if g[0..<5].allSatisfy({ $0 == 0 }) && g[5] == 0xffff {  // IPv4-mapped ::ffff:0:0/96
            return refusal(ipv4: x[12], x[13], x[14], x[15])
        }
        if g[0..<4].allSatisfy({ $0 == 0 }) && g[4] == 0xffff && g[5] == 0 {  // IPv4-translated ::ffff:0:0:0/96
            return .embeddedIPv4
        }
        if g[0] == 0x64 && g[1] == 0xff9b {
            if g[2..<6].allSatisfy({ $0 == 0 }) {  // NAT64 64:ff9b::/96, judged without allowances
                return WebhookAddressPolicy().refusal(ipv4: x[12], x[13], x[14], x[15])
            }
            if g[2] == 1 { return .embeddedIPv4 }  // local-use NAT64 64:ff9b:1::/48
        }
        if g[0] == 0x0100 && g[1] == 0 && g[2] == 0 && (g[3] == 0 || g[3] == 1) { return .discard }
        if g[0] == 0x2001 && g[1] < 0x0200 { return .protocolAssignment }  // 2001::/23
        if g[0] == 0x2001 && g[1] == 0x0db8 { return .documentation }
        if g[0] == 0x2002 { return .embeddedIPv4 }  // 6to4
        if g[0] == 0x3fff && g[1] < 0x1000 { return .documentation }  // 3fff::/20
        if g[0] == 0x5f00 { return .reservedIPv6 }
        if g[0] & 0xff00 == 0xff00 { return .multicast }
        if g[0] & 0xffc0 == 0xfe80 { return allowPrivate ? nil : .linkLocal }
        if g[0] & 0xffc0 == 0xfec0 { return allowPrivate ? nil : .privateAddress }
        if g[0] & 0xfe00 == 0xfc00 { return allowPrivate ? nil : .privateAddress }
        if g[0] & 0xe000 != 0x2000 { return .reservedIPv6 }  // outside global unicast 2000::/3
        return nil
    }
}
