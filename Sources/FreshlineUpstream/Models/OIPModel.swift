internal import FreshlineCore
internal import FreshlineEngine
internal import NIOHTTP1

/// A model served by an Open Inference Protocol V2 server (Triton, KServe, MLServer) over HTTP/JSON: one
/// `POST {url}/v2/models/{model}[/versions/{v}]/infer` per batch of at most `limits.maxBatchRows` rows, every
/// row stacked in one tensor per input, every output of the metadata asked for.
final class OIPModel: RemoteModel {
    let spec: ModelSpec
    let metadata: ModelMetadata
    let client: UpstreamClient
    private let inputs: [OIPCoding.Port]
    private let outputs: [OIPCoding.Port]
    private let inferURL: String
    /// The server's model name and the configured version: the answer's version when it gives none.
    private let modelName: String
    private let configuredVersion: String?

    /// Reads the model's metadata from the server (`GET {url}/v2/models/{model}[/versions/{v}]`).
    static func connect(spec: ModelSpec, upstream: UpstreamSpec, client: UpstreamClient) async throws(UpstreamError)
        -> OIPModel
    {
        guard let model = upstream.model, !model.isEmpty else {
            throw client.error(.badRequest, "an oip model needs `model` (its name on the server)")
        }
        let base = upstream.url.hasSuffix("/") ? String(upstream.url.dropLast()) : upstream.url
        var path = "\(base)/v2/models/\(Self.segment(model))"
        if let version = upstream.version, !version.isEmpty { path += "/versions/\(Self.segment(version))" }
        let json = try await client.send(.GET, path, deadline: client.deadline(nil), budgeted: false)
        let declared: OIPCoding.Metadata
        switch OIPCoding.metadata(json) {
        case .success(let m): declared = m
        case .failure(let problem):
            throw client.error(.unavailable, "malformed model metadata: \(problem.message)")
        }
        guard !declared.inputs.isEmpty else {
            throw client.error(
                .unavailable, "the server declares no inputs for '\(model)' (declare them on the server)")
        }
        guard !declared.outputs.isEmpty else {
            throw client.error(
                .unavailable, "the server declares no outputs for '\(model)' (declare them on the server)")
        }
        return OIPModel(
            spec: spec, client: client, declared: declared, modelName: model, version: upstream.version,
            inferURL: path + "/infer")
    }

    private init(
        spec: ModelSpec, client: UpstreamClient, declared: OIPCoding.Metadata, modelName: String, version: String?,
        inferURL: String
    ) {
        self.spec = spec
        self.client = client
        inputs = declared.inputs
        outputs = declared.outputs
        self.modelName = modelName
        configuredVersion = version
        self.inferURL = inferURL
        func info(_ port: OIPCoding.Port) -> ModelMetadata.ValueInfo {
            ModelMetadata.ValueInfo(name: port.name, type: .tensor(port.datatype.elementType, shape: port.shape))
        }
        metadata = ModelMetadata(
            remoteInputs: declared.inputs.map(info), outputs: declared.outputs.map(info),
            producer: "oip" + (declared.platform.map { " (\($0))" } ?? ""),
            version: "\(modelName):\(version ?? declared.versions.last ?? "unknown")")
    }

    func infer(_ feeds: [String: Tensor], rows: Int, priority: CallPriority, deadline: ContinuousClock.Instant?)
        async throws(UpstreamError) -> RemoteAnswer
    {
        guard rows > 0 else { throw client.error(.badRequest, "no rows") }
        let deadline = client.deadline(deadline)
        let chunk = max(1, client.limits.maxBatchRows)
        let chunks = stride(from: 0, to: rows, by: chunk).map { $0..<min(rows, $0 + chunk) }
        let (inputs, outputs, url, client) = (self.inputs, self.outputs, inferURL, self.client)
        return try await client.guarded { () async throws(UpstreamError) -> RemoteAnswer in
            let parts = try await client.concurrently(chunks.count, width: client.limits.maxConnections) {
                (i) async throws(UpstreamError) -> (outputs: [String: Tensor], version: String?) in
                let range = chunks[i]
                let body: [UInt8]
                switch OIPCoding.request(feeds: feeds, rows: range, inputs: inputs, outputs: outputs) {
                case .success(let b): body = b
                case .failure(let problem): throw client.error(.badRequest, problem.message)
                }
                let json = try await client.send(.POST, url, body: body, priority: priority, deadline: deadline)
                switch OIPCoding.answer(json, expected: outputs, rows: range.count) {
                case .success(let answer): return (answer.outputs, answer.modelVersion)
                case .failure(let problem): throw client.error(.unavailable, "malformed answer: \(problem.message)")
                }
            }
            var merged: [String: Value] = [:]
            for output in outputs {
                let pieces = parts.compactMap { $0.outputs[output.name] }
                do { merged[output.name] = .tensor(try Tensor.stacking(pieces)) } catch {
                    throw client.error(.unavailable, "malformed answer: the batches' '\(output.name)' do not stack")
                }
            }
            let version = parts.first?.version ?? configuredVersion ?? "unknown"
            return RemoteAnswer(outputs: merged, modelVersion: "\(modelName):\(version)")
        }
    }

    func shutdown() async { await client.shutdown() }

    /// A name as one URL path segment (percent-encoded outside the unreserved characters).
    static func segment(_ name: String) -> String {
        var out = ""
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(Character(Unicode.Scalar(byte)))
            default:
                let hex = Array("0123456789ABCDEF")
                out += "%\(hex[Int(byte >> 4)])\(hex[Int(byte & 0xF)])"
            }
        }
        return out
    }
}
