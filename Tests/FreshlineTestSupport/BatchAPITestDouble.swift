import Foundation
import FreshlineEngine
import FreshlineJSON
import FreshlineTesting
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A TEST DOUBLE of OpenAI's Batch API, not a client of any real provider (no local server implements the Batch
/// API): its documented endpoints and file formats, on 127.0.0.1 with a port of its own, able to inject faults.
///
/// - `POST /v1/files` (multipart, purpose `batch`), `GET /v1/files/{id}/content`;
/// - `POST /v1/batches`, `GET /v1/batches/{id}`, `GET /v1/batches` (`limit`, `after`), `POST /v1/batches/{id}/cancel`;
/// - `GET /v1/models` and `POST /v1/chat/completions`, for the same model called directly (real time).
///
/// A batch moves `validating` → `in_progress` → `finalizing` → `completed`, one step per `GET /v1/batches/{id}`
/// (so a client has to poll), and stays `in_progress` while `hold` is on. Each request line is answered as chat
/// would answer it: the content is `summary: ` and the last message's text, with 10 prompt and 5 completion tokens
/// per row; a row whose message holds `FAIL` goes to the error file with status 400 instead. Faults: statuses (with
/// `Retry-After`) or a body that is not JSON for the next calls of an endpoint, a batch that fails its validation, or
/// one that expires after some rows.
public final class BatchAPITestDouble: Sendable {
    /// What to do with the next call of an endpoint.
    public enum Fault: Sendable {
        case status(Int, retryAfter: String? = nil)
        case notJSON
    }
    /// How batches end.
    public enum Outcome: Sendable {
        case complete
        /// `failed`, with this validation error.
        case fail(String)
        /// `expired` after answering this many rows (the rest are in neither file).
        case expire(afterRows: Int)
    }
    /// Endpoints faults can be set for.
    public enum Endpoint: String, Sendable {
        case upload, create, retrieve, list, content, chat
    }

    /// A batch as the double holds it, as `GET /v1/batches/{id}` describes it.
    public struct Batch: Sendable {
        public var id: String
        public var status: String
        public var inputFileID: String
        public var endpoint: String
        public var metadata: [String: String]
        public var outputFileID: String?
        public var errorFileID: String?
        public var total = 0
        public var completed = 0
        public var failed = 0
        public var errors: [String] = []
        public var createdAt: Int
    }

    private struct State {
        var files: [String: [UInt8]] = [:]
        var batches: [String: Batch] = [:]
        var order: [String] = []
        var faults: [Endpoint: [Fault]] = [:]
        var calls: [Endpoint: Int] = [:]
        var hold = false
        var outcome = Outcome.complete
        var authorizations: Set<String> = []
        var nextID = 1
    }
    private let state = Mutex(State())

    public init() {}

    /// Faults for the next calls of `endpoint`, in order; afterwards its calls succeed.
    public func fail(_ endpoint: Endpoint, _ faults: [Fault]) {
        state.withLock { $0.faults[endpoint, default: []] += faults }
    }
    /// Keeps batches `in_progress` (on) or lets them finish (off).
    public func hold(_ on: Bool) { state.withLock { $0.hold = on } }
    /// How the batches created from now on end.
    public func outcome(_ outcome: Outcome) { state.withLock { $0.outcome = outcome } }
    /// Calls of an endpoint that reached the double (faulted ones included).
    public func calls(_ endpoint: Endpoint) -> Int { state.withLock { $0.calls[endpoint] ?? 0 } }
    /// The `Authorization` headers the Batch API endpoints saw.
    public var authorizations: Set<String> { state.withLock { $0.authorizations } }
    /// Every batch, oldest first.
    public var batches: [Batch] { state.withLock { s in s.order.compactMap { s.batches[$0] } } }
    /// An uploaded file's lines.
    public func fileLines(_ id: String) -> [String] {
        state.withLock { String(decoding: $0.files[id] ?? [], as: UTF8.self) }.split(separator: "\n").map(String.init)
    }
    /// Makes a batch as a client would have before it died (for a test of finding it by metadata).
    public func preexisting(lines: [UInt8], metadata: [String: String]) -> String {
        state.withLock { s in
            let file = Self.newID("file", &s)
            s.files[file] = lines
            let id = Self.newID("batch", &s)
            s.batches[id] = Batch(
                id: id, status: "validating", inputFileID: file, endpoint: "/v1/chat/completions",
                metadata: metadata, createdAt: 0)
            s.order.append(id)
            return id
        }
    }

