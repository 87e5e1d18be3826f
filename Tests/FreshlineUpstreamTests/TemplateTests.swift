import FreshlineEngine
import FreshlineJSON
import Testing

@testable import FreshlineUpstream

@Suite("Templates and JSON pointers")
struct TemplateTests {
    @Test("text templates put strings as they are and other values as JSON text; unknown placeholders stay")
    func textRendering() {
        let values: [String: JSONValue] = [
            "name": .string("Ada \"the\" first"), "age": .integer(36), "score": .number(0.5), "ok": .bool(true),
            "v": .array([.integer(1), .integer(2)]),
        ]
        #expect(
            Template.text("Hi {{name}}, {{ age }} / {{score}} / {{ok}} / {{v}} / {{missing}}", values: values)
                == "Hi Ada \"the\" first, 36 / 0.5 / true / [1,2] / {{missing}}")
    }

    @Test("JSON templates quote and escape strings, write numbers as numbers, and escape inside string literals")
    func jsonRendering() throws {
        let values: [String: JSONValue] = [
            "text": .string("line\n\"quoted\" \\ é \u{1}"), "n": .integer(-3), "x": .number(1.25), "flag": .bool(false),
        ]
        let rendered = Template.json(
            #"{"q": {{text}}, "n": {{n}}, "x": {{ x }}, "f": {{flag}}, "tag": "id-{{n}}-{{text}}", "lit": "{{}}"}"#,
            values: values)
        let parsed = try JSONValue.parse(Array(rendered.utf8))
        #expect(
            parsed
                == .object([
                    "q": .string("line\n\"quoted\" \\ é \u{1}"), "n": .integer(-3), "x": .number(1.25),
                    "f": .bool(false), "tag": .string("id--3-line\n\"quoted\" \\ é \u{1}"), "lit": .string("{{}}"),
                ]))
    }

    @Test("a row's value: scalars for one element per row, nested arrays otherwise, floats at their own precision")
    func rowValues() throws {
        let floats = try Tensor(shape: [2, 3], floats: [0.1, 0.2, 0.3, 1, 2, 3])
        #expect(RowValues.value(floats, row: 1) == .array([.number(1), .number(2), .number(3)]))
        #expect(Template.text("{{x}}", values: ["x": RowValues.value(floats, row: 0)]) == "[0.1,0.2,0.3]")
        let column = try Tensor(shape: [2, 1], strings: ["a", "b"])
        #expect(RowValues.value(column, row: 1) == .string("b"))
        let scalars = try Tensor(shape: [2], int64s: [7, 8])
        #expect(RowValues.value(scalars, row: 0) == .integer(7))
    }

    @Test("JSON pointers follow RFC 6901, escapes and array indices included")
    func pointer() throws {
        let document = try JSONValue.parse(
            Array(
                #"{"foo": ["bar", "baz"], "": 0, "a/b": 1, "m~n": 8, "k\"l": 6, " ": 7, "x": {"y": [null, {"z": true}]}}"#
                    .utf8))
        func at(_ p: String) -> JSONValue? { JSONPointer(p)?.resolve(in: document) }
        #expect(at("") == document)
        #expect(at("/foo") == .array([.string("bar"), .string("baz")]))
        #expect(at("/foo/0") == .string("bar"))
        #expect(at("/") == .integer(0))
        #expect(at("/a~1b") == .integer(1))
        #expect(at("/m~0n") == .integer(8))
        #expect(at("/k\"l") == .integer(6))
        #expect(at("/ ") == .integer(7))
        #expect(at("/x/y/1/z") == .bool(true))
        #expect(at("/x/y/0") == .null)
        #expect(at("/foo/2") == nil)
        #expect(at("/foo/01") == nil)
        #expect(at("/foo/-") == nil)
        #expect(at("/foo/0/deeper") == nil)
        #expect(at("/missing") == nil)
        #expect(JSONPointer("foo") == nil)
        #expect(JSONPointer("/a~2") == nil)
        #expect(JSONPointer("/a~") == nil)
        #expect(JSONPointer(tokens: ["a/b", "m~n"]).description == "/a~1b/m~0n")
        #expect(JSONPointer(tokens: ["a/b"]).resolve(in: document) == .integer(1))
    }
}
