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
///
/// The hashes are collected as they come and counted once, at `count`: split by their top bits into buckets of
/// about 1,024, each counted in a small table that stays in the processor's cache. One table for every key took
/// a cache miss per key, the end of every run's publish (~65 ms for 900k keys, on one core).
public struct DistinctKeyCounter: Sendable {
    private var hashes: [UInt64] = []

    /// A counter with room for about `expected` keys (it grows past that).
    public init(expected: Int = 0) {
        hashes.reserveCapacity(expected)
    }

    /// Adds one key's hash.
    public mutating func add(hash: UInt64) {
        hashes.append(hash)
    }

    /// The number of distinct hashes added: counted on each call, in time and memory linear in the hashes added
    /// (repeats included).
    public func distinctCount() -> Int { Self.distinct(hashes) }

    static func distinct(_ hashes: [UInt64]) -> Int {
        let n = hashes.count
        guard n > 1 else { return n }
        // FNV-1a's low bits follow the last byte closely: buckets and slots come from a multiplicative mix of all
        // 64 bits (odd, so two hashes mix equal only when they are equal; 0 stays 0 and marks an empty slot).
        let mix: UInt64 = 0x9e37_79b9_7f4a_7c15
        var bits = 0
        while bits < 20 && n >> bits > 1024 { bits += 1 }
        let buckets = 1 << bits
        @inline(__always) func bucket(_ mixed: UInt64) -> Int {
            // (`>>` by 64 would give 0 too: Swift's shifts past the width are defined; the test says what is meant.)
            bits == 0 ? 0 : Int(truncatingIfNeeded: mixed >> UInt64(64 - bits))
        }
        // Counting sort of the mixed hashes by bucket.
        var starts = [Int](repeating: 0, count: buckets + 1)
        var sawZero = false
        for hash in hashes {
            starts[bucket(hash &* mix) + 1] += 1
            if hash == 0 { sawZero = true }
        }
        for b in 0..<buckets { starts[b + 1] += starts[b] }
        var largest = 0
        for b in 0..<buckets { largest = max(largest, starts[b + 1] - starts[b]) }
        var sorted = [UInt64](repeating: 0, count: n)
        var next = starts
        for hash in hashes {
            let mixed = hash &* mix
            let b = bucket(mixed)
            sorted[next[b]] = mixed
            next[b] += 1
        }
        // Each bucket into a table at most half full (linear probing), slots from the bits below the bucket's.
        var capacity = 16
        while capacity < largest * 2 { capacity *= 2 }
        let slotShift = UInt64(64 - capacity.trailingZeroBitCount)
        let mask = capacity - 1
        var table = [UInt64](repeating: 0, count: capacity)
        var count = sawZero ? 1 : 0
        sorted.withUnsafeBufferPointer { sorted in
            table.withUnsafeMutableBufferPointer { table in
                for b in 0..<buckets {
                    let slice = starts[b]..<starts[b + 1]
                    for i in slice {
                        let mixed = sorted[i]
                        if mixed == 0 { continue }
                        var slot = Int(truncatingIfNeeded: (mixed << UInt64(bits)) >> slotShift)
                        while true {
                            let seen = table[slot]
                            if seen == mixed { break }
                            if seen == 0 {
                                table[slot] = mixed
                                count += 1
                                break
                            }
                            slot = (slot + 1) & mask
                        }
                    }
                    // Cleared for the next bucket: only the slots this one filled.
                    for i in slice {
                        let mixed = sorted[i]
                        if mixed == 0 { continue }
                        var slot = Int(truncatingIfNeeded: (mixed << UInt64(bits)) >> slotShift)
                        while table[slot] != 0 {
                            table[slot] = 0
                            slot = (slot + 1) & mask
                        }
                    }
                }
            }
        }
        return count
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
