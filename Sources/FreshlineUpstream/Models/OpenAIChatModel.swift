internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import NIOHTTP1
internal import Synchronization

/// A model behind an OpenAI-compatible chat completions API: one `POST {url}/chat/completions` per row (the rows of
/// one call run concurrently, at most `limits.maxConnections` at once), the messages rendered from the templates.
/// The answer's content is the `text` output, or, with a response schema, parsed as JSON into one output per
/// property (or per declared output pointer).
final class OpenAIChatModel: ProviderBatchModel {
    let spec: ModelSpec
    let metadata: ModelMetadata
    let client: UpstreamClient
    let batches: ProviderBatchAPI
    private let upstream: UpstreamSpec
    private let model: String
    private let url: String
    private let schema: JSONValue?
    /// The typed outputs read from the parsed content; empty: the content is the `text` output.
    private let fields: [OutputField]

    /// Completion tokens assumed for the budget's estimate when the manifest sets no `max_tokens`.
    static let assumedCompletionTokens = 256

    init(spec: ModelSpec, upstream: UpstreamSpec, model: String, client: UpstreamClient) throws(UpstreamError) {
        guard !upstream.messages.isEmpty else { throw client.error(.badRequest, "an openai chat model needs messages") }
        self.spec = spec
        self.upstream = upstream
        self.model = model
        self.client = client
        batches = ProviderBatchAPI(client: client, baseURL: upstream.url)
        url = Upstreams.trimmed(upstream.url) + "/chat/completions"
        let schema = upstream.responseSchema
        self.schema = schema
        let inputs = try Upstreams.inputs(
            upstream, templates: upstream.messages.map(\.content), client: client)
        if !upstream.outputs.isEmpty {
            fields = try Upstreams.fields(upstream.outputs, client: client)
        } else if let schema {
            switch OpenAICoding.schemaFields(schema) {
            case .success(let f): fields = f
            case .failure(let problem): throw client.error(.badRequest, problem.message)
            }
        } else {
            fields = []
        }
        let outputs =
            fields.isEmpty
            ? [ModelMetadata.ValueInfo(name: "text", type: .tensor(.string, shape: [-1]))] : fields.map(\.info)
        metadata = ModelMetadata(remoteInputs: inputs, outputs: outputs, producer: "openai chat", version: model)
    }

    var streams: Bool { upstream.stream }

    func infer(_ feeds: [String: Tensor], rows: Int, priority: CallPriority, deadline: ContinuousClock.Instant?)
        async throws(UpstreamError) -> RemoteAnswer
    {
        try await infer(feeds, rows: rows, priority: priority, deadline: deadline, partial: nil)
    }

    func infer(
        _ feeds: [String: Tensor], rows: Int, priority: CallPriority, deadline: ContinuousClock.Instant?,
        partial: PartialText?
    ) async throws(UpstreamError) -> RemoteAnswer {
        try Upstreams.check(feeds, rows: rows, inputs: metadata.inputs, client: client)
        let deadline = client.deadline(deadline)
        let (client, upstream, model, url, schema, fields, form) = (
            self.client, self.upstream, self.model, self.url, self.schema, self.fields, self.schemaForm
        )
        return try await client.guarded { () async throws(UpstreamError) -> RemoteAnswer in
            let answers = try await client.concurrently(rows, width: client.limits.maxConnections) {
                (row) async throws(UpstreamError) -> (values: [JSONValue], usage: TokenUsage, version: String?) in
                let values = RowValues.row(feeds, row: row)
                let messages = upstream.messages.map { ($0.role, Template.text($0.content, values: values)) }
                let estimate =
                    messages.reduce(0) { $0 + $1.1.utf8.count } / 4
                    + (upstream.maxTokens ?? OpenAIChatModel.assumedCompletionTokens)
                // One request in `form`: streamed (`stream: true`) or not, the answer is the same.
                func call(_ form: OpenAICoding.SchemaForm) async throws(UpstreamError) -> OpenAICoding.ChatAnswer {
                    let body = OpenAICoding.chatRequest(
                        model: model, messages: messages, maxTokens: upstream.maxTokens,
                        temperature: upstream.temperature, schema: schema, form: form, stream: upstream.stream)
                    if upstream.stream {
                        return try await client.stream(
                            url, body: body, priority: priority, tokens: estimate, deadline: deadline
                        ) { text in partial?(row, text) }
                    }
                    let json = try await client.send(
                        .POST, url, body: body, priority: priority, tokens: estimate, deadline: deadline)
                    switch OpenAICoding.chatAnswer(json) {
                    case .success(let answer): return answer
                    case .failure(let problem):
                        client.settle(estimatedTokens: estimate, actualTokens: estimate)
                        throw client.error(.unavailable, "malformed answer: \(problem.message)")
                    }
                }
                let current = form.current
                let chat: OpenAICoding.ChatAnswer
                do throws(UpstreamError) {
                    chat = try await call(current)
                } catch {
                    guard schema != nil, current == .jsonSchema, SchemaFormChoice.mayBeRefusal(error) else {
                        throw error
                    }
                    // An API that refuses OpenAI's json_schema form may take the json_object one; if it does, the
                    // model keeps that form. If it does not, the first error is the one reported.
                    do throws(UpstreamError) { chat = try await call(.jsonObject) } catch _ { throw error }
                    form.use(.jsonObject, client: client)
                }
                let answer: BatchRowAnswer
                switch Self.values(of: chat, fields: fields, client: client) {
                case .success(let a): answer = a
                case .failure(let error):
                    client.settle(estimatedTokens: estimate, actualTokens: estimate)
                    throw error
                }
                let usage = answer.usage ?? TokenUsage(input: 0, output: 0)
                if let used = answer.usage {
                    client.settle(estimatedTokens: estimate, actualTokens: used.input + used.output)
                    client.metrics.tokens(input: used.input, output: used.output)
                }
                return (answer.values, usage, answer.modelVersion)
            }
            let outputs = try Self.stack(answers.map(\.values), fields: fields, client: client).get()
            return RemoteAnswer(
                outputs: outputs, modelVersion: answers.first?.version ?? model, usage: answers.map(\.usage))
        }
    }

