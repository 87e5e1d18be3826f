/// A stable 64-bit hash of an entity key (FNV-1a), so that the request log can count distinct keys and
/// compare key sets without storing the keys themselves.
public enum KeyHash {
    /// 16 hex digits.
    public static func hex(_ key: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
