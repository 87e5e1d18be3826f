import Foundation
import FreshlineCore
import Testing

/// The bytes of an IPv4 or IPv6 literal, by the C library's parser (the one the dispatcher's resolver feeds).
private func bytes(_ text: String) -> [UInt8] {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: v4) { Array($0) } }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: v6) { Array($0) } }
    Issue.record("'\(text)' is not an address")
    return []
}

/// One row of the table: the address, its verdict by default, and whether `allow_loopback`/`allow_private`
/// open it (otherwise the allowances change nothing).
struct PolicyRow: Sendable, CustomTestStringConvertible {
    var address: String
    var strict: WebhookAddressPolicy.Refusal?
    var permissive: WebhookAddressPolicy.Refusal?
    var testDescription: String { address }

    init(_ address: String, _ strict: WebhookAddressPolicy.Refusal?, allowable: Bool = false) {
        self.address = address
        self.strict = strict
        permissive = allowable ? nil : strict
    }
}

private typealias Row = PolicyRow

private let table: [Row] = [
    // IPv4: public unicast, and the edges of each special range.
    Row("93.184.216.34", nil), Row("8.8.8.8", nil), Row("1.1.1.1", nil), Row("223.255.255.255", nil),
    Row("0.0.0.0", .unspecified), Row("0.1.2.3", .unspecified),
    Row("10.0.0.1", .privateAddress, allowable: true), Row("10.255.255.255", .privateAddress, allowable: true),
    Row("11.0.0.1", nil),
    Row("100.63.255.255", nil), Row("100.64.0.1", .privateAddress, allowable: true),
    Row("100.127.255.255", .privateAddress, allowable: true),
    Row("100.128.0.0", nil),
    Row("127.0.0.1", .loopback, allowable: true), Row("127.255.255.254", .loopback, allowable: true),
    Row("128.0.0.1", nil),
    Row("169.254.169.254", .linkLocal, allowable: true), Row("169.253.0.1", nil), Row("169.255.0.1", nil),
    Row("172.15.255.255", nil), Row("172.16.0.1", .privateAddress, allowable: true),
    Row("172.31.255.255", .privateAddress, allowable: true),
    Row("172.32.0.1", nil),
    Row("192.0.0.1", .protocolAssignment), Row("192.0.0.170", .protocolAssignment), Row("192.0.1.1", nil),
    Row("192.0.2.1", .documentation), Row("192.0.3.1", nil), Row("192.88.99.1", .protocolAssignment),
    Row("192.168.1.1", .privateAddress, allowable: true), Row("192.169.0.1", nil), Row("192.167.255.255", nil),
    Row("198.17.255.255", nil), Row("198.18.0.1", .benchmarking), Row("198.19.255.255", .benchmarking),
    Row("198.20.0.0", nil), Row("198.51.100.7", .documentation), Row("198.51.101.7", nil),
    Row("203.0.113.9", .documentation), Row("203.0.114.9", nil),
    Row("224.0.0.1", .multicast), Row("239.255.255.250", .multicast),
    Row("240.0.0.1", .reservedIPv4), Row("255.255.255.255", .reservedIPv4),
    // IPv6: unspecified, loopback, public.
    Row("::", .unspecified), Row("::1", .loopback, allowable: true),
    Row("2606:4700:4700::1111", nil), Row("2a00:1450:4001::1", nil), Row("2001:200::1", nil), Row("2001:db9::1", nil),
    Row("3fff:1000::1", nil), Row("3ffe::1", nil),
    // IPv4-compatible ::/96: refused outright, whatever it carries.
    Row("::2", .embeddedIPv4), Row("::127.0.0.1", .embeddedIPv4), Row("::8.8.8.8", .embeddedIPv4),
    // IPv4-mapped ::ffff:0:0/96: judged as the IPv4 address, allowances included.
    Row("::ffff:127.0.0.1", .loopback, allowable: true), Row("::ffff:169.254.169.254", .linkLocal, allowable: true),
    Row("::ffff:10.0.0.1", .privateAddress, allowable: true), Row("::ffff:198.18.0.1", .benchmarking),
    Row("::ffff:0.0.0.0", .unspecified), Row("::ffff:8.8.8.8", nil),
    // IPv4-translated ::ffff:0:0:0/96: refused outright.
    Row("::ffff:0:7f00:1", .embeddedIPv4), Row("::ffff:0:808:808", .embeddedIPv4),
    // NAT64 64:ff9b::/96: judged as the IPv4 address without allowances; local-use 64:ff9b:1::/48 refused.
    Row("64:ff9b::a9fe:a9fe", .linkLocal), Row("64:ff9b::7f00:1", .loopback), Row("64:ff9b::a00:1", .privateAddress),
    Row("64:ff9b::c000:201", .documentation), Row("64:ff9b::808:808", nil),
    Row("64:ff9b:1::1", .embeddedIPv4), Row("64:ff9b:1:ffff::808:808", .embeddedIPv4),
    Row("64:ff9a::1", .reservedIPv6),
    // 6to4 2002::/16: refused outright.
    Row("2002:7f00:1::", .embeddedIPv4), Row("2002:808:808::1", .embeddedIPv4), Row("2003::1", nil),
    // 2001::/23 (Teredo 2001::/32, benchmarking 2001:2::/48, ORCHIDv2 2001:20::/28…).
    Row("2001::1", .protocolAssignment), Row("2001:0:4136:e378:8000:63bf:3fff:fdd2", .protocolAssignment),
    Row("2001:2::1", .protocolAssignment), Row("2001:20::1", .protocolAssignment),
    Row("2001:1ff:ffff::1", .protocolAssignment),
    // Documentation, discard, SRv6, reserved.
    Row("2001:db8::1", .documentation), Row("2001:db8:ffff::1", .documentation),
    Row("3fff::1", .documentation), Row("3fff:fff:ffff::1", .documentation),
    Row("100::1", .discard), Row("100::ffff:ffff:ffff:ffff", .discard), Row("100:0:0:1::1", .discard),
    Row("100:0:0:2::1", .reservedIPv6), Row("5f00::1", .reservedIPv6),
    Row("1::1", .reservedIPv6), Row("4000::1", .reservedIPv6), Row("e000::1", .reservedIPv6),
    // Unique local, link-local, deprecated site-local, multicast.
    Row("fc00::1", .privateAddress, allowable: true), Row("fd12:3456:789a::1", .privateAddress, allowable: true),
    Row("fe80::1", .linkLocal, allowable: true), Row("febf:ffff::1", .linkLocal, allowable: true),
    Row("fec0::1", .privateAddress, allowable: true), Row("feff::1", .privateAddress, allowable: true),
    Row("ff02::1", .multicast), Row("ff0e::1", .multicast), Row("ff00::", .multicast),
]

