public import CoreMetrics
internal import Foundation
public import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
public import Logging
internal import NIOHTTP1

/// Connects the models of a manifest's `models` entries that run on another server.
public enum Upstreams {
    /// Builds the model for `spec.upstream` (which must be set) and checks that it can work: reads an `oip` model's
    /// metadata from its server, learns an `openai` embedding's length with one probe call, checks that an `openai`
    /// chat API answers, and checks the templates, pointers and API key of every kind.
    ///
    /// - Parameters:
    ///   - environment: where `apiKeyEnv` is looked up (the process environment in production).
    ///   - metrics: the factory the upstream's metrics are made with (default: the bootstrapped `MetricsSystem`).
    ///   - budgetStore: where the rate-limit budget is shared with the other servers of a cluster (PostgreSQL);
    ///     `nil`: the budget is this server's own.
    /// - Throws: `UpstreamError`, its message naming the model and the URL (never the API key): `.badRequest` when
    ///   the entry cannot work as written (a missing variable, a template that does not make JSON), `.unavailable`
    ///   when the server cannot be reached or answers something else than expected.
    /// - Returns: the model; call its `shutdown()` at server stop.
    public static func connect(
        _ spec: ModelSpec, environment: [String: String], logger: Logger, metrics: (any MetricsFactory)? = nil,
        budgetStore: (any UpstreamBudgetStore)? = nil
    ) async throws -> any RemoteModel {
        guard let upstream = spec.upstream else {
            preconditionFailure("Upstreams.connect(\(spec.name)): the model has no upstream")
        }
        let shown = UpstreamClient.display(upstream.url)
        func fail(_ message: String) -> UpstreamError {
            UpstreamError(.badRequest, "upstream model '\(spec.name)' (\(shown)): \(message)")
        }
        guard let url = URL(string: upstream.url), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty
        else { throw fail("the url is not an http:// or https:// URL") }
        var apiKey: String?
        if let variable = upstream.apiKeyEnv {
            guard let value = environment[variable], !value.isEmpty else {
                throw fail("the environment variable \(variable) (api_key_env) is not set")
            }
            // A key with a line break would end the header early: refused rather than sent.
            guard !value.contains(where: { $0.isNewline }) else {
                throw fail("the environment variable \(variable) (api_key_env) holds a line break")
            }
            apiKey = value
        }
        let client = UpstreamClient(
            model: spec.name, url: upstream.url, limits: upstream.limits, apiKey: apiKey,
            metrics: metrics ?? MetricsSystem.factory, logger: logger, budgetStore: budgetStore)
        do {
            let model: any RemoteModel
            switch upstream.kind {
            case .oip:
                model = try await OIPModel.connect(spec: spec, upstream: upstream, client: client)
            case .openai:
                guard let name = upstream.model, !name.isEmpty else {
                    throw client.error(.badRequest, "an openai model needs `model` (the model sent with each call)")
                }
                switch upstream.endpoint {
                case .chat:
                    let chat = try OpenAIChatModel(spec: spec, upstream: upstream, model: name, client: client)
                    try await checkReachable(trimmed(upstream.url) + "/models", client: client)
                    model = chat
                case .embeddings:
                    model = try await OpenAIEmbeddingsModel.connect(
                        spec: spec, upstream: upstream, model: name, client: client)
                }
            case .http:
                // Nothing to ask a plain endpoint without making a call: reachability shows at the first call.
                model = try HTTPJSONModel(spec: spec, upstream: upstream, client: client)
            }
            logger.info(
                "\(client.prefix): connected, inputs \(model.metadata.inputs.map(\.name)), outputs \(model.metadata.outputs.map(\.name))"
            )
            return model
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// `GET {url}/models` of an OpenAI-compatible API: any answer but 401 or 403 means the API is there.
    private static func checkReachable(_ url: String, client: UpstreamClient) async throws(UpstreamError) {
        do { _ = try await client.send(.GET, url, deadline: client.deadline(nil), budgeted: false) } catch {
            // Reachable but without a model list (a gateway may not have one): fine. No answer, or a refused key: not.
            if error.message.hasSuffix("answered 401") || error.message.hasSuffix("answered 403") {
                throw client.error(.unavailable, "GET /models answered \(error.message.suffix(3)): check the API key")
            }
            if error.message.contains(": answered ") { return }
            throw error
        }
    }

    // MARK: Helpers shared by the kinds

    /// The URL without a trailing slash, to append paths to.
    static func trimmed(_ url: String) -> String {
        url.hasSuffix("/") ? String(url.dropLast()) : url
    }

    /// The inputs of an `openai` or `http` model: the declared ones, or by default every placeholder of the
    /// templates as a string. Every placeholder must be an input.
    static func inputs(_ upstream: UpstreamSpec, templates: [String], client: UpstreamClient) throws(UpstreamError)
        -> [ModelMetadata.ValueInfo]
    {
        var placeholders: [String] = []
        for template in templates {
            for name in UpstreamSpec.placeholders(template) where !placeholders.contains(name) {
                placeholders.append(name)
            }
        }
        let declared: [(name: String, type: UpstreamSpec.ValueType)] =
            upstream.inputNames.isEmpty ? placeholders.map { (name: $0, type: .string) } : upstream.inputs
        let names = Set(declared.map(\.name))
        if let unknown = placeholders.first(where: { !names.contains($0) }) {
            throw client.error(.badRequest, "the template uses {{\(unknown)}}, which is not a declared input")
        }
        guard !declared.isEmpty else { throw client.error(.badRequest, "the model has no inputs (no placeholders)") }
        return declared.map {
            ModelMetadata.ValueInfo(
                name: $0.name,
                type: .tensor(OutputField.elementType($0.type), shape: $0.type == .floatVector ? [-1, -1] : [-1]))
        }
    }

    /// The declared outputs with their pointers parsed.
    static func fields(_ outputs: [UpstreamSpec.Output], client: UpstreamClient) throws(UpstreamError) -> [OutputField]
    {
        var fields: [OutputField] = []
        for output in outputs {
            guard let pointer = JSONPointer(output.pointer) else {
                throw client.error(
                    .badRequest, "output '\(output.name)': '\(output.pointer)' is not a JSON pointer (RFC 6901)")
            }
            fields.append(OutputField(name: output.name, pointer: pointer, type: output.type))
        }
        return fields
    }

    /// One Batch API request body per row of `feeds`, made by `body` from the row's values; every row fails with the
    /// reason when the feeds do not fit `inputs`.
    static func batchBodies(
        _ feeds: [String: Tensor], rows: Int, inputs: [ModelMetadata.ValueInfo], client: UpstreamClient,
        _ body: ([String: JSONValue]) -> JSONValue
    ) -> [Result<JSONValue, UpstreamError>] {
        do throws(UpstreamError) { try check(feeds, rows: rows, inputs: inputs, client: client) } catch {
            return Array(repeating: .failure(error), count: max(0, rows))
        }
        return (0..<rows).map { .success(body(RowValues.row(feeds, row: $0))) }
    }

    /// Checks that every input is fed with `rows` rows: a missing input or a wrong row count is the caller's fault.
    static func check(_ feeds: [String: Tensor], rows: Int, inputs: [ModelMetadata.ValueInfo], client: UpstreamClient)
        throws(UpstreamError)
    {
        guard rows > 0 else { throw client.error(.badRequest, "no rows") }
        for input in inputs {
            guard let tensor = feeds[input.name] else {
                throw client.error(.badRequest, "input '\(input.name)' is missing")
            }
            guard tensor.shape.first == rows else {
                throw client.error(
                    .badRequest, "input '\(input.name)' has shape \(tensor.shape), expected \(rows) rows")
            }
        }
    }
}
