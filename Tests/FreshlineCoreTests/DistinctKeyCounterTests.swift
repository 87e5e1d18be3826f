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
            #expect(counter.count == reference.count, "expected \(expected)")
        }
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
        #expect(counter.count == 5)
        let cut = Array(encode(["u5", "u6"]).dropLast())
        #expect(!cut.withUnsafeBytes { counter.add(encodedKeys: $0) })
        #expect(![UInt8(1), 0].withUnsafeBytes { counter.add(encodedKeys: $0) })
    }
}