/// The webhook address policy: every special-purpose range of the IANA registries is refused, with the reason;
/// the manifest's allowances open loopback and private/link-local only.
@Suite("Webhook address policy")
struct WebhookAddressPolicyTests {
    @Test("refused by default, with the reason", arguments: table)
    func strict(_ row: PolicyRow) {
        #expect(WebhookAddressPolicy().refusal(address: bytes(row.address)) == row.strict)
    }

    @Test("with allow_loopback and allow_private", arguments: table)
    func permissive(_ row: PolicyRow) {
        let policy = WebhookAddressPolicy(allowLoopback: true, allowPrivate: true)
        #expect(policy.refusal(address: bytes(row.address)) == row.permissive)
    }

    @Test("each allowance opens only its own ranges")
    func allowances() {
        let loopback = WebhookAddressPolicy(allowLoopback: true)
        #expect(loopback.refusal(address: bytes("127.0.0.1")) == nil)
        #expect(loopback.refusal(address: bytes("::1")) == nil)
        #expect(loopback.refusal(address: bytes("::ffff:127.0.0.1")) == nil)
        #expect(loopback.refusal(address: bytes("10.0.0.1")) == .privateAddress)
        #expect(loopback.refusal(address: bytes("fe80::1")) == .linkLocal)
        #expect(loopback.refusal(address: bytes("::127.0.0.1")) == .embeddedIPv4)
        #expect(loopback.refusal(address: bytes("64:ff9b::7f00:1")) == .loopback)
        let lan = WebhookAddressPolicy(allowPrivate: true)
        #expect(lan.refusal(address: bytes("127.0.0.1")) == .loopback)
        #expect(lan.refusal(address: bytes("::1")) == .loopback)
        #expect(lan.refusal(address: bytes("192.168.1.1")) == nil)
        #expect(lan.refusal(address: bytes("169.254.169.254")) == nil)
        #expect(lan.refusal(address: bytes("64:ff9b::a9fe:a9fe")) == .linkLocal)
        #expect(lan.refusal(address: bytes("198.18.0.1")) == .benchmarking)
    }

    @Test("neither 4 nor 16 bytes is not an address")
    func malformed() {
        #expect(WebhookAddressPolicy().refusal(address: []) == .notAnAddress)
        #expect(WebhookAddressPolicy().refusal(address: [1, 2, 3]) == .notAnAddress)
        #expect(WebhookAddressPolicy().refusal(address: [UInt8](repeating: 8, count: 15)) == .notAnAddress)
    }

    @Test("the settings' problem text is the policy's reason")
    func settings() {
        #expect(WebhookSettings().problem(address: bytes("127.0.0.1")) == "a loopback address")
        #expect(WebhookSettings().problem(address: bytes("10.0.0.1")) == "a private address")
        #expect(WebhookSettings().problem(address: bytes("8.8.8.8")) == nil)
        #expect(WebhookSettings(allowLoopback: true).problem(address: bytes("127.0.0.1")) == nil)
        #expect(WebhookSettings(allowPrivate: true).problem(address: bytes("fec0::1")) == nil)
    }

    @Test(
        "what a submitter sees of an attempt: the outcome and the status class",
        arguments: [
            (200, nil, "delivered", "2xx"), (204, nil, "delivered", "2xx"),
            (302, "answered 302 (redirects are not followed)", "failed", "3xx"), (404, "answered 404", "failed", "4xx"),
            (503, "answered 503", "failed", "5xx"), (nil, "connection refused", "failed", "none"),
            (nil, "the host 'x' resolves to a loopback address", "failed", "none"),
            (101, "answered 101", "failed", "1xx"),
            (200, "body too large", "failed", "2xx"),
        ] as [(Int?, String?, String, String)])
    func attemptSummary(status: Int?, error: String?, outcome: String, statusClass: String) {
        let attempt = WebhookAttempt(deliveryID: "whd_1", attempt: 1, at: 0, status: status, error: error)
        #expect(attempt.outcome == outcome)
        #expect(attempt.statusClass == statusClass)
    }
}
