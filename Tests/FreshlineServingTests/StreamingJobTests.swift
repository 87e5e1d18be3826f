import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineHTTP
import FreshlineJSON
import FreshlineRuntime
import FreshlineStores
import FreshlineTestSupport
import FreshlineUpstream
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization
import Testing

/// A TEST DOUBLE of a streaming LLM upstream (no server, not a client of one): answers each row's `message` with a
/// sentence of `words` words, reporting the text so far through `partial` one word every `every`, as an `openai`
/// chat model with `stream: true` does. It counts the calls that were cancelled mid-stream.
final class StreamingUpstreamDouble: RemoteModel {
    let spec: ModelSpec
    let metadata: ModelMetadata
    let every: Duration
    let words: Int
    private let cancelled = Mutex(0)
    /// Calls left that fail after `failAfter` words (an upstream that breaks mid-stream).
    private let failures: Mutex<Int>
    private let failAfter = 5

    init(spec: ModelSpec, every: Duration = .milliseconds(60), words: Int = 20, failing: Int = 0) {
        self.spec = spec
        self.every = every
        self.words = words
        failures = Mutex(failing)
        metadata = ModelMetadata(
            remoteInputs: [.init(name: "message", type: .tensor(.string, shape: [-1]))],
            outputs: [.init(name: "text", type: .tensor(.string, shape: [-1]))], producer: "test double",
            version: "double-chat")
    }

    var streams: Bool { true }
    var cancelledCalls: Int { cancelled.withLock { $0 } }

    /// The whole answer to `message`.
    func answer(_ message: String) -> String {
        "echo: " + message + (0..<words).map { " w\($0)" }.joined()
    }

    func infer(_ feeds: [String: Tensor], rows: Int, priority: CallPriority, deadline: ContinuousClock.Instant?)
        async throws(UpstreamError) -> RemoteAnswer
    {
        try await infer(feeds, rows: rows, priority: priority, deadline: deadline, partial: nil)
    }

    func infer(
        _ feeds: [String: Tensor], rows: Int, priority: CallPriority, deadline: ContinuousClock.Instant?,
        partial: PartialText?
    ) async throws(UpstreamError) -> RemoteAnswer {
        guard let messages = feeds["message"]?.strings, messages.count == rows else {
            throw UpstreamError(.badRequest, "message must be \(rows) strings")
        }
        var answers: [String] = []
        for (row, message) in messages.enumerated() {
            var text = "echo: " + message
            partial?(row, text)
            for word in 0..<words {
                do { try await Task.sleep(for: every) } catch {
                    cancelled.withLock { $0 += 1 }
                    throw UpstreamError(.unavailable, "cancelled")
                }
                text += " w\(word)"
                partial?(row, text)
                let breaks =
                    word == failAfter
                    && failures.withLock { left in
                        guard left > 0 else { return false }
                        left -= 1
                        return true
                    }
                if breaks {
                    throw UpstreamError(.unavailable, "the stream was cut before [DONE] (after \(word + 1) chunks)")
                }
            }
            answers.append(text)
        }
        do {
            return RemoteAnswer(
                outputs: ["text": .tensor(try Tensor(shape: [rows], strings: answers))], modelVersion: "double-chat",
                usage: Array(repeating: TokenUsage(input: 4, output: words), count: rows))
        } catch {
            throw UpstreamError(.unavailable, "malformed answer")
        }
    }
}

/// An async feature over a streaming model: the job's partial result grows as the text arrives, `GET /v1/jobs/{id}`
/// shows it, the event stream carries it as `partial` events, and the result is the whole answer.
@Suite("Streaming jobs (with a test double)")
struct StreamingJobTests {
    static let manifest = """
        version: 1
        models:
          writer:
            kind: openai
            url: http://127.0.0.1:9/v1
            model: tiny-chat
            stream: true
            messages:
              - {role: user, content: "{{message}}"}
        features:
          draft: {model: writer, pattern: async}
        """

