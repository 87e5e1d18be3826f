import FreshlineEngine
import FreshlineJSON
import Testing

@testable import FreshlineUpstream

@Suite("Open Inference Protocol V2 coding")
struct OIPCodingTests {
    func json(_ bytes: [UInt8]) throws -> JSONValue { try JSONValue.parse(bytes) }

    @Test("metadata: ports with datatypes mapped to engine types and the first dimension as -1")
    func metadata() throws {
        let answer = try JSONValue.parse(
            Array(
                #"""
                {"name": "m", "versions": ["1", "2"], "platform": "sklearn",
                 "inputs": [{"name": "X", "datatype": "FP32", "shape": [8, 16]}, {"name": "s", "datatype": "BYTES", "shape": []}],
                 "outputs": [{"name": "p", "datatype": "INT16", "shape": [-1, 1]}, {"name": "q", "datatype": "fp64", "shape": [-1]}]}
                """#.utf8))
        guard case .success(let m) = OIPCoding.metadata(answer) else {
            Issue.record("metadata should parse")
            return
        }
        #expect(
            m.inputs == [
                .init(name: "X", datatype: .fp32, shape: [-1, 16]), .init(name: "s", datatype: .bytes, shape: [-1]),
            ])
        #expect(m.outputs.map(\.datatype.elementType) == [.int32, .double])
        #expect(m.versions == ["1", "2"])
        #expect(m.platform == "sklearn")
        let bad = try JSONValue.parse(
            Array(#"{"inputs": [{"name": "X", "datatype": "COMPLEX64", "shape": [1]}]}"#.utf8))
        guard case .failure(let problem) = OIPCoding.metadata(bad) else {
            Issue.record("an unsupported datatype is malformed")
            return
        }
        #expect(problem.message.contains("COMPLEX64"))
    }

    @Test("request: rows stacked per input, data flattened row-major, each datatype written as its JSON")
    func requestEveryDatatype() throws {
        let feeds: [String: Tensor] = [
            "f": try Tensor(shape: [2, 2], floats: [0.1, -2, 3.5, 4]),
            "d": try Tensor(shape: [2], doubles: [0.25, 1e-7]),
            "i": try Tensor(shape: [2, 1], int64s: [-9_007_199_254_740_993, 2]),
            "i32": try Tensor(shape: [2], data: .int32([5, -6])),
            "s": try Tensor(shape: [2], strings: ["a\"b", "é"]),
            "b": try Tensor(shape: [2], data: .bool([true, false])),
        ]
        let ports: [OIPCoding.Port] = [
            .init(name: "f", datatype: .fp32, shape: [-1, 2]), .init(name: "d", datatype: .fp64, shape: [-1]),
            .init(name: "i", datatype: .int64, shape: [-1, 1]), .init(name: "i32", datatype: .int32, shape: [-1]),
            .init(name: "s", datatype: .bytes, shape: [-1]), .init(name: "b", datatype: .bool, shape: [-1]),
        ]
        guard
            case .success(let bytes) = OIPCoding.request(
                feeds: feeds, rows: 0..<2, inputs: ports, outputs: [.init(name: "y", datatype: .fp32, shape: [-1])])
        else {
            Issue.record("request should encode")
            return
        }
        let body = try json(bytes)
        guard case .object(let object) = body, case .array(let inputs)? = object["inputs"] else {
            Issue.record("no inputs")
            return
        }
        #expect(object["outputs"] == .array([.object(["name": .string("y")])]))
        let expected: [JSONValue] = [
            .object([
                "name": .string("f"), "datatype": .string("FP32"), "shape": .array([.integer(2), .integer(2)]),
                "data": .array([.number(0.1), .number(-2), .number(3.5), .number(4)]),
            ]),
            .object([
                "name": .string("d"), "datatype": .string("FP64"), "shape": .array([.integer(2)]),
                "data": .array([.number(0.25), .number(1e-7)]),
            ]),
            .object([
                "name": .string("i"), "datatype": .string("INT64"), "shape": .array([.integer(2), .integer(1)]),
                "data": .array([.integer(-9_007_199_254_740_993), .integer(2)]),
            ]),
            .object([
                "name": .string("i32"), "datatype": .string("INT32"), "shape": .array([.integer(2)]),
                "data": .array([.integer(5), .integer(-6)]),
            ]),
            .object([
                "name": .string("s"), "datatype": .string("BYTES"), "shape": .array([.integer(2)]),
                "data": .array([.string("a\"b"), .string("é")]),
            ]),
            .object([
                "name": .string("b"), "datatype": .string("BOOL"), "shape": .array([.integer(2)]),
                "data": .array([.bool(true), .bool(false)]),
            ]),
        ]
        #expect(inputs == expected)
    }

    @Test("request: a slice of rows, and values that do not fit the declared datatype refused")
    func requestSliceAndRange() throws {
        let feeds = ["x": try Tensor(shape: [3, 2], int64s: [1, 2, 3, 4, 70000, 6])]
        guard
            case .success(let bytes) = OIPCoding.request(
                feeds: feeds, rows: 1..<2, inputs: [.init(name: "x", datatype: .int16, shape: [-1, 2])], outputs: [])
        else {
            Issue.record("row 1 fits INT16")
            return
        }
        #expect(
            String(decoding: bytes, as: UTF8.self)
                == #"{"inputs":[{"name":"x","shape":[1,2],"datatype":"INT16","data":[3,4]}]}"#)
        guard
            case .failure(let problem) = OIPCoding.request(
                feeds: feeds, rows: 0..<3, inputs: [.init(name: "x", datatype: .int16, shape: [-1, 2])], outputs: [])
        else {
            Issue.record("70000 does not fit INT16")
            return
        }
        #expect(problem.message.contains("70000"))
        guard
            case .failure = OIPCoding.request(
                feeds: [:], rows: 0..<1, inputs: [.init(name: "x", datatype: .fp32, shape: [-1])], outputs: [])
        else {
            Issue.record("a missing feed is refused")
            return
        }
    }

    @Test("answer: every datatype converted back, nested data flattened, the model version read")
    func answerEveryDatatype() throws {
        let answer = try JSONValue.parse(
            Array(
                #"""
                {"model_name": "m", "model_version": "3", "outputs": [
                 {"name": "f", "datatype": "FP32", "shape": [2, 2], "data": [[0.5, 1], [2, "NaN"]]},
                 {"name": "d", "datatype": "FP64", "shape": [2], "data": [0.1, 2]},
                 {"name": "i", "datatype": "INT64", "shape": [2, 1], "data": [9007199254740993, -1]},
                 {"name": "u", "datatype": "UINT8", "shape": [2], "data": [0, 255]},
                 {"name": "s", "datatype": "BYTES", "shape": [2], "data": ["x", "y"]},
                 {"name": "b", "datatype": "BOOL", "shape": [2], "data": [true, 0]},
                 {"name": "extra", "datatype": "FP32", "shape": [1], "data": [1]}]}
                """#.utf8))
        let ports: [OIPCoding.Port] = ["f", "d", "i", "u", "s", "b"].map {
            .init(name: $0, datatype: .fp32, shape: [-1])
        }
        guard case .success(let decoded) = OIPCoding.answer(answer, expected: ports, rows: 2) else {
            Issue.record("answer should decode")
            return
        }
        #expect(decoded.modelVersion == "3")
        #expect(decoded.outputs["f"]?.shape == [2, 2])
        #expect(decoded.outputs["f"]?.floats?.prefix(3) == [0.5, 1, 2])
        #expect(decoded.outputs["f"]?.floats?.last?.isNaN == true)
        #expect(decoded.outputs["d"] == (try Tensor(shape: [2], doubles: [0.1, 2])))
        #expect(decoded.outputs["i"] == (try Tensor(shape: [2, 1], int64s: [9_007_199_254_740_993, -1])))
        #expect(decoded.outputs["u"] == (try Tensor(shape: [2], data: .uint8([0, 255]))))
        #expect(decoded.outputs["s"] == (try Tensor(shape: [2], strings: ["x", "y"])))
        #expect(decoded.outputs["b"] == (try Tensor(shape: [2], data: .bool([true, false]))))
        #expect(decoded.outputs["extra"] == nil)
    }

    @Test("answer: a wrong row count, a short data array, a mistyped value or a missing output is malformed")
    func answerMalformed() throws {
        let port = OIPCoding.Port(name: "y", datatype: .fp32, shape: [-1])
        let cases: [(String, String)] = [
            (#"{"outputs": [{"name": "y", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]}]}"#, "rows"),
            (#"{"outputs": [{"name": "y", "datatype": "FP32", "shape": [2], "data": [1]}]}"#, "1 values"),
            (#"{"outputs": [{"name": "y", "datatype": "FP32", "shape": [2], "data": [1, "a"]}]}"#, "not FP32"),
            (#"{"outputs": [{"name": "y", "datatype": "INT8", "shape": [2], "data": [1, 300]}]}"#, "not INT8"),
            (#"{"outputs": [{"name": "z", "datatype": "FP32", "shape": [2], "data": [1, 2]}]}"#, "'y'"),
            (#"{"result": []}"#, "expected outputs"),
        ]
        for (text, words) in cases {
            guard
                case .failure(let problem) = OIPCoding.answer(
                    try JSONValue.parse(Array(text.utf8)), expected: [port], rows: 2)
            else {
                Issue.record("\(text) should be malformed")
                continue
            }
            #expect(problem.message.contains(words), "\(problem.message)")
        }
    }
}
