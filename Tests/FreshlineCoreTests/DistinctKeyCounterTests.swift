import Testing

@testable import FreshlineCore

@Suite("Distinct key counter")
struct DistinctKeyCounterTests {
    @Test("counts what a set of the hashes counts: repeats, the hash 0, colliding slots, growth past the expected size")
    func agreesWithASet() {
        var generator = SystemRandomNumberGenerator()
        for expected in [0, 10, 5000] {
            var counter = DistinctKeyCounter(expected: expected)
            var reference = Set<UInt64>()
            // Few distinct values among many draws (repeats), values that differ only in high bits (the same low
            // bits), and 0.
            let pool =
                (0..<3000).map { _ in UInt64.random(in: 1...UInt64.max, using: &generator) }
                + (0..<200).map { UInt64($0) << 48 } + [0, 1]
            for _ in 0..<20000 {
                let hash = pool.randomElement(using: &generator)!
                counter.add(hash: hash)
                reference.insert(hash)
            }
            #expect(counter.distinctCount() == reference.count, "expected \(expected)")
        }
    }

    @Test("counts a large set the same way: many buckets, each bucket's table reused")
    func large() {
        var generator = SystemRandomNumberGenerator()
        let pool = (0..<120_000).map { _ in UInt64.random(in: 0...UInt64.max, using: &generator) } + [0]
        var counter = DistinctKeyCounter()
        var reference = Set<UInt64>()
        for _ in 0..<300_000 {
            let hash = pool.randomElement(using: &generator)!
            counter.add(hash: hash)
            reference.insert(hash)
        }
        #expect(counter.distinctCount() == reference.count)
        // Hashes that mix to numbers with their top 8 bits clear (r >> 8 times the mix's inverse, r random) all fall
        // in the first bucket: its table is sized for it, and the other buckets are counted in the same table after
        // it is cleared.
        let mix: UInt64 = 0x9e37_79b9_7f4a_7c15
        var inverse = mix
        for _ in 0..<6 { inverse = inverse &* (2 &- mix &* inverse) }
        #expect(mix &* inverse == 1)
        let low = Set((0..<40_000).map { _ in UInt64.random(in: 1...UInt64.max, using: &generator) >> 8 })
        var skewed = DistinctKeyCounter()
        var skewedReference = Set<UInt64>()
        for r in low { skewed.add(hash: r &* inverse) }
        for _ in 0..<60_000 {
            let hash = UInt64.random(in: 1...UInt64.max, using: &generator)
            skewed.add(hash: hash)
            skewedReference.insert(hash)
        }
        for r in low where r % 3 == 0 { skewed.add(hash: r &* inverse) }
        for r in low { skewedReference.insert(r &* inverse) }
        #expect(skewed.distinctCount() == skewedReference.count)
    }

    @Test("reads the stores' encoded key chunks; a chunk cut short is refused")
    func encodedKeys() {
        func encode(_ keys: [String]) -> [UInt8] {
            var bytes: [UInt8] = []
            for key in keys {
                let length = UInt32(key.utf8.count)
                bytes += (0..<4).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) } + Array(key.utf8)
            }
            return bytes
        }
        var counter = DistinctKeyCounter()
        let first = encode(["u1", "u2", "u3", ""])
        let second = encode(["u3", "u4", "u1"])
        #expect(first.withUnsafeBytes { counter.add(encodedKeys: $0) })
        #expect(second.withUnsafeBytes { counter.add(encodedKeys: $0) })
        #expect(counter.distinctCount() == 5)
        let cut = Array(encode(["u5", "u6"]).dropLast())
        #expect(!cut.withUnsafeBytes { counter.add(encodedKeys: $0) })
        #expect(![UInt8(1), 0].withUnsafeBytes { counter.add(encodedKeys: $0) })
    }
}
