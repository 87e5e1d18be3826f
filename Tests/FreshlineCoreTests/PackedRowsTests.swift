import FreshlineCore
import Testing

@Suite("Packed rows")
struct PackedRowsTests {
    @Test("rows go in and come back out unchanged: empty rows, long rows, any bytes; appending packs concatenate")
    func roundTrip() throws {
        let rows: [[UInt8]] = [
            [], Array("{\"a\":1}".utf8), Array(repeating: 0xFF, count: 70_000), [0, 0, 0, 0], Array("é".utf8),
        ]
        let packed = PackedRows(rows)
        #expect(packed.count == rows.count)
        #expect(packed.rows == rows)
        #expect(packed.bytes.count == rows.reduce(0) { $0 + 4 + $1.count })
        // The stores' form: a 4-byte little-endian length before each row (70,000 = 0x011170).
        #expect(Array(packed.bytes[15..<23]) == [0x70, 0x11, 0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFF])

        let reread = try #require(PackedRows(packed: packed.bytes))
        #expect(reread == packed)

        var joined = PackedRows(rows.prefix(2))
        joined.append(contentsOf: PackedRows(rows.dropFirst(2)))
        #expect(joined == packed)

        let chunk = SnapshotChunk(index: 3, keys: ["a", "b", "c", "d", "e"], packedOutputs: packed)
        #expect(chunk.outputs == rows)
        #expect(chunk == SnapshotChunk(index: 3, keys: ["a", "b", "c", "d", "e"], outputs: rows))
    }

    @Test("bytes whose lengths do not add up are refused")
    func corrupt() {
        let bytes = PackedRows([Array("{}".utf8), Array("{\"x\":2}".utf8)]).bytes
        #expect(PackedRows(packed: Array(bytes.dropLast())) == nil, "the last row is cut short")
        #expect(PackedRows(packed: Array(bytes.prefix(3))) == nil, "a length is cut short")
        #expect(PackedRows(packed: bytes + [9, 0, 0, 0]) == nil, "a length beyond the end")
        #expect(PackedRows(packed: [])?.count == 0)
    }
}
