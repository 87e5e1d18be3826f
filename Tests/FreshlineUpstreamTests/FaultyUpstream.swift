import FreshlineEngine
import FreshlineJSON
import FreshlineTesting
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization

/// A test double of an upstream model server, on 127.0.0.1 with a port of its own: it answers the OIP V2,
/// OpenAI-compatible and plain JSON endpoints the client calls, and fails on command (a status with an optional
/// `Retry-After`, a slow answer, a body that is not JSON). It counts the requests that reach it and keeps the
/// `Authorization` headers it saw.
///
/// The answers are computed from the request, so tests can check the round trip: OIP `y` is the sum of each
/// row of `X` (FP32 [rows, 1]) and `label` is `row-N` (BYTES [rows]); chat echoes the last message, as JSON fields
/// when a schema is asked for; embeddings are `[length of the text, index, 0, 1]`, listed in reverse order; the
/// plain endpoint answers `{"result": {"double": 2·x, "label": text}}`.
///
/// A chat request with `"stream": true` is answered as OpenAI streams: server-sent events, one chunk per three
/// characters of the same content (`choices[0].delta.content`), a last chunk with `usage`, then `data: [DONE]`; the
/// `.stream` fault spaces the chunks out and ends the stream early, stalled, or with a chunk that is not JSON.
final class FaultyUpstream: Sendable {
    /// What to do with one request.
    enum Fault: Sendable {
        case status(Int, retryAfter: String? = nil)
        /// Sleep, then answer normally.
        case slow(Duration)
        /// 200 with a body that is not JSON.
        case notJSON
        /// 200 with JSON of the wrong shape.
        case wrongShape
        /// A streamed chat answer whose chunks come `every` apart; after `after` content chunks, `then`.
        case stream(every: Duration, after: Int = .max, then: StreamEnd = .done)
    }

    /// How a streamed answer ends.
    enum StreamEnd: Sendable {
        /// The usage chunk and `[DONE]`.
        case done
        /// The body ends without `[DONE]`.
        case cut
        /// Nothing more for this long, then the body ends without `[DONE]`.
        case stall(Duration)
        /// A chunk that is not JSON, then `[DONE]`.
        case malformed
    }

    private struct State {
        var faults: [Fault] = []
        var requests: [String: Int] = [:]
        var authorizations: [String] = []
        var refusesJSONSchema = false
        var streams = 0
        /// Requests whose handler (or streamed body) has not finished yet.
        var active = 0
    }
    private let state = Mutex(State())

    /// Faults for the next requests (to any endpoint but the metadata ones), in order; afterwards requests succeed.
    func fail(_ faults: [Fault]) { state.withLock { $0.faults.append(contentsOf: faults) } }
    /// Answers 500 to chat requests with `response_format` `json_schema`, as llama-cpp-python 0.3 does (it only
    /// takes `{"type": "json_object", "schema": …}`).
    func refuseJSONSchema() { state.withLock { $0.refusesJSONSchema = true } }
    /// Requests that reached the server, per path.
    func requests(_ path: String) -> Int { state.withLock { $0.requests[path] ?? 0 } }
    var totalRequests: Int { state.withLock { $0.requests.values.reduce(0, +) } }
    var authorizations: [String] { state.withLock { $0.authorizations } }
    /// Chat requests answered as a stream (they asked for `stream: true` with `stream_options.include_usage`).
    var streams: Int { state.withLock { $0.streams } }

