import FreshlineEngine
import FreshlineJSON
import FreshlineTesting
import Testing

/// The batch runner writes each row's outputs with `RowBatch.serializedRows`; it must give the same text as the
/// general path (`rows` then `JSONValue.serialized()`), for every model of the zoo — tensors of every rank and
/// type, and ZipMap's sequences of maps.
@Suite("Serialized rows")
struct SerializedRowsTests {
    @Test("the direct writer equals the general path on every zoo model")
    func zoo() throws {
        let fixtures = try ZooFixture.all(in: Fixtures.zoo)
        #expect(fixtures.count >= 30)
        for fixture in fixtures {
            let model = try Model(contentsOf: fixture.modelURL)
            let rows = Array(fixture.rows.prefix(7))
            let outputs = try model.run(try RowBatch.tensors(rows: rows, inputs: model.metadata.inputs))
            let general = try RowBatch.rows(outputs: outputs, count: rows.count).map {
                String(decoding: JSONValue.object($0).serialized(), as: UTF8.self)
            }
            let direct = try RowBatch.serializedRows(outputs: outputs, count: rows.count).map {
                String(decoding: $0, as: UTF8.self)
            }
            #expect(direct == general, "\(fixture.name)")
            if let first = outputs.keys.sorted().first {
                let selected = try RowBatch.serializedRows(outputs: outputs, count: rows.count, selected: [first])
                let expected = try RowBatch.rows(outputs: outputs, count: rows.count).map {
                    JSONValue.object($0.filter { $0.key == first }).serialized()
                }
                #expect(selected == expected, "\(fixture.name) selecting \(first)")
            }
        }
    }

    @Test("rows longer than the writer's first guess (long strings, a matrix per row) grow its buffer intact")
    func longRows() throws {
        let count = 40
        let strings = (0..<count).map { String(repeating: "é\"x", count: 50 + $0 * 7) }
        let outputs: [String: Value] = [
            "label": .tensor(try Tensor(shape: [count], strings: strings)),
            "grid": .tensor(try Tensor(shape: [count, 3, 2], floats: (0..<(count * 6)).map { Float($0) / 7 })),
            "score": .tensor(try Tensor(shape: [count, 1], doubles: (0..<count).map { -Double($0) * 1e-300 })),
            "id": .tensor(try Tensor(shape: [count], int64s: (0..<count).map { Int64.min + Int64($0) })),
        ]
        let general = try RowBatch.rows(outputs: outputs, count: count).map { JSONValue.object($0).serialized() }
        let direct = try RowBatch.serializedRows(outputs: outputs, count: count)
        #expect(direct == general)
        #expect(direct.reduce(0) { $0 + $1.count } > 40 * 150)
    }
}