    static func withServer(
        manifest yaml: String = Self.manifest, failing: Int = 0,
        _ body: @escaping @Sendable (any TestClientProtocol, StreamingUpstreamDouble) async throws -> Void
    ) async throws {
        let manifest = try ManifestLoader.load(path: try TestManifest.write(yaml))
        let model = StreamingUpstreamDouble(spec: try #require(manifest.models["writer"]), failing: failing)
        let stores = try StoreSet.open(for: manifest, logger: Logger(label: "test"))
        let registry = PrometheusCollectorRegistry()
        let runtime = try ServingRuntime(
            manifest: manifest, metricsFactory: PrometheusMetricsFactory(registry: registry),
            remoteModels: ["writer": model], stores: stores, logger: Logger(label: "test"))
        let app = Application(router: FreshlineServer.router(runtime: runtime, registry: registry))
        try await withThrowingTaskGroup(of: Void.self) { group in
            defer { group.cancelAll() }
            for service in stores.services { group.addTask { try? await service.run() } }
            group.addTask { try await runtime.run() }
            try await app.test(.router) { client in try await body(client, model) }
            group.cancelAll()
        }
    }

    static func submit(_ client: some TestClientProtocol, _ message: String) async throws -> String {
        let json = try await client.execute(
            uri: "/v1/features/draft/jobs", method: .post, headers: [.contentType: "application/json"],
            body: ByteBuffer(string: #"{"key": "k1", "inputs": {"message": "\#(message)"}}"#)
        ) { try JSONValue.parse(Array($0.body.readableBytesView)) }
        guard case .object(let object) = json, case .string(let id)? = object["id"] else {
            throw StreamingTestFailure(description: "no job id in \(json)")
        }
        return id
    }

    static func job(_ client: some TestClientProtocol, _ id: String) async throws -> [String: JSONValue] {
        let json = try await client.execute(uri: "/v1/jobs/\(id)", method: .get) {
            try JSONValue.parse(Array($0.body.readableBytesView))
        }
        guard case .object(let object) = json else { throw StreamingTestFailure(description: "not a job: \(json)") }
        return object
    }

    /// The streamed text of the first row of a job's `partial`, if it is streaming.
    static func streamedText(_ partial: JSONValue?) -> String? {
        guard case .array(let rows)? = partial, case .object(let row)? = rows.first,
            row["state"] == .string("streaming"), case .string(let text)? = row["text"]
        else { return nil }
        return text
    }

    @Test("GET /v1/jobs/{id} shows the text so far while the job runs; the result is the whole answer")
    func partialWhileRunning() async throws {
        try await Self.withServer { client, model in
            let id = try await Self.submit(client, "hello")
            let final = model.answer("hello")
            var seen: [String] = []
            var job: [String: JSONValue] = [:]
            for _ in 0..<600 {
                job = try await Self.job(client, id)
                if job["state"] == .string("succeeded") { break }
                if let text = Self.streamedText(job["partial"]), seen.last != text {
                    #expect(job["state"] == .string("running"))
                    #expect(job["rows_done"] == .integer(0))
                    seen.append(text)
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(job["state"] == .string("succeeded"), "\(job)")
            #expect(seen.count >= 2, "texts seen while running: \(seen)")
            #expect(seen.allSatisfy { final.hasPrefix($0) }, "\(seen)")
            #expect(job["partial"] == nil)
            guard case .object(let result)? = job["result"], case .array(let rows)? = result["results"],
                case .object(let row)? = rows.first, case .object(let outputs)? = row["outputs"]
            else {
                Issue.record("no result in \(job)")
                return
            }
            #expect(outputs["text"] == .string(final))
            #expect(row["key"] == .string("k1"))
        }
    }

    @Test("the job's event stream carries `partial` events with the growing text before `succeeded`")
    func partialEvents() async throws {
        try await Self.withServer { client, model in
            let id = try await Self.submit(client, "events")
            let text = try await client.execute(uri: "/v1/jobs/\(id)/events", method: .get) { String(buffer: $0.body) }
            let events = text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.last?.contains("event: succeeded") == true, "\(text.suffix(300))")
            let partials = events.filter { $0.contains("event: partial") }
            #expect(partials.count >= 3, "\(events.count) events: \(text.prefix(600))")
            var texts: [String] = []
            for event in partials {
                guard let line = event.split(separator: "\n").first(where: { $0.hasPrefix("data: ") }),
                    case .object(let data) = try JSONValue.parse(Array(line.dropFirst(6).utf8))
                else {
                    Issue.record("no data in \(event)")
                    continue
                }
                if let streamed = Self.streamedText(data["partial"]) { texts.append(streamed) }
            }
            let final = model.answer("events")
            #expect(texts.count == partials.count)
            #expect(zip(texts, texts.dropFirst()).allSatisfy { $1.hasPrefix($0) && $1.count > $0.count }, "\(texts)")
            #expect(texts.allSatisfy { final.hasPrefix($0) }, "\(texts)")
            #expect(events.last?.contains(final) == true)
        }
    }

    @Test("a stream that breaks fails the attempt; the queued job keeps no stale text, and the retry answers")
    func brokenStreamIsRetried() async throws {
        let yaml = Self.manifest.replacingOccurrences(
            of: "draft: {model: writer, pattern: async}",
            with: "draft: {model: writer, pattern: async, async: {max_attempts: 2, backoff: 1s}}")
        try await Self.withServer(manifest: yaml, failing: 1) { client, model in
            let id = try await Self.submit(client, "again")
            var queued: [String: JSONValue]?
            var job: [String: JSONValue] = [:]
            for _ in 0..<600 {
                job = try await Self.job(client, id)
                if job["state"] == .string("queued"), job["attempts"] == .integer(1) { queued = job }
                if job["state"] == .string("succeeded") || job["state"] == .string("failed") { break }
                try await Task.sleep(for: .milliseconds(25))
            }
            let waiting = try #require(queued, "the job was never seen queued for its retry: \(job)")
            #expect(Self.streamedText(waiting["partial"]) == nil, "\(waiting)")
            #expect("\(waiting["error"] ?? .null)".contains("cut before [DONE]"), "\(waiting)")
            #expect(job["state"] == .string("succeeded"), "\(job)")
            #expect(job["attempts"] == .integer(2))
            #expect("\(job["result"] ?? .null)".contains(model.answer("again")))
        }
    }

    @Test("canceling a streaming job stops its upstream call")
    func cancelStopsTheStream() async throws {
        try await Self.withServer { client, model in
            let id = try await Self.submit(client, "stop")
            for _ in 0..<200 {
                if Self.streamedText(try await Self.job(client, id)["partial"]) != nil { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let status = try await client.execute(uri: "/v1/jobs/\(id)", method: .delete) { $0.status }
            #expect(status == .ok)
            for _ in 0..<100 where model.cancelledCalls == 0 { try await Task.sleep(for: .milliseconds(20)) }
            #expect(model.cancelledCalls == 1)
            #expect(try await Self.job(client, id)["state"] == .string("canceled"))
        }
    }
}

struct StreamingTestFailure: Error, CustomStringConvertible {
    var description: String
}

@Suite("Streaming in the manifest")
struct StreamingManifestTests {
    @Test("stream: true is read on an openai chat model; on another kind or endpoint it is an error at its line")
    func streamKey() throws {
        let manifest = try ManifestLoader.load(path: try TestManifest.write(StreamingJobTests.manifest))
        #expect(manifest.models["writer"]?.upstream?.stream == true)
        let header = "version: 1\nmodels:\n"
        let cases: [(String, String)] = [
            (
                "  m:\n    kind: openai\n    url: http://x/v1\n    model: a\n    endpoint: embeddings\n    stream: true\n",
                "freshline.yaml:8: models.m.stream: only an openai chat model can stream"
            ),
            (
                "  m:\n    kind: oip\n    url: http://x\n    model: a\n    stream: true\n",
                "freshline.yaml:7: models.m.stream: only an openai chat model can stream"
            ),
            (
                "  m:\n    kind: openai\n    url: http://x/v1\n    model: a\n    stream: often\n    messages:\n      - {role: user, content: '{{t}}'}\n",
                "models.m.stream: must be true or false"
            ),
        ]
        for (yaml, expected) in cases {
            let message = UpstreamManifestTests.problems(header + yaml + "features:\n  f: {model: m}\n")
            #expect(message.contains(expected), "\(yaml) → \(message)")
        }
    }
}
