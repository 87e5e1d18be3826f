internal import Foundation
internal import FreshlineCore
public import FreshlineEngine
public import FreshlineJSON
internal import NIOHTTP1

/// A model whose rows can also run through its provider's Batch API (OpenAI's `/v1/files` and `/v1/batches`): a
/// batch run writes its rows as request lines, and reads each row's answer back from the batch's output file.
/// The lines and the answers are the ones a direct call would send and read, so a row computes the same either way.
public protocol ProviderBatchModel: RemoteModel {
    /// The Batch API of the model's upstream (same base URL, key and pool as its direct calls).
    var batches: ProviderBatchAPI { get }
    /// The endpoint every request line names (`/v1/chat/completions`).
    var batchEndpoint: String { get }
    /// One request body per row of `feeds` (each feed's first dimension is `rows`); a row that cannot be sent is a
    /// `.badRequest` failure of that row alone.
    func batchBodies(_ feeds: [String: Tensor], rows: Int) -> [Result<JSONValue, UpstreamError>]
    /// Reads the body of one successful output line: the row's values, in the order of `metadata.outputs`.
    func batchAnswer(_ body: JSONValue) -> Result<BatchRowAnswer, UpstreamError>
    /// Stacks rows' values (from `batchAnswer`) into the model's output tensors, as a direct call returns them.
    func batchOutputs(_ rows: [[JSONValue]]) -> Result<[String: Value], UpstreamError>
}

/// One row's answer read from a provider batch's output file.
public struct BatchRowAnswer: Sendable {
    public var values: [JSONValue]
    public var usage: TokenUsage?
    /// The model (and fingerprint) that answered.
    public var modelVersion: String?
}

/// A provider batch as the Batch API describes it (`GET /v1/batches/{id}`).
public struct ProviderBatchStatus: Sendable, Equatable {
    /// The batch's lifecycle (`validating`, `in_progress`, `finalizing`, `completed`, `failed`, `expired`,
    /// `cancelling`, `cancelled`).
    public enum State: String, Sendable {
        case validating
        case inProgress = "in_progress"
        case finalizing, completed, failed, expired, cancelling, cancelled

        /// Whether the provider is done with it: its output (if any) is final.
        public var isFinal: Bool { [.completed, .failed, .expired, .cancelled].contains(self) }
    }
    public var id: String
    public var state: State
    public var outputFileID: String?
    public var errorFileID: String?
    /// `request_counts`: total, completed, failed.
    public var total: Int
    public var completed: Int
    public var failed: Int
    public var metadata: [String: String]
    /// Why a failed batch failed (`errors.data[].message`, at most 5, each cut to 200 characters).
    public var errors: [String]
}

/// One line of a provider batch's output or error file.
public struct ProviderBatchResult: Sendable {
    /// The line's `custom_id`: the row's key.
    public var customID: String
    /// The answer's body (status 2xx), or why the row failed.
    public var outcome: Result<JSONValue, UpstreamError>
}

/// The Batch API of an OpenAI-compatible upstream: uploads a JSONL input file, creates a batch, reads its state,
/// finds a batch by the metadata it was created with, and downloads its output and error files.
///
/// Calls go through the upstream's client (its key, its pool, its metrics and its retries) but not its rate-limit
/// budget or its circuit breaker: the provider runs a batch's rows under a separate batch quota, and these are
/// bookkeeping calls, not model calls. Calls that create something (an upload, a batch) are retried only when the
/// request cannot have been acted on (a 429 or 503, or a connection that never opened), so an ambiguous failure
/// never makes a second batch; the caller finds a batch it may have created by its metadata (`find`).
public final class ProviderBatchAPI: Sendable {
    let client: UpstreamClient
    private let base: String
    /// Each call's bound.
    let timeout: Duration

    /// The most bytes of an output or error file read (OpenAI caps an input file at 200 MB; answers are smaller
    /// than that for the 50,000 rows a batch may hold at most).
    static let maximumFileBytes = 512 << 20

    init(client: UpstreamClient, baseURL: String, timeout: Duration = .seconds(120)) {
        self.client = client
        base = Upstreams.trimmed(baseURL)
        self.timeout = timeout
    }

