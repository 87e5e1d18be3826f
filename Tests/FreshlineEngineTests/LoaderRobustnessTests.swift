import Foundation
import Testing

@testable import FreshlineEngine

/// Truncated, malformed and hostile model files give clear errors; never a crash or an unbounded allocation.
@Suite("Loader robustness")
struct LoaderRobustnessTests {
    private func expectError(_ code: EngineError.Code, containing text: String, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected an error with code \(code)")
        } catch let error as EngineError {
            #expect(error.code == code, "\(error)")
            #expect(error.message.contains(text), "\(error.message) does not mention \(text)")
        } catch {
            Issue.record("unexpected error type: \(error)")
        }
    }

    @Test("not a protobuf at all")
    func garbage() {
        expectError(.malformedModel, containing: "not an ONNX model") {
            _ = try Model(data: Data("this is not a model, just text\n".utf8))
        }
    }

    @Test("every truncation of a real model is an error or a valid model, never a crash")
    func truncations() throws {
        let bytes = try Data(contentsOf: Fixtures.zoo.appendingPathComponent("logreg_multi.onnx"))
        var errors = 0
        for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 300)) {
            do { _ = try Model(data: bytes.prefix(length)) } catch is EngineError { errors += 1 }
        }
        #expect(errors > 250)
    }

    @Test("random byte mutations of real models never crash")
    func mutations() throws {
        var generator = SplitMix64(seed: 7)
        for name in ["gbc_binary", "mlp_clf", "two_tower", "logreg_multi_strlabels_zipmap"] {
            let original = try Data(contentsOf: Fixtures.zoo.appendingPathComponent("\(name).onnx"))
            for _ in 0..<150 {
                var bytes = [UInt8](original)
                for _ in 0..<Int.random(in: 1...8, using: &generator) {
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(
                        in: 0...255, using: &generator)
                }
                guard let model = try? Model(data: Data(bytes)) else { continue }
                // A mutated model that still loads must run or fail cleanly.
                if let feeds = try? model.syntheticFeeds(batchSize: 3) { _ = try? model.run(feeds) }
            }
        }
    }

    @Test("an unsupported operator names the node and the op")
    func unsupportedOperator() throws {
        var b = ModelBuilder()
        b.input("x", .float, [nil, 4])
        b.output("y", .float, [nil, 4])
        b.node("Erf", ["x"], ["y"], name: "mystery")
        expectError(.unsupportedOperator, containing: "node 'mystery' (Erf)") { _ = try b.load() }
    }

    @Test("an opset newer than the engine knows is refused")
    func futureOpset() throws {
        var b = ModelBuilder(opset: 99)
        b.input("x", .float, [nil, 4])
        b.output("y", .float, [nil, 4])
        b.node("Relu", ["x"], ["y"])
        expectError(.unsupportedOpset, containing: "opset 99") { _ = try b.load() }
    }

    @Test("a cycle is found")
    func cycle() throws {
        var b = ModelBuilder()
        b.input("x", .float, [nil, 4])
        b.output("y", .float, [nil, 4])
        b.node("Add", ["x", "b"], ["a"], name: "first")
        b.node("Relu", ["a"], ["b"], name: "second")
        b.node("Identity", ["a"], ["y"])
        expectError(.invalidGraph, containing: "cycle") { _ = try b.load() }
    }

    @Test("a dangling name is found")
    func danglingName() throws {
        var b = ModelBuilder()
        b.input("x", .float, [nil, 4])
        b.output("y", .float, [nil, 4])
        b.node("Add", ["x", "nowhere"], ["y"], name: "adder")
        expectError(.invalidGraph, containing: "'nowhere'") { _ = try b.load() }
    }

    @Test("an output nothing produces is found")
    func missingOutput() throws {
        var b = ModelBuilder()
        b.input("x", .float, [nil, 4])
        b.output("z", .float, [nil, 4])
        b.node("Relu", ["x"], ["y"])
        expectError(.invalidGraph, containing: "'z'") { _ = try b.load() }
    }

    @Test("a huge declared initializer without data is refused before allocating")
    func hugeInitializer() throws {
        var b = ModelBuilder()
        b.input("x", .float, [nil, 4])
        b.output("y", .float, [nil, 4])
        b.initializer("w", dims: [1 << 20, 1 << 20], floats: [])
        b.node("Add", ["x", "w"], ["y"])
        expectError(.tooLarge, containing: "limit") { _ = try b.load() }

        var c = ModelBuilder()
        c.input("x", .float, [nil, 4])
        c.output("y", .float, [nil, 4])
        c.initializer("w", dims: [1000, 1000], floats: [1, 2, 3])
        c.node("Add", ["x", "w"], ["y"])
        expectError(.malformedModel, containing: "holds 3") { _ = try c.load() }
    }

    @Test("negative and absurd dimensions are refused")
    func negativeDimensions() throws {
        var b = ModelBuilder()
        b.input("x", .float, [nil, -3])
        b.output("y", .float, [nil, 4])
        b.node("Relu", ["x"], ["y"])
        expectError(.invalidShape, containing: "-3") { _ = try b.load() }
    }

    @Test("an operator whose output would be enormous fails at run time, not with an allocation")
    func outerProductBlowUp() throws {
        var b = ModelBuilder()
        b.input("a", .float, [nil, 1])
        b.input("b", .float, [1, nil])
        b.output("y", .float, [nil, nil])
        b.node("MatMul", ["a", "b"], ["y"])
        let model = try b.load()
        let a = try Tensor(shape: [1 << 16, 1], floats: .init(repeating: 1, count: 1 << 16))
        let c = try Tensor(shape: [1, 1 << 16], floats: .init(repeating: 1, count: 1 << 16))
        expectError(.tooLarge, containing: "limit") { _ = try model.run(["a": a, "b": c]) }
    }

    @Test("inputs of the wrong type, rank or size are refused with the input's name")
    func wrongInputs() throws {
        var b = ModelBuilder()
        b.input("x", .float, [nil, 4])
        b.output("y", .float, [nil, 4])
        b.node("Relu", ["x"], ["y"])
        let model = try b.load()
        expectError(.invalidInput, containing: "'x' must be float") {
            _ = try model.run(["x": try Tensor(shape: [1, 4], int64s: [1, 2, 3, 4])])
        }
        expectError(.invalidInput, containing: "'x' dimension 1 must be 4") {
            _ = try model.run(["x": try Tensor(shape: [1, 3], floats: [1, 2, 3])])
        }
        expectError(.invalidInput, containing: "2 dimensions") {
            _ = try model.run(["x": try Tensor(shape: [4], floats: [1, 2, 3, 4])])
        }
        expectError(.invalidInput, containing: "'x' is missing") { _ = try model.run([:]) }
        expectError(.invalidInput, containing: "no input named 'z'") {
            _ = try model.run([
                "x": try Tensor(shape: [1, 4], floats: [1, 2, 3, 4]), "z": try Tensor(shape: [1], floats: [1]),
            ])
        }
    }

    @Test("Gather with an out-of-range index is an error, not a trap")
    func gatherOutOfRange() throws {
        var b = ModelBuilder()
        b.input("ids", .int64, [nil])
        b.output("y", .float, [nil, 2])
        b.initializer("table", dims: [3, 2], floats: [1, 2, 3, 4, 5, 6])
        b.node("Gather", ["table", "ids"], ["y"])
        let model = try b.load()
        let ok = try model.run(["ids": try Tensor(shape: [2], int64s: [2, -1])])
        #expect(ok["y"]?.tensor?.floats == [5, 6, 5, 6])
        expectError(.invalidArgument, containing: "out of range") {
            _ = try model.run(["ids": try Tensor(shape: [1], int64s: [3])])
        }
    }
}