    /// A manifest whose batch feature `summary` runs through the double at `url` (model `writer`, kind `openai`,
    /// `fake-batch-chat`) as provider batches over `accounts.csv`; `extra` is appended to its `batch` section.
    public static func manifest(url: String, extra: String = "") -> String {
        """
        version: 1
        models:
          writer:
            kind: openai
            url: \(url)
            model: fake-batch-chat
            messages:
              - {role: system, content: "Summarise the account."}
              - {role: user, content: "{{notes}}"}
            limits: {max_retries: 2}
        features:
          summary:
            model: writer
            pattern: batch
            key: account_id
            batch:
              source: {csv: accounts.csv}
              chunk_rows: 2
              max_failed_share: 0.9
              provider_batch: {poll: 20ms}\(extra)
        """
    }

    /// Runs the double for the length of `body`, which gets its base URL (`http://127.0.0.1:PORT/v1`).
    public func run(_ body: @escaping @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        router.get("/v1/models") { _, _ in Self.json(#"{"object": "list", "data": [{"id": "fake-batch-chat"}]}"#) }
        router.post("/v1/chat/completions") { request, _ in
            let bytes = try await request.body.collect(upTo: 1 << 20)
            if let fault = self.take(.chat, request) { return Self.respond(fault) }
            guard let json = try? JSONValue.parse(Array(bytes.readableBytesView)), let answer = Self.answer(json)
            else { return Self.error(400, "invalid_request_error", "bad body") }
            return Self.json(String(decoding: answer.body.serialized(), as: UTF8.self))
        }
        router.post("/v1/embeddings") { request, _ in
            let bytes = try await request.body.collect(upTo: 1 << 20)
            // The connect probe sends a list of texts: answered for the first.
            guard case .object(var o)? = try? JSONValue.parse(Array(bytes.readableBytesView)) else {
                return Self.error(400, "invalid_request_error", "bad body")
            }
            if case .array(let texts)? = o["input"] { o["input"] = texts.first ?? .string("") }
            guard let answer = Self.answer(.object(o)) else { return Self.error(400, "invalid_request_error", "bad") }
            return Self.json(String(decoding: answer.body.serialized(), as: UTF8.self))
        }
        router.post("/v1/files") { request, _ in
            let bytes = try await request.body.collect(upTo: 256 << 20)
            if let fault = self.take(.upload, request) { return Self.respond(fault) }
            guard let contentType = request.headers[.contentType],
                let parts = Self.multipart(Array(bytes.readableBytesView), contentType: contentType),
                parts["purpose"].map({ String(decoding: $0, as: UTF8.self) }) == "batch", let file = parts["file"]
            else { return Self.error(400, "invalid_request_error", "expected purpose=batch and a file") }
            let id = self.state.withLock { s in
                let id = Self.newID("file", &s)
                s.files[id] = file
                return id
            }
            return Self.json(#"{"id": "\#(id)", "object": "file", "bytes": \#(file.count), "purpose": "batch"}"#)
        }
        router.get("/v1/files/{id}/content") { request, context in
            if let fault = self.take(.content, request) { return Self.respond(fault) }
            let id = context.parameters.get("id") ?? ""
            guard let bytes = self.state.withLock({ $0.files[id] }) else {
                return Self.error(404, "not_found", "no such file")
            }
            return Response(
                status: .ok, headers: [.contentType: "application/jsonl"],
                body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        router.post("/v1/batches") { request, _ in
            let bytes = try await request.body.collect(upTo: 1 << 20)
            if let fault = self.take(.create, request) { return Self.respond(fault) }
            guard case .object(let o)? = try? JSONValue.parse(Array(bytes.readableBytesView)),
                case .string(let file)? = o["input_file_id"], case .string(let endpoint)? = o["endpoint"],
                o["completion_window"] == .string("24h")
            else { return Self.error(400, "invalid_request_error", "bad batch request") }
            var metadata: [String: String] = [:]
            if case .object(let m)? = o["metadata"] {
                for (k, v) in m { if case .string(let s) = v { metadata[k] = s } }
            }
            let batch = self.state.withLock { s -> Batch? in
                guard s.files[file] != nil else { return nil }
                let id = Self.newID("batch", &s)
                let batch = Batch(
                    id: id, status: "validating", inputFileID: file, endpoint: endpoint, metadata: metadata,
                    createdAt: s.nextID)
                s.batches[id] = batch
                s.order.append(id)
                return batch
            }
            guard let batch else { return Self.error(400, "invalid_request_error", "no such input file") }
            return Self.json(Self.object(batch))
        }
        router.get("/v1/batches/{id}") { request, context in
            if let fault = self.take(.retrieve, request) { return Self.respond(fault) }
            guard let batch = self.advance(context.parameters.get("id") ?? "") else {
                return Self.error(404, "not_found", "no such batch")
            }
            return Self.json(Self.object(batch))
        }
        router.get("/v1/batches") { request, _ in
            if let fault = self.take(.list, request) { return Self.respond(fault) }
            let limit = min(100, max(1, request.uri.queryParameters.get("limit", as: Int.self) ?? 20))
            let after = request.uri.queryParameters.get("after")
            let newestFirst = self.state.withLock { s in s.order.reversed().compactMap { s.batches[$0] } }
            var page = newestFirst[...]
            if let after, let index = page.firstIndex(where: { $0.id == after }) { page = page[(index + 1)...] }
            let items = Array(page.prefix(limit))
            let more = page.count > items.count
            return Self.json(
                #"{"object": "list", "data": [\#(items.map(Self.object).joined(separator: ","))], "has_more": \#(more), "last_id": "\#(items.last?.id ?? "")"}"#
            )
        }
        router.post("/v1/batches/{id}/cancel") { _, context in
            let id = context.parameters.get("id") ?? ""
            let batch = self.state.withLock { s -> Batch? in
                guard var b = s.batches[id] else { return nil }
                if !["completed", "failed", "expired", "cancelled"].contains(b.status) { b.status = "cancelled" }
                s.batches[id] = b
                return b
            }
            guard let batch else { return Self.error(404, "not_found", "no such batch") }
            return Self.json(Self.object(batch))
        }
        var logger = Logger(label: "batch-api-double")
        logger.logLevel = .critical
        let port = try await ResidentServer.start { running in
            Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                onServerRunning: running, logger: logger)
        }
        try await body("http://127.0.0.1:\(port)/v1")
    }

    // MARK: Batches

    /// One step of a batch's life, taken at each poll; at `finalizing` → `completed` its files are written.
    private func advance(_ id: String) -> Batch? {
        state.withLock { s -> Batch? in
            guard var batch = s.batches[id] else { return nil }
            switch batch.status {
            case "validating":
                let lines = Self.lines(s.files[batch.inputFileID] ?? [])
                batch.total = lines.count
                if case .fail(let message) = s.outcome {
                    batch.status = "failed"
                    batch.errors = [message]
                } else {
                    batch.status = "in_progress"
                }
            case "in_progress":
                if !s.hold { batch.status = "finalizing" }
            case "finalizing":
                let lines = Self.lines(s.files[batch.inputFileID] ?? [])
                var output: [UInt8] = []
                var errors: [UInt8] = []
                var answered = 0
                var limit = Int.max
                if case .expire(let rows) = s.outcome { limit = rows }
                for line in lines {
                    guard answered < limit else { break }
                    answered += 1
                    guard case .object(let o) = line, case .string(let customID)? = o["custom_id"],
                        let body = o["body"]
                    else { continue }
                    let requestID = Self.newID("req", &s)
                    if let answer = Self.answer(body), !answer.fails {
                        Self.resultLine(
                            customID: customID, requestID: requestID, status: 200, body: answer.body, into: &output)
                        batch.completed += 1
                    } else {
                        let error = JSONValue.object([
                            "error": .object([
                                "type": .string("invalid_request_error"), "code": .string("content_rejected"),
                                "message": .string("the row was refused"),
                            ])
                        ])
                        Self.resultLine(
                            customID: customID, requestID: requestID, status: 400, body: error, into: &errors)
                        batch.failed += 1
                    }
                }
                if !output.isEmpty {
                    let file = Self.newID("file", &s)
                    s.files[file] = output
                    batch.outputFileID = file
                }
                if !errors.isEmpty {
                    let file = Self.newID("file", &s)
                    s.files[file] = errors
                    batch.errorFileID = file
                }
                if case .expire = s.outcome { batch.status = "expired" } else { batch.status = "completed" }
            default: break
            }
            s.batches[id] = batch
            return batch
        }
    }

    private static func resultLine(
        customID: String, requestID: String, status: Int, body: JSONValue, into out: inout [UInt8]
    ) {
        JSONValue.object([
            "id": .string("batch_req_\(requestID)"), "custom_id": .string(customID),
            "response": .object([
                "status_code": .integer(Int64(status)), "request_id": .string(requestID), "body": body,
            ]),
            "error": .null,
        ]).write(into: &out)
        out.append(UInt8(ascii: "\n"))
    }

    /// A chat completion for a request body: `summary: TEXT` (or JSON fields when a schema is asked for); `fails`
    /// when the text holds `FAIL`.
    private static func answer(_ request: JSONValue) -> (body: JSONValue, fails: Bool)? {
        if case .object(let o) = request, case .string(let text)? = o["input"] {
            // An embeddings request: `[characters, 1, 0]`.
            let body = JSONValue.object([
                "object": .string("list"), "model": .string("fake-batch-embed"),
                "data": .array([
                    .object([
                        "object": .string("embedding"), "index": .integer(0),
                        "embedding": .array([.number(Double(text.count)), .number(1), .number(0)]),
                    ])
                ]),
                "usage": .object(["prompt_tokens": .integer(3), "total_tokens": .integer(3)]),
            ])
            return (body, text.contains("FAIL"))
        }
        guard case .object(let o) = request, case .array(let messages)? = o["messages"],
            case .object(let last)? = messages.last, case .string(let text)? = last["content"]
        else { return nil }
        let content: String
        if o["response_format"] != nil {
            content = String(
                decoding: JSONValue.object(["summary": .string(text), "risk": .number(0.25)]).serialized(),
                as: UTF8.self)
        } else {
            content = "summary: \(text)"
        }
        let body = JSONValue.object([
            "id": .string("chatcmpl-double"), "object": .string("chat.completion"),
            "model": .string("fake-batch-chat"), "system_fingerprint": .string("fp_b"),
            "choices": .array([
                .object([
                    "index": .integer(0), "finish_reason": .string("stop"),
                    "message": .object(["role": .string("assistant"), "content": .string(content)]),
                ])
            ]),
            "usage": .object(["prompt_tokens": .integer(10), "completion_tokens": .integer(5)]),
        ])
        return (body, text.contains("FAIL"))
    }

    private static func object(_ b: Batch) -> String {
        var o: [String: JSONValue] = [
            "id": .string(b.id), "object": .string("batch"), "endpoint": .string(b.endpoint),
            "input_file_id": .string(b.inputFileID), "completion_window": .string("24h"),
            "status": .string(b.status), "created_at": .integer(Int64(b.createdAt)),
            "request_counts": .object([
                "total": .integer(Int64(b.total)), "completed": .integer(Int64(b.completed)),
                "failed": .integer(Int64(b.failed)),
            ]),
            "metadata": .object(b.metadata.mapValues { .string($0) }),
            "output_file_id": b.outputFileID.map { .string($0) } ?? .null,
            "error_file_id": b.errorFileID.map { .string($0) } ?? .null,
        ]
        if !b.errors.isEmpty {
            o["errors"] = .object([
                "object": .string("list"),
                "data": .array(
                    b.errors.map { .object(["code": .string("invalid_file"), "message": .string($0)]) }),
            ])
        }
        return String(decoding: JSONValue.object(o).serialized(), as: UTF8.self)
    }

    // MARK: Helpers

    private func take(_ endpoint: Endpoint, _ request: Request) -> Fault? {
        state.withLock { s in
            s.calls[endpoint, default: 0] += 1
            if let value = request.headers[.authorization] { s.authorizations.insert(value) }
            guard var queue = s.faults[endpoint], !queue.isEmpty else { return nil }
            let fault = queue.removeFirst()
            s.faults[endpoint] = queue
            return fault
        }
    }

    private static func newID(_ prefix: String, _ s: inout State) -> String {
        defer { s.nextID += 1 }
        return "\(prefix)_\(s.nextID)"
    }

    private static func lines(_ bytes: [UInt8]) -> [JSONValue] {
        bytes.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONValue.parse($0) }
    }

    /// The parts of a `multipart/form-data` body by name.
    private static func multipart(_ body: [UInt8], contentType: String) -> [String: [UInt8]]? {
        guard let range = contentType.range(of: "boundary=") else { return nil }
        let boundary = Array(("--" + contentType[range.upperBound...].trimmingCharacters(in: .whitespaces)).utf8)
        var parts: [String: [UInt8]] = [:]
        var starts: [Int] = []
        var i = 0
        while i + boundary.count <= body.count {
            if body[i..<(i + boundary.count)].elementsEqual(boundary) {
                starts.append(i)
                i += boundary.count
            } else {
                i += 1
            }
        }
        for (a, b) in zip(starts, starts.dropFirst()) {
            let part = Array(body[(a + boundary.count)..<b])
            let separator = Array("\r\n\r\n".utf8)
            guard
                let split = (0..<max(0, part.count - 3)).first(where: { part[$0..<($0 + 4)].elementsEqual(separator) })
            else { continue }
            let head = String(decoding: part[..<split], as: UTF8.self)
            guard let nameRange = head.range(of: "name=\"") else { continue }
            let name = head[nameRange.upperBound...].prefix { $0 != "\"" }
            var content = Array(part[(split + 4)...])
            if content.suffix(2) == [13, 10] { content.removeLast(2) }
            parts[String(name)] = content
        }
        return parts
    }

    private static func respond(_ fault: Fault) -> Response {
        switch fault {
        case .status(let code, let retryAfter):
            var headers = HTTPFields()
            if let retryAfter { headers[.retryAfter] = retryAfter }
            return Response(
                status: .init(code: code), headers: headers,
                body: .init(byteBuffer: ByteBuffer(string: #"{"error": {"message": "injected fault"}}"#)))
        case .notJSON: return json("<html>injected fault</html>")
        }
    }

    private static func error(_ code: Int, _ type: String, _ message: String) -> Response {
        Response(
            status: .init(code: code), headers: [.contentType: "application/json"],
            body: .init(
                byteBuffer: ByteBuffer(string: #"{"error": {"type": "\#(type)", "message": "\#(message)"}}"#)))
    }

    private static func json(_ text: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