    /// Runs the server for the length of `body`, which gets its base URL (`http://127.0.0.1:PORT`).
    func run(_ body: @escaping @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        router.get("/v2/models/m") { request, _ in
            self.count(request)
            return Self.json(
                #"""
                {"name": "m", "versions": ["7"], "platform": "fake",
                 "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 3]}],
                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}, {"name": "label", "datatype": "BYTES", "shape": [-1]}]}
                """#)
        }
        router.get("/v2/models/nonsense") { request, _ in
            self.count(request)
            return Self.json(#"{"inputs": "none"}"#)
        }
        router.post("/v2/models/m/infer") { request, context in
            try await self.answer(request, context) { json in
                guard case .object(let o) = json, case .array(let inputs)? = o["inputs"],
                    case .object(let x)? = inputs.first,
                    case .array(let shape)? = x["shape"], case .integer(let rows)? = shape.first,
                    case .array(let data)? = x["data"]
                else { return #"{"error": "bad request"}"# }
                let width = data.count / max(1, Int(rows))
                let sums = (0..<Int(rows)).map { r in
                    (0..<width).reduce(0.0) { $0 + (data[r * width + $1].doubleValue ?? 0) }
                }
                let labels = (0..<Int(rows)).map { "\"row-\($0)\"" }.joined(separator: ",")
                return
                    #"{"model_name": "m", "model_version": "7", "outputs": [{"name": "y", "datatype": "FP32", "shape": [\#(rows), 1], "data": [\#(sums.map { String($0) }.joined(separator: ","))]}, {"name": "label", "datatype": "BYTES", "shape": [\#(rows)], "data": [\#(labels)]}]}"#
            }
        }
        router.get("/v1/models") { request, _ in
            self.count(request)
            return Self.json(#"{"object": "list", "data": [{"id": "fake-chat"}]}"#)
        }
        router.post("/v1/chat/completions") { request, context in
            try await self.answer(request, context) { json in
                guard case .object(let o) = json, case .array(let messages)? = o["messages"],
                    case .object(let last)? = messages.last, case .string(let text)? = last["content"]
                else { return #"{"error": "bad request"}"# }
                var content: [UInt8] = []
                if o["response_format"] != nil {
                    JSONValue.object([
                        "answer": .string(text), "score": .number(0.5), "n": .integer(3), "ok": .bool(true),
                    ])
                    .write(into: &content)
                } else {
                    content = Array("echo: \(text)".utf8)
                }
                var quoted: [UInt8] = []
                JSONValue.writeString(String(decoding: content, as: UTF8.self), into: &quoted)
                return
                    #"{"model": "fake-chat", "system_fingerprint": "fp_1", "choices": [{"index": 0, "message": {"role": "assistant", "content": \#(String(decoding: quoted, as: UTF8.self))}}], "usage": {"prompt_tokens": 10, "completion_tokens": 5}}"#
            }
        }
        router.post("/v1/embeddings") { request, context in
            try await self.answer(request, context) { json in
                guard case .object(let o) = json, case .array(let inputs)? = o["input"] else {
                    return #"{"error": "bad"}"#
                }
                let items = inputs.enumerated().reversed().map { index, text in
                    let length = { if case .string(let s) = text { s.count } else { 0 } }()
                    return #"{"object": "embedding", "index": \#(index), "embedding": [\#(length), \#(index), 0, 1]}"#
                }
                return
                    #"{"model": "fake-embed", "data": [\#(items.joined(separator: ","))], "usage": {"prompt_tokens": \#(inputs.count * 3), "total_tokens": 0}}"#
            }
        }
        router.post("/plain") { request, context in
            try await self.answer(request, context) { json in
                guard case .object(let o) = json, let x = o["x"]?.doubleValue, case .string(let text)? = o["text"]
                else {
                    return #"{"error": "bad"}"#
                }
                var quoted: [UInt8] = []
                JSONValue.writeString(text, into: &quoted)
                return #"{"result": {"double": \#(2 * x), "label": \#(String(decoding: quoted, as: UTF8.self))}}"#
            }
        }
        var logger = Logger(label: "faulty-upstream")
        logger.logLevel = .critical
        let port = try await ResidentServer.start { running in
            Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                onServerRunning: running, logger: logger)
        }
        do { try await body("http://127.0.0.1:\(port)") } catch {
            await handlersFinished()
            throw error
        }
        await handlersFinished()
    }

    /// Waits (at most 15 s) until no handler or streamed body is still running, so that a slow or stalled answer
    /// to a client that gave up does not run on into the next test's time (the server itself stays up: see
    /// `ResidentServer`).
    private func handlersFinished() async {
        let deadline = ContinuousClock.now + .seconds(15)
        while state.withLock({ $0.active }) > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private func begin() { state.withLock { $0.active += 1 } }
    private func end() { state.withLock { $0.active -= 1 } }

    private func count(_ request: Request) {
        state.withLock { state in
            state.requests[request.uri.path, default: 0] += 1
            if let value = request.headers[.authorization] { state.authorizations.append(value) }
        }
    }

    private func answer(_ request: Request, _ context: BasicRequestContext, _ compute: (JSONValue) -> String)
        async throws -> Response
    {
        count(request)
        begin()
        var streaming = false
        defer { if !streaming { end() } }
        let fault = state.withLock { $0.faults.isEmpty ? nil : $0.faults.removeFirst() }
        let body = try await request.body.collect(upTo: 1 << 20)
        switch fault {
        case .status(let code, let retryAfter)?:
            var headers = HTTPFields()
            if let retryAfter { headers[.retryAfter] = retryAfter }
            return Response(
                status: .init(code: code), headers: headers,
                body: .init(byteBuffer: ByteBuffer(string: #"{"error": "secret upstream detail"}"#)))
        case .slow(let delay)?:
            try? await Task.sleep(for: delay)
        case .notJSON?:
            return Self.json("<html>secret upstream detail</html>")
        case .wrongShape?:
            return Self.json(#"{"unexpected": "secret upstream detail"}"#)
        case .stream?, nil:
            break
        }
        let json = (try? JSONValue.parse(Array(body.readableBytesView))) ?? .null
        if state.withLock({ $0.refusesJSONSchema }), case .object(let o) = json,
            case .object(let format)? = o["response_format"], format["type"] == .string("json_schema")
        {
            return Response(status: .internalServerError)
        }
        if case .object(let o) = json, o["stream"] == .bool(true),
            case .object(let options)? = o["stream_options"], options["include_usage"] == .bool(true)
        {
            state.withLock { $0.streams += 1 }
            streaming = true  // the body's writer ends the request's activity
            if case .stream(let every, let after, let end)? = fault {
                return Self.streamed(compute(json), every: every, after: after, then: end) { self.end() }
            }
            return Self.streamed(compute(json), every: .zero, after: .max, then: .done) { self.end() }
        }
        return Self.json(compute(json))
    }

    /// A chat answer (`choices[0].message.content`) as OpenAI streams it: a chunk per three characters, each
    /// `every` apart; after `after` of them, the `end`.
    private static func streamed(
        _ answer: String, every: Duration, after: Int, then end: StreamEnd, finished: @escaping @Sendable () -> Void
    ) -> Response {
        var content = ""
        if case .object(let o)? = try? JSONValue.parse(Array(answer.utf8)), case .array(let choices)? = o["choices"],
            case .object(let choice)? = choices.first, case .object(let message)? = choice["message"],
            case .string(let text)? = message["content"]
        {
            content = text
        }
        var pieces: [String] = []
        var rest = Substring(content)
        while !rest.isEmpty {
            pieces.append(String(rest.prefix(3)))
            rest = rest.dropFirst(3)
        }
        let chunks = pieces
        @Sendable func produce(_ writer: inout any ResponseBodyWriter) async throws {
            for (index, piece) in chunks.enumerated() {
                guard index < after else { break }
                if every > .zero { try await Task.sleep(for: every) }
                try await writer.write(
                    Self.event(
                        .object([
                            "model": .string("fake-chat"), "system_fingerprint": .string("fp_1"),
                            "choices": .array([
                                .object(["index": .integer(0), "delta": .object(["content": .string(piece)])])
                            ]),
                        ])))
            }
            switch end {
            case .done, .malformed:
                if case .malformed = end { try await writer.write(ByteBuffer(string: "data: {\"choices\": [\n\n")) }
                try await writer.write(
                    Self.event(
                        .object([
                            "model": .string("fake-chat"), "choices": .array([]),
                            "usage": .object(["prompt_tokens": .integer(10), "completion_tokens": .integer(5)]),
                        ])))
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            case .cut:
                break
            case .stall(let pause):
                try? await Task.sleep(for: pause)
            }
        }
        let body = ResponseBody { writer in
            defer { finished() }
            // Whatever happens to the connection (a client that gave up), the writer is finished.
            do { try await produce(&writer) } catch {}
            try? await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: body)
    }

    /// One server-sent event carrying `chunk`.
    private static func event(_ chunk: JSONValue) -> ByteBuffer {
        ByteBuffer(string: "data: " + String(decoding: chunk.serialized(), as: UTF8.self) + "\n\n")
    }

    private static func json(_ text: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
