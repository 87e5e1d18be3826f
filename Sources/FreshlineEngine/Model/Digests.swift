internal import Crypto
public import Foundation

/// SHA-256 digests as the API and the model metadata show them (lowercase hex), over swift-crypto.
public enum Digests {
    /// The SHA-256 of `bytes`, in hex.
    public static func sha256Hex(_ bytes: some DataProtocol) -> String { hex(SHA256.hash(data: bytes)) }

    /// HMAC-SHA256 of `message` under `key`, in hex: the webhook signature's `v1`.
    public static func hmacSHA256Hex(key: [UInt8], message: some DataProtocol) -> String {
        hex(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    /// Bytes as lowercase hex digits, two per byte.
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
