import Foundation
@testable import FreshlineEngine
import Testing

@Suite("Engine basics")
struct EngineBasicsTests {
    @Test("SHA-256 matches the FIPS test vectors")
    func sha256() {
        #expect(SHA256.hex(Array("".utf8)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("the model version is the file's SHA-256")
    func modelVersion() throws {
        let url = Fixtures.zoo.appendingPathComponent("identity.onnx")
        let model = try Model(contentsOf: url)
        #expect(model.metadata.sha256 == SHA256.hex(try Data(contentsOf: url)))
        #expect(model.metadata.version.count == 12)
        #expect(model.metadata.inputs.count == 1)
        #expect(model.metadata.inputs.first?.shape?.last == 30)
    }

    @Test("broadcasting follows numpy")
    func broadcasting() throws {
        #expect(try Shape.broadcast([2, 3, 4], [4], op: "t") == [2, 3, 4])
        #expect(try Shape.broadcast([2, 1, 4], [3, 1], op: "t") == [2, 3, 4])
        #expect(throws: EngineError.self) { try Shape.broadcast([2, 3], [4], op: "t") }
        #expect(Shape.broadcastIndices(from: [3, 1], to: [3, 2]) == [0, 0, 1, 1, 2, 2])
        #expect(Shape.broadcastIndices(from: [2], to: [3, 2]) == [0, 1, 0, 1, 0, 1])
    }

    @Test("element counts are checked for overflow and the size limit")
    func elementCount() throws {
        #expect(try Shape.elementCount([]) == 1)
        #expect(try Shape.elementCount([3, 0, 5]) == 0)
        #expect(throws: EngineError.self) { try Shape.elementCount([Int.max / 2, 4]) }
        #expect(throws: EngineError.self) { try Shape.elementCount([1 << 20, 1 << 12]) }
    }

    @Test("rows stack into batch tensors and split back")
    func rowBatch() throws {
        let inputs = [ModelMetadata.ValueInfo(name: "x", type: .tensor(.float, shape: [-1, 2]), dimensionNames: ["N", nil])]
        let rows: [[String: JSONValue]] = [["x": .array([.number(1.5), .integer(2)])], ["x": .array([.number(-1), .number(0)])]]
        let feeds = try RowBatch.tensors(rows: rows, inputs: inputs)
        #expect(feeds["x"]?.shape == [2, 2])
        #expect(feeds["x"]?.floats == [1.5, 2, -1, 0])
        let back = try RowBatch.rows(outputs: ["x": .tensor(feeds["x"]!)], count: 2)
        #expect(back[1]["x"] == .array([.number(-1), .number(0)]))
        #expect(throws: EngineError.self) {
            try RowBatch.tensors(rows: [["x": .array([.number(1)])], ["x": .array([.number(1), .number(2)])]], inputs: inputs)
        }
        #expect(throws: EngineError.self) { try RowBatch.tensors(rows: [["x": .string("a")]], inputs: inputs) }
        #expect(throws: EngineError.self) { try RowBatch.tensors(rows: [["y": .number(1)]], inputs: inputs) }
    }
}
