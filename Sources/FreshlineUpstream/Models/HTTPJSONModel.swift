internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import NIOHTTP1

/// A model behind a plain JSON endpoint: one `POST {url}` per row with the request template rendered (each
/// `{{name}}` replaced by the row value's JSON), the outputs read from the answer with JSON pointers and typed as
/// declared. Without a template the body is an object of the inputs by name.
final class HTTPJSONModel: RemoteModel {
    let spec: ModelSpec
    let metadata: ModelMetadata
    let client: UpstreamClient
    private let url: String
    private let template: String?
    private let fields: [OutputField]

    init(spec: ModelSpec, upstream: UpstreamSpec, client: UpstreamClient) throws(UpstreamError) {
        guard !upstream.outputs.isEmpty else {
            throw client.error(.badRequest, "an http model needs outputs (a name, a JSON pointer and a type each)")
        }
        guard upstream.requestTemplate != nil || !upstream.inputNames.isEmpty else {
            throw client.error(.badRequest, "an http model needs a request template or declared inputs")
        }
        self.spec = spec
        self.client = client
        url = upstream.url
        template = upstream.requestTemplate
        let inputs = try Upstreams.inputs(
            upstream, templates: upstream.requestTemplate.map { [$0] } ?? [], client: client)
        fields = try Upstreams.fields(upstream.outputs, client: client)
        if let template = upstream.requestTemplate {
            // The template must make JSON whatever the values: checked once with a sample value of each type.
            let sample = Dictionary(
                uniqueKeysWithValues: inputs.map { ($0.name, Self.sample($0.elementType, $0.shape)) })
            do { _ = try JSONValue.parse(Array(Template.json(template, values: sample).utf8)) } catch {
                throw client.error(.badRequest, "the request template does not make JSON (\(error))")
            }
        }
        metadata = ModelMetadata(
            remoteInputs: inputs, outputs: fields.map(\.info), producer: "http", version: client.endpoint)
    }

    private static func sample(_ type: ElementType, _ shape: [Int]?) -> JSONValue {
        let scalar: JSONValue =
            switch type {
            case .string: .string("a \"sample\"")
            case .bool: .bool(true)
            case .float, .double: .number(0.5)
            default: .integer(1)
            }
        return (shape?.count ?? 1) > 1 ? .array([scalar, scalar]) : scalar
    }

    func infer(_ feeds: [String: Tensor], rows: Int, priority: CallPriority, deadline: ContinuousClock.Instant?)
        async throws(UpstreamError) -> RemoteAnswer
    {
        try Upstreams.check(feeds, rows: rows, inputs: metadata.inputs, client: client)
        let deadline = client.deadline(deadline)
        let (client, url, template, fields) = (self.client, self.url, self.template, self.fields)
        let names = metadata.inputs.map(\.name)
        return try await client.guarded { () async throws(UpstreamError) -> RemoteAnswer in
            let answers = try await client.concurrently(rows, width: client.limits.maxConnections) {
                (row) async throws(UpstreamError) -> [JSONValue] in
                let values = RowValues.row(feeds, row: row)
                let body: [UInt8]
                if let template {
                    body = Array(Template.json(template, values: values).utf8)
                } else {
                    var object: [String: JSONValue] = [:]
                    for name in names { object[name] = values[name] }
                    body = JSONValue.object(object).serialized()
                }
                let json = try await client.send(.POST, url, body: body, priority: priority, deadline: deadline)
                var out: [JSONValue] = []
                for field in fields {
                    switch field.value(in: json) {
                    case .success(let v): out.append(v)
                    case .failure(let problem): throw client.error(.unavailable, "malformed answer: \(problem.message)")
                    }
                }
                return out
            }
            switch OutputColumns.tensors(fields, rows: answers) {
            case .success(let outputs): return RemoteAnswer(outputs: outputs, modelVersion: client.endpoint)
            case .failure(let problem): throw client.error(.unavailable, "malformed answer: \(problem.message)")
            }
        }
    }

    func shutdown() async { await client.shutdown() }
}