    /// A chat answer's row values: the content as `text`, or the declared fields of its JSON.
    private static func read(_ json: JSONValue, fields: [OutputField], client: UpstreamClient) -> Result<
        BatchRowAnswer, UpstreamError
    > {
        switch OpenAICoding.chatAnswer(json) {
        case .success(let answer): return values(of: answer, fields: fields, client: client)
        case .failure(let problem): return .failure(client.error(.unavailable, "malformed answer: \(problem.message)"))
        }
    }

    /// A parsed chat answer's row values.
    private static func values(of answer: OpenAICoding.ChatAnswer, fields: [OutputField], client: UpstreamClient)
        -> Result<BatchRowAnswer, UpstreamError>
    {
        guard !fields.isEmpty else {
            return .success(
                BatchRowAnswer(
                    values: [.string(answer.content)], usage: answer.usage, modelVersion: answer.modelVersion))
        }
        let document: JSONValue
        do { document = try JSONValue.parse(Array(answer.content.utf8)) } catch {
            return .failure(client.error(.unavailable, "malformed answer: expected the message content to be JSON"))
        }
        var typed: [JSONValue] = []
        for field in fields {
            switch field.value(in: document) {
            case .success(let v): typed.append(v)
            case .failure(let problem):
                return .failure(client.error(.unavailable, "malformed answer: content: \(problem.message)"))
            }
        }
        return .success(BatchRowAnswer(values: typed, usage: answer.usage, modelVersion: answer.modelVersion))
    }

    /// Rows' values stacked into the output tensors.
    private static func stack(_ rows: [[JSONValue]], fields: [OutputField], client: UpstreamClient) -> Result<
        [String: Value], UpstreamError
    > {
        let columns =
            fields.isEmpty ? [OutputField(name: "text", pointer: JSONPointer(tokens: []), type: .string)] : fields
        return OutputColumns.tensors(columns, rows: rows).mapError {
            client.error(.unavailable, "malformed answer: \($0.message)")
        }
    }

    // MARK: Provider batches

    var batchEndpoint: String { batches.pathPrefix + "/chat/completions" }

    func batchBodies(_ feeds: [String: Tensor], rows: Int) -> [Result<JSONValue, UpstreamError>] {
        let form = schemaForm.current
        return Upstreams.batchBodies(feeds, rows: rows, inputs: metadata.inputs, client: client) { values in
            let messages = upstream.messages.map { ($0.role, Template.text($0.content, values: values)) }
            return OpenAICoding.chatRequestJSON(
                model: model, messages: messages, maxTokens: upstream.maxTokens, temperature: upstream.temperature,
                schema: schema, form: form)
        }
    }

    func batchAnswer(_ body: JSONValue) -> Result<BatchRowAnswer, UpstreamError> {
        Self.read(body, fields: fields, client: client)
    }

    func batchOutputs(_ rows: [[JSONValue]]) -> Result<[String: Value], UpstreamError> {
        Self.stack(rows, fields: fields, client: client)
    }

    func shutdown() async { await client.shutdown() }

    /// The structured-output form this upstream takes: OpenAI's `json_schema` until a refusal of it was followed by
    /// a success with `json_object` (llama-cpp-python); then `json_object` for the model's life.
    private let schemaForm = SchemaFormChoice()
}

/// The structured-output form an OpenAI-compatible upstream was found to take.
final class SchemaFormChoice: Sendable {
    private let form = Mutex(OpenAICoding.SchemaForm.jsonSchema)

    var current: OpenAICoding.SchemaForm { form.withLock { $0 } }

    func use(_ newForm: OpenAICoding.SchemaForm, client: UpstreamClient) {
        let changed = form.withLock { old in
            defer { old = newForm }
            return old != newForm
        }
        if changed { client.log("the API refused response_format json_schema and took json_object: using that") }
    }

    /// Whether an error may be the API refusing the request's `response_format`: answered 400, 422 or 500 (the last
    /// is what llama-cpp-python answers to a request body it does not validate).
    static func mayBeRefusal(_ error: UpstreamError) -> Bool {
        error.kind == .badRequest
            || (error.kind == .unavailable && error.message.contains(": answered 500"))
    }
}
