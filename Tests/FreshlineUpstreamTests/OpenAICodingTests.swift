import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import Testing

@testable import FreshlineUpstream

@Suite("OpenAI-compatible coding")
struct OpenAICodingTests {
    @Test("chat request: model, messages, max_tokens, temperature and a strict json_schema response format")
    func chatRequest() throws {
        let schema = JSONValue.object([
            "type": .string("object"),
            "properties": .object(["a": .object(["type": .string("integer"), "minimum": .integer(0)])]),
        ])
        let body = try JSONValue.parse(
            OpenAICoding.chatRequest(
                model: "gpt", messages: [("system", "be brief"), ("user", "hi")], maxTokens: 32, temperature: 0.2,
                schema: schema))
        guard case .object(let object) = body else {
            Issue.record("not an object")
            return
        }
        #expect(object["model"] == .string("gpt"))
        #expect(object["max_tokens"] == .integer(32))
        #expect(object["temperature"] == .number(0.2))
        #expect(
            object["messages"]
                == .array([
                    .object(["role": .string("system"), "content": .string("be brief")]),
                    .object(["role": .string("user"), "content": .string("hi")]),
                ]))
        #expect(
            object["response_format"]
                == .object([
                    "type": .string("json_schema"),
                    "json_schema": .object([
                        "name": .string("freshline_output"), "strict": .bool(true),
                        "schema": .object([
                            "type": .string("object"),
                            "properties": .object(["a": .object(["type": .string("integer"), "minimum": .integer(0)])]),
                        ]),
                    ]),
                ]))
    }

    @Test("chat answer: content, usage and model with its system fingerprint")
    func chatAnswer() throws {
        let answer = try JSONValue.parse(
            Array(
                #"{"model": "gpt-4o", "system_fingerprint": "fp_9", "choices": [{"message": {"role": "assistant", "content": "hello"}}], "usage": {"prompt_tokens": 12, "completion_tokens": 3}}"#
                    .utf8))
        #expect(
            OpenAICoding.chatAnswer(answer)
                == .success(
                    .init(content: "hello", usage: TokenUsage(input: 12, output: 3), modelVersion: "gpt-4o fp_9")))
        let bare = try JSONValue.parse(Array(#"{"model": "m", "choices": [{"message": {"content": "x"}}]}"#.utf8))
        #expect(OpenAICoding.chatAnswer(bare) == .success(.init(content: "x", usage: nil, modelVersion: "m")))
        for text in [#"{"choices": []}"#, #"{"choices": [{"message": {"content": null}}]}"#, #"[1]"#] {
            #expect(
                OpenAICoding.chatAnswer(try JSONValue.parse(Array(text.utf8)))
                    == .failure("expected choices[0].message.content") || text == "[1]")
        }
    }

    @Test("schema: one output per top-level property, typed; fields checked against the content")
    func schemaFields() throws {
        let schema = JSONValue.object([
            "type": .string("object"),
            "properties": .object([
                "label": .object(["type": .string("string")]), "score": .object(["type": .string("number")]),
                "count": .object(["type": .string("integer")]), "ok": .object(["type": .string("boolean")]),
                "tags": .object(["type": .string("array")]),
            ]),
        ])
        guard case .success(let fields) = OpenAICoding.schemaFields(schema) else {
            Issue.record("schema should give fields")
            return
        }
        #expect(fields.map(\.name) == ["count", "label", "ok", "score", "tags"])
        #expect(fields.map(\.type) == [.int64, .string, .bool, .double, nil])
        let content = try JSONValue.parse(
            Array(#"{"label": "a", "score": 1, "count": 2, "ok": true, "tags": ["x"]}"#.utf8))
        let values = fields.map { $0.value(in: content) }
        #expect(values[0] == .success(.integer(2)))
        #expect(values[4] == .success(.string(#"["x"]"#)))
        let wrong = try JSONValue.parse(Array(#"{"label": 3, "score": "high"}"#.utf8))
        #expect(fields[1].value(in: wrong) == .failure("expected /label to be string"))
        #expect(fields[0].value(in: wrong) == .failure("expected /count"))
        guard
            case .success(let columns) = OutputColumns.tensors(fields, rows: [values.map { (try? $0.get()) ?? .null }])
        else {
            Issue.record("columns")
            return
        }
        #expect(columns["score"] == .tensor(try Tensor(shape: [1], doubles: [1])))
        #expect(columns["ok"] == .tensor(try Tensor(shape: [1], data: .bool([true]))))
    }

    @Test("embeddings answer: vectors ordered by index, one per input, all of one length")
    func embeddingsAnswer() throws {
        let answer = try JSONValue.parse(
            Array(
                #"{"model": "e", "data": [{"index": 1, "embedding": [3, 4]}, {"index": 0, "embedding": [1, 2.5]}], "usage": {"prompt_tokens": 7, "total_tokens": 7}}"#
                    .utf8))
        #expect(
            OpenAICoding.embeddingsAnswer(answer, count: 2, dimension: 2)
                == .success(.init(vectors: [[1, 2.5], [3, 4]], promptTokens: 7, modelVersion: "e")))
        guard case .failure(let wrongDimension) = OpenAICoding.embeddingsAnswer(answer, count: 2, dimension: 3) else {
            Issue.record("dimension mismatch")
            return
        }
        #expect(wrongDimension.message.contains("expected 3"))
        guard case .failure = OpenAICoding.embeddingsAnswer(answer, count: 3, dimension: nil) else {
            Issue.record("count mismatch")
            return
        }
        #expect(
            OpenAIEmbeddingsModel.spread(7, over: 3) == [
                .init(input: 3, output: 0), .init(input: 2, output: 0), .init(input: 2, output: 0),
            ])
    }
}
