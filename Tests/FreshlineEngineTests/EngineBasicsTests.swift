import Foundation
import FreshlineJSON
import Testing

@testable import FreshlineEngine

@Suite("Engine basics")
struct EngineBasicsTests {
    @Test("digests are lowercase hex of swift-crypto's SHA-256 (FIPS 180-2 vectors)")
    func sha256() {
        #expect(Digests.sha256Hex(Array("".utf8)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            Digests.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("the model version is the file's SHA-256")
    func modelVersion() throws {
        let url = Fixtures.zoo.appendingPathComponent("identity.onnx")
        let model = try Model(contentsOf: url)
        #expect(model.metadata.sha256 == Digests.sha256Hex(try Data(contentsOf: url)))
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
        let inputs = [
            ModelMetadata.ValueInfo(name: "x", type: .tensor(.float, shape: [-1, 2]), dimensionNames: ["N", nil])
        ]
        let rows: [[String: JSONValue]] = [
            ["x": .array([.number(1.5), .integer(2)])], ["x": .array([.number(-1), .number(0)])],
        ]
        let feeds = try RowBatch.tensors(rows: rows, inputs: inputs)
        #expect(feeds["x"]?.shape == [2, 2])
        #expect(feeds["x"]?.floats == [1.5, 2, -1, 0])
        let back = try RowBatch.rows(outputs: ["x": .tensor(feeds["x"]!)], count: 2)
        #expect(back[1]["x"] == .array([.number(-1), .number(0)]))
        #expect(throws: EngineError.self) {
            try RowBatch.tensors(
                rows: [["x": .array([.number(1)])], ["x": .array([.number(1), .number(2)])]], inputs: inputs)
        }
        #expect(throws: EngineError.self) { try RowBatch.tensors(rows: [["x": .string("a")]], inputs: inputs) }
        #expect(throws: EngineError.self) { try RowBatch.tensors(rows: [["y": .number(1)]], inputs: inputs) }
    }
}

@Suite("Dense layer fusion")
struct DenseFusionTests {
    /// y = relu(x·W + b) with W = [[1, -1], [2, 0], [0, 1]], b = [0.5, -3].
    func model(biasFirst: Bool, relu: Bool) throws -> Model {
        var b = ModelBuilder()
        b.input("x", .float, [nil, 3])
        b.output("y", .float, [nil, 2])
        b.initializer("W", dims: [3, 2], floats: [1, -1, 2, 0, 0, 1])
        b.initializer("b", dims: [2], floats: [0.5, -3])
        b.node("MatMul", ["x", "W"], ["h"])
        b.node("Add", biasFirst ? ["b", "h"] : ["h", "b"], [relu ? "z" : "y"])
        if relu { b.node("Relu", ["z"], ["y"]) }
        return try b.load()
    }

    @Test(
        "MatMul + Add + Relu becomes one step with the same results",
        arguments: [(false, true), (true, true), (false, false)])
    func fused(_ biasFirst: Bool, _ relu: Bool) throws {
        let model = try model(biasFirst: biasFirst, relu: relu)
        #expect(model.plan.steps.count == 1)
        let x = try Tensor(shape: [2, 3], floats: [1, 2, 3, -1, 0, 0.5])
        let y = try #require(model.run(["x": x])["y"]?.tensor)
        // Row 0: [1+4+0, -1+0+3] + b = [5.5, -1]; row 1: [-1, 1+0.5] + b = [-0.5, -1.5].
        let expected: [Float] = relu ? [5.5, 0, 0, 0] : [5.5, -1, -0.5, -1.5]
        #expect(y.shape == [2, 2])
        #expect(y.floats == expected)
    }

    @Test("an input the fused kernel does not cover runs through the original kernels")
    func fallback() throws {
        var b = ModelBuilder()
        b.input("x", .float, [nil, nil, 3])
        b.output("y", .float, [nil, nil, 2])
        b.initializer("W", dims: [3, 2], floats: [1, -1, 2, 0, 0, 1])
        b.initializer("b", dims: [2], floats: [0.5, -3])
        b.node("MatMul", ["x", "W"], ["h"])
        b.node("Add", ["h", "b"], ["z"])
        b.node("Relu", ["z"], ["y"])
        let model = try b.load()
        let x = try Tensor(shape: [1, 2, 3], floats: [1, 2, 3, -1, 0, 0.5])
        let y = try #require(model.run(["x": x])["y"]?.tensor)
        #expect(y.shape == [1, 2, 2])
        #expect(y.floats == [5.5, 0, 0, 0])
    }

    @Test("an intermediate value that is also a graph output is not fused away")
    func sharedIntermediate() throws {
        var b = ModelBuilder()
        b.input("x", .float, [nil, 3])
        b.output("y", .float, [nil, 2])
        b.output("h", .float, [nil, 2])
        b.initializer("W", dims: [3, 2], floats: [1, -1, 2, 0, 0, 1])
        b.initializer("b", dims: [2], floats: [0.5, -3])
        b.node("MatMul", ["x", "W"], ["h"])
        b.node("Add", ["h", "b"], ["y"])
        let model = try b.load()
        #expect(model.plan.steps.count == 2)
        let out = try model.run(["x": try Tensor(shape: [1, 3], floats: [1, 2, 3])])
        #expect(out["h"]?.tensor?.floats == [5, 2])
        #expect(out["y"]?.tensor?.floats == [5.5, -1])
    }
}

/// The broadcast fast paths (a per-row scalar, a row repeated over the middle axis) against the general path.
@Suite("Broadcast fast paths")
struct BroadcastFastPathTests {
    @Test(
        "per-row scalars and repeated rows give what the general broadcast gives",
        arguments: [
            ([2, 3, 4], [2, 3, 1]), ([2, 3, 1], [2, 3, 4]), ([2, 3, 4], [2, 1, 4]), ([2, 1, 4], [2, 3, 4]),
            ([3, 4], [3, 1]), ([3, 4], [1, 4]), ([2, 3, 4], [3, 1]), ([5, 2, 3, 4], [5, 2, 1, 4]),
        ])
    func matchesGeneral(_ shapes: ([Int], [Int])) throws {
        let (aShape, bShape) = shapes
        let a = (0..<aShape.reduce(1, *)).map { Float($0) * 0.5 - 3 }
        let b = (0..<bShape.reduce(1, *)).map { Float($0) + 1 }
        let shape = try Shape.broadcast(aShape, bShape, op: "test")
        let fast = apply(a, aShape, b, bShape, shape) { $0 * $1 - $0 }
        let ai = Shape.broadcastIndices(from: aShape, to: shape)
        let bi = Shape.broadcastIndices(from: bShape, to: shape)
        let general = (0..<shape.reduce(1, *)).map { a[ai[$0]] * b[bi[$0]] - a[ai[$0]] }
        #expect(fast == general)
    }
}
