internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON

/// The JSON of the OpenAI-compatible API: chat completions and embeddings, requests and answers.
enum OpenAICoding {
    /// The name Freshline gives its structured-output schema.
    static let schemaName = "freshline_output"

    /// How a response schema is asked for.
    enum SchemaForm: Sendable, Equatable {
        /// OpenAI's `{"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}`.
        case jsonSchema
        /// `{"type": "json_object", "schema": …}`: the only form llama-cpp-python's server takes (0.3.x answers 500
        /// to `json_schema`; see Tests/UpstreamServers/README.md).
        case jsonObject
    }

    /// The body of `POST {url}/chat/completions` for one row; with `stream`, the answer is asked for as server-sent
    /// events, the last chunk carrying the usage (`stream_options.include_usage`).
    static func chatRequest(
        model: String, messages: [(role: String, content: String)], maxTokens: Int?, temperature: Double?,
        schema: JSONValue?, form: SchemaForm = .jsonSchema, stream: Bool = false
    ) -> [UInt8] {
        chatRequestJSON(
            model: model, messages: messages, maxTokens: maxTokens, temperature: temperature, schema: schema,
            form: form, stream: stream
        ).serialized()
    }

    /// The same body as JSON (a Batch API request line's `body`, never streamed).
    static func chatRequestJSON(
        model: String, messages: [(role: String, content: String)], maxTokens: Int?, temperature: Double?,
        schema: JSONValue?, form: SchemaForm = .jsonSchema, stream: Bool = false
    ) -> JSONValue {
        var body: [String: JSONValue] = [
            "model": .string(model),
            "messages": .array(messages.map { .object(["role": .string($0.role), "content": .string($0.content)]) }),
        ]
        if let maxTokens { body["max_tokens"] = .integer(Int64(maxTokens)) }
        if let temperature { body["temperature"] = .number(temperature) }
        if stream {
            body["stream"] = .bool(true)
            body["stream_options"] = .object(["include_usage": .bool(true)])
        }
        if let schema, form == .jsonObject {
            body["response_format"] = .object(["type": .string("json_object"), "schema": schema])
        } else if let schema {
            body["response_format"] = .object([
                "type": .string("json_schema"),
                "json_schema": .object(["name": .string(schemaName), "schema": schema, "strict": .bool(true)]),
            ])
        }
        return .object(body)
    }

    /// What a chat answer carries: `choices[0].message.content`, `usage` and the model that answered.
    struct ChatAnswer: Sendable, Equatable {
        var content: String
        var usage: TokenUsage?
        /// `model`, then ` ` and `system_fingerprint` when present.
        var modelVersion: String?
    }

    static func chatAnswer(_ json: JSONValue) -> Result<ChatAnswer, MalformedAnswer> {
        guard case .object(let object) = json else { return .failure("expected a JSON object") }
        guard case .array(let choices)? = object["choices"], let first = choices.first,
            case .object(let choice) = first, case .object(let message)? = choice["message"],
            case .string(let content)? = message["content"]
        else { return .failure("expected choices[0].message.content") }
        return .success(ChatAnswer(content: content, usage: usage(object), modelVersion: modelVersion(object)))
    }

    /// The body of `POST {url}/embeddings` for some texts.
    static func embeddingsRequest(model: String, texts: [String]) -> [UInt8] {
        JSONValue.object(["model": .string(model), "input": .array(texts.map { .string($0) })]).serialized()
    }

    /// What an embeddings answer carries: one vector per input in input order, the prompt tokens, the model.
    struct EmbeddingsAnswer: Sendable, Equatable {
        var vectors: [[Float]]
        var promptTokens: Int?
        var modelVersion: String?
    }

    /// Reads `data[i].embedding`, ordered by `data[i].index`; every input must have exactly one vector, all of one
    /// length (and of `dimension` when known).
    static func embeddingsAnswer(_ json: JSONValue, count: Int, dimension: Int?) -> Result<
        EmbeddingsAnswer, MalformedAnswer
    > {
        guard case .object(let object) = json else { return .failure("expected a JSON object") }
        guard case .array(let data)? = object["data"] else { return .failure("expected data") }
        guard data.count == count else { return .failure("expected \(count) embeddings, got \(data.count)") }
        var vectors = [[Float]?](repeating: nil, count: count)
        for (position, item) in data.enumerated() {
            guard case .object(let entry) = item, case .array(let numbers)? = entry["embedding"] else {
                return .failure("expected data[\(position)].embedding")
            }
            var index = position
            if case .integer(let i)? = entry["index"] {
                guard i >= 0, i < count, vectors[Int(i)] == nil else {
                    return .failure("data[\(position)].index is out of range or repeated")
                }
                index = Int(i)
            }
            var vector: [Float] = []
            vector.reserveCapacity(numbers.count)
            for number in numbers {
                switch number {
                case .integer, .number: vector.append(Float(number.doubleValue ?? .nan))
                default: return .failure("expected data[\(position)].embedding to hold numbers")
                }
            }
            guard !vector.isEmpty else { return .failure("data[\(position)].embedding is empty") }
            if let expected = dimension ?? vectors.lazy.compactMap({ $0 }).first?.count, vector.count != expected {
                return .failure("data[\(position)].embedding has \(vector.count) dimensions, expected \(expected)")
            }
            vectors[index] = vector
        }
        let complete = vectors.compactMap { $0 }
        guard complete.count == count else { return .failure("expected one embedding per input") }
        var prompt: Int?
        if let usage = usage(object) { prompt = usage.input }
        return .success(EmbeddingsAnswer(vectors: complete, promptTokens: prompt, modelVersion: modelVersion(object)))
    }

    /// `usage.prompt_tokens` and `usage.completion_tokens`, when present and sane.
    static func usage(_ object: [String: JSONValue]) -> TokenUsage? {
        guard case .object(let usage)? = object["usage"] else { return nil }
        func count(_ key: String) -> Int? {
            guard case .integer(let n)? = usage[key], n >= 0, n <= Int64(Int32.max) else { return nil }
            return Int(n)
        }
        guard let prompt = count("prompt_tokens") else { return nil }
        return TokenUsage(input: prompt, output: count("completion_tokens") ?? 0)
    }

    /// `model`, then ` ` and `system_fingerprint` when present.
    static func modelVersion(_ object: [String: JSONValue]) -> String? {
        guard case .string(let model)? = object["model"], !model.isEmpty else { return nil }
        if case .string(let fingerprint)? = object["system_fingerprint"], !fingerprint.isEmpty {
            return "\(model) \(fingerprint)"
        }
        return model
    }

    /// One output per top-level property of an object schema, sorted by name: `string`, `number` (double),
    /// `integer` (int64), `boolean`; an object, an array or an untyped property is carried as its JSON text.
    static func schemaFields(_ schema: JSONValue) -> Result<[OutputField], MalformedAnswer> {
        guard case .object(let object) = schema, case .object(let properties)? = object["properties"],
            !properties.isEmpty
        else { return .failure("response_schema needs an object with properties") }
        return .success(
            properties.keys.sorted().map { name in
                var type: UpstreamSpec.ValueType?
                if case .object(let property)? = properties[name], case .string(let kind)? = property["type"] {
                    switch kind {
                    case "string": type = .string
                    case "number": type = .double
                    case "integer": type = .int64
                    case "boolean": type = .bool
                    default: type = nil
                    }
                }
                return OutputField(name: name, pointer: JSONPointer(tokens: [name]), type: type)
            })
    }
}
