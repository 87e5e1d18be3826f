internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import NIOHTTP1

/// A model behind an OpenAI-compatible embeddings API: one `POST {url}/embeddings` with every row's text
/// (`input: [...]`, at most `limits.maxBatchRows` per call), answering `embedding`, a float vector per row whose
/// length was learned at connect with one probe call.
final class OpenAIEmbeddingsModel: ProviderBatchModel {
    let spec: ModelSpec
    let metadata: ModelMetadata
    let client: UpstreamClient
    let batches: ProviderBatchAPI
    private let model: String
    private let url: String
    private let template: String
    let dimension: Int

    /// The text embedded when the manifest gives no input template: the `text` input.
    static let defaultTemplate = "{{text}}"

    static func connect(spec: ModelSpec, upstream: UpstreamSpec, model: String, client: UpstreamClient)
        async throws(UpstreamError) -> OpenAIEmbeddingsModel
    {
        let template = upstream.inputTemplate ?? Self.defaultTemplate
        let inputs = try Upstreams.inputs(upstream, templates: [template], client: client)
        let url = Upstreams.trimmed(upstream.url) + "/embeddings"
        // One probe: the vector length is not in any metadata the API offers.
        let json = try await client.send(
            .POST, url, body: OpenAICoding.embeddingsRequest(model: model, texts: ["Freshline connection check"]),
            deadline: client.deadline(nil), budgeted: false)
        let dimension: Int
        switch OpenAICoding.embeddingsAnswer(json, count: 1, dimension: nil) {
        case .success(let answer): dimension = answer.vectors.first?.count ?? 0
        case .failure(let problem): throw client.error(.unavailable, "malformed answer: \(problem.message)")
        }
        return OpenAIEmbeddingsModel(
            spec: spec, model: model, url: url, template: template, inputs: inputs, dimension: dimension,
            client: client)
    }

    private init(
        spec: ModelSpec, model: String, url: String, template: String, inputs: [ModelMetadata.ValueInfo],
        dimension: Int, client: UpstreamClient
    ) {
        self.spec = spec
        self.model = model
        self.url = url
        self.template = template
        self.dimension = dimension
        self.client = client
        batches = ProviderBatchAPI(client: client, baseURL: String(url.dropLast("/embeddings".count)))
        metadata = ModelMetadata(
            remoteInputs: inputs,
            outputs: [ModelMetadata.ValueInfo(name: "embedding", type: .tensor(.float, shape: [-1, dimension]))],
            producer: "openai embeddings", version: model)
    }

    func infer(_ feeds: [String: Tensor], rows: Int, priority: CallPriority, deadline: ContinuousClock.Instant?)
        async throws(UpstreamError) -> RemoteAnswer
    {
        try Upstreams.check(feeds, rows: rows, inputs: metadata.inputs, client: client)
        let deadline = client.deadline(deadline)
        let texts = (0..<rows).map { Template.text(template, values: RowValues.row(feeds, row: $0)) }
        let chunk = max(1, client.limits.maxBatchRows)
        let chunks = stride(from: 0, to: rows, by: chunk).map { $0..<min(rows, $0 + chunk) }
        let (client, model, url, dimension) = (self.client, self.model, self.url, self.dimension)
        return try await client.guarded { () async throws(UpstreamError) -> RemoteAnswer in
            let parts = try await client.concurrently(chunks.count, width: client.limits.maxConnections) {
                (i) async throws(UpstreamError) -> OpenAICoding.EmbeddingsAnswer in
                let slice = Array(texts[chunks[i]])
                let estimate = slice.reduce(0) { $0 + $1.utf8.count / 4 + 1 }
                let json = try await client.send(
                    .POST, url, body: OpenAICoding.embeddingsRequest(model: model, texts: slice), priority: priority,
                    tokens: estimate, deadline: deadline)
                switch OpenAICoding.embeddingsAnswer(json, count: slice.count, dimension: dimension) {
                case .success(let answer):
                    if let used = answer.promptTokens {
                        client.settle(estimatedTokens: estimate, actualTokens: used)
                        client.metrics.tokens(input: used, output: 0)
                    }
                    return answer
                case .failure(let problem):
                    throw client.error(.unavailable, "malformed answer: \(problem.message)")
                }
            }
            let flat = parts.flatMap { $0.vectors.flatMap { $0 } }
            guard let tensor = try? Tensor(shape: [rows, dimension], floats: flat) else {
                throw client.error(
                    .unavailable, "malformed answer: the embeddings do not make a \(rows)×\(dimension) tensor")
            }
            var usage: [TokenUsage] = []
            for (part, range) in zip(parts, chunks) {
                usage += Self.spread(part.promptTokens ?? 0, over: range.count)
            }
            return RemoteAnswer(
                outputs: ["embedding": .tensor(tensor)], modelVersion: parts.first?.modelVersion ?? model,
                usage: usage)
        }
    }

    /// A call's prompt tokens shared over its rows: equal parts, the remainder to the first rows.
    static func spread(_ tokens: Int, over rows: Int) -> [TokenUsage] {
        guard rows > 0 else { return [] }
        let (share, remainder) = tokens.quotientAndRemainder(dividingBy: rows)
        return (0..<rows).map { TokenUsage(input: share + ($0 < remainder ? 1 : 0), output: 0) }
    }

    func shutdown() async { await client.shutdown() }

    // MARK: Provider batches

    var batchEndpoint: String { batches.pathPrefix + "/embeddings" }

    func batchBodies(_ feeds: [String: Tensor], rows: Int) -> [Result<JSONValue, UpstreamError>] {
        Upstreams.batchBodies(feeds, rows: rows, inputs: metadata.inputs, client: client) { values in
            .object(["model": .string(model), "input": .string(Template.text(template, values: values))])
        }
    }

    func batchAnswer(_ body: JSONValue) -> Result<BatchRowAnswer, UpstreamError> {
        switch OpenAICoding.embeddingsAnswer(body, count: 1, dimension: dimension) {
        case .success(let answer):
            let vector = answer.vectors.first ?? []
            return .success(
                BatchRowAnswer(
                    values: [.array(vector.map { .number(Double($0)) })],
                    usage: answer.promptTokens.map { TokenUsage(input: $0, output: 0) },
                    modelVersion: answer.modelVersion))
        case .failure(let problem): return .failure(client.error(.unavailable, "malformed answer: \(problem.message)"))
        }
    }

    func batchOutputs(_ rows: [[JSONValue]]) -> Result<[String: Value], UpstreamError> {
        var flat: [Float] = []
        flat.reserveCapacity(rows.count * dimension)
        for row in rows {
            guard case .array(let numbers)? = row.first, numbers.count == dimension else {
                return .failure(client.error(.unavailable, "malformed answer: an embedding of the wrong length"))
            }
            for number in numbers { flat.append(Float(number.doubleValue ?? .nan)) }
        }
        guard let tensor = try? Tensor(shape: [rows.count, dimension], floats: flat) else {
            return .failure(client.error(.unavailable, "malformed answer: the embeddings do not make a tensor"))
        }
        return .success(["embedding": .tensor(tensor)])
    }
}
