import FreshlineEngine
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
}
