/// A stable 64-bit hash of an entity key (FNV-1a), so that the request log can count distinct keys and
/// compare key sets without storing the keys themselves.
public enum KeyHash {
    /// 16 hex digits.
    public static func hex(_ key: String) -> String { hex(value: value(key)) }

    /// 16 hex digits of an already computed hash.
    public static func hex(value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The 64-bit FNV-1a hash.
    public static func value(_ key: String) -> UInt64 { value(bytes: key.utf8) }

    /// The 64-bit FNV-1a hash of bytes.
    public static func value(bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// Whether a key falls in the sampled share `rate` of the key space: every request for a sampled key is
    /// sampled, so the advisor sees each sampled key's full history. Mixed so that similar keys spread.
    public static func isSampled(_ hash: UInt64, rate: Double) -> Bool {
        guard rate < 1 else { return true }
        guard rate > 0 else { return false }
        var x = hash ^ (hash >> 31)
        x &*= 0x9e37_79b9_7f4a_7c15
        x ^= x >> 29
        return Double(x >> 11) / Double(UInt64(1) << 53) < rate
    }
}

/// Counts a snapshot's distinct keys as it is published (a source may repeat a key; the later row wins) by their
/// 64-bit hashes, without keeping the keys: exact unless two different keys share a hash (for n keys, a chance of
/// about n²/2⁶⁵ — under 10⁻⁸ for a million keys).
public struct DistinctKeyCounter: Sendable {
    /// An open-addressing table of the hashes seen (linear probing, at most half full); 0 marks an empty slot, so
    /// the hash 0 is tracked apart. The hashes are already well mixed, but FNV-1a's low bits follow the last byte
    /// closely, so the slot comes from a multiplicative mix of all 64 bits.
    private var slots: [UInt64]
    private var shift: UInt64
    private var sawZero = false
    public private(set) var count = 0

    /// A counter sized for about `expected` keys (it grows past that).
    public init(expected: Int = 0) {
        var capacity = 16
        while capacity < expected * 2 { capacity *= 2 }
        slots = Array(repeating: 0, count: capacity)
        shift = UInt64(64 - capacity.trailingZeroBitCount)
    }

    /// Adds one key's hash.
    public mutating func add(hash: UInt64) {
        guard hash != 0 else {
            if !sawZero {
                sawZero = true
                count += 1
            }
            return
        }
        if (count + 1) * 2 > slots.count { grow() }
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: (hash &* 0x9e37_79b9_7f4a_7c15) >> shift)
        slots.withUnsafeMutableBufferPointer { table in
            while true {
                let seen = table[slot]
                if seen == hash { return }
                if seen == 0 {
                    table[slot] = hash
                    count += 1
                    return
                }
                slot = (slot + 1) & mask
            }
        }
    }

    private mutating func grow() {
        let old = slots
        let zero = sawZero
        self = DistinctKeyCounter(expected: old.count)
        for hash in old where hash != 0 { add(hash: hash) }
        if zero { add(hash: 0) }
    }

    /// Adds the keys of one encoded chunk: length-prefixed byte strings (UInt32 little-endian length, then the
    /// bytes), the stores' chunk layout. Returns false when the encoding is cut short.
    public mutating func add(encodedKeys raw: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < raw.count {
            guard offset + 4 <= raw.count else { return false }
            let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            offset += 4
            guard offset + length <= raw.count else { return false }
            add(hash: KeyHash.value(bytes: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)])))
            offset += length
        }
        return true
    }
}