    /// The path prefix request lines name (`/v1` of `https://api.openai.com/v1`).
    var pathPrefix: String {
        let path = URLComponents(string: base)?.path ?? ""
        return path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    /// Appends one request line of a batch input file (`{"custom_id", "method": "POST", "url", "body"}` and `\n`).
    public static func appendRequestLine(customID: String, url: String, body: JSONValue, to out: inout [UInt8]) {
        ProviderBatchCoding.appendLine(customID: customID, url: url, body: body, to: &out)
    }

    /// `POST /files` (purpose `batch`) of a JSONL file; returns its id.
    public func upload(_ jsonl: [UInt8], filename: String) async throws(UpstreamError) -> String {
        let boundary = "freshline-" + UUID().uuidString
        let body = ProviderBatchCoding.multipart(
            boundary: boundary, fields: [("purpose", "batch")],
            file: (name: "file", filename: filename, contentType: "application/jsonl", bytes: jsonl))
        let json = try await client.exchange(
            .POST, base + "/files",
            rawBody: .init(bytes: body, contentType: "multipart/form-data; boundary=\(boundary)"),
            deadline: .now + timeout, budgeted: false, idempotent: false, decode: Self.json)
        guard case .object(let object) = json, case .string(let id)? = object["id"], !id.isEmpty else {
            throw client.error(.unavailable, "malformed answer: the uploaded file has no id")
        }
        return id
    }

    /// `POST /batches` over an uploaded input file.
    public func create(
        inputFileID: String, endpoint: String, completionWindow: String, metadata: [String: String]
    ) async throws(UpstreamError) -> ProviderBatchStatus {
        let body = JSONValue.object([
            "input_file_id": .string(inputFileID), "endpoint": .string(endpoint),
            "completion_window": .string(completionWindow), "metadata": .object(metadata.mapValues { .string($0) }),
        ])
        let json = try await client.exchange(
            .POST, base + "/batches", body: body.serialized(), deadline: .now + timeout, budgeted: false,
            idempotent: false, decode: Self.json)
        return try status(json)
    }

    /// `GET /batches/{id}`.
    public func retrieve(_ id: String) async throws(UpstreamError) -> ProviderBatchStatus {
        let json = try await client.send(
            .GET, base + "/batches/" + Self.escaped(id), deadline: .now + timeout, budgeted: false)
        return try status(json)
    }

    /// The newest batch whose metadata holds every pair of `metadata` and that has not failed, been cancelled or
    /// expired, among the `pages` × 100 newest (`GET /batches?limit=100&after=…`): a batch this run created before
    /// its process died, before it could record the batch's id.
    public func find(metadata: [String: String], pages: Int = 5) async throws(UpstreamError) -> ProviderBatchStatus? {
        var after: String?
        for _ in 0..<max(1, pages) {
            var url = base + "/batches?limit=100"
            if let after { url += "&after=" + Self.escaped(after) }
            let json = try await client.send(.GET, url, deadline: .now + timeout, budgeted: false)
            guard case .object(let object) = json, case .array(let data)? = object["data"] else {
                throw client.error(.unavailable, "malformed answer: the batch list has no data")
            }
            for item in data {
                let batch = try status(item)
                let matches = metadata.allSatisfy { batch.metadata[$0.key] == $0.value }
                if matches, ![.failed, .cancelled, .cancelling, .expired].contains(batch.state) { return batch }
            }
            guard case .bool(true)? = object["has_more"], case .string(let last)? = object["last_id"] else {
                return nil
            }
            after = last
        }
        return nil
    }

    /// `GET /files/{id}/content`: an output or error file's lines.
    public func results(fileID: String) async throws(UpstreamError) -> [ProviderBatchResult] {
        let lines = try await client.exchange(
            .GET, base + "/files/" + Self.escaped(fileID) + "/content", accept: "application/jsonl",
            deadline: .now + timeout, budgeted: false, maximumBytes: Self.maximumFileBytes
        ) { bytes in ProviderBatchCoding.resultLines(bytes) }
        return lines.map { line in
            ProviderBatchResult(
                customID: line.customID, outcome: line.outcome.mapError { UpstreamError(.badRequest, $0.message) })
        }
    }

    /// `POST /batches/{id}/cancel` (a run cancelled by an operator stops paying for its rows).
    public func cancel(_ id: String) async throws(UpstreamError) {
        _ = try await client.send(
            .POST, base + "/batches/" + Self.escaped(id) + "/cancel", deadline: .now + timeout, budgeted: false)
    }

    private func status(_ json: JSONValue) throws(UpstreamError) -> ProviderBatchStatus {
        switch ProviderBatchCoding.status(json) {
        case .success(let status): return status
        case .failure(let problem): throw client.error(.unavailable, problem.message)
        }
    }

    private static func json(_ bytes: [UInt8]) -> Result<JSONValue, MalformedAnswer> {
        (try? JSONValue.parse(bytes)).map { .success($0) } ?? .failure("malformed answer: not JSON")
    }

    /// An id as one path segment (ids are provider-made; a `/` or `?` in one must not change the URL).
    static func escaped(_ id: String) -> String {
        id.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_."))) ?? ""
    }
}
