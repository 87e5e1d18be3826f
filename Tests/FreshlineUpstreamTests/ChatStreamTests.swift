import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import Metrics
import MetricsTestKit
import Synchronization
import Testing

@testable import FreshlineUpstream

/// The server-sent events of a streamed chat answer, decoded without a server.
@Suite("Chat stream decoding")
struct ChatStreamDecoderTests {
    static let body =
        ": a comment\r\n"
        + #"data: {"model": "m", "system_fingerprint": "fp", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}"#
        + "\r\n\r\n"
        + #"data: {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}"# + "\n\n"
        + "event: message\n"
        + #"data: {"choices": [{"index": 0, "delta": {"content": "lo, wörld"}, "finish_reason": null}]}"# + "\n\n"
        + #"data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}"# + "\n\n"
        + #"data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}"# + "\n\n"
        + "data: [DONE]\n\n"
        + "data: ignored after done\n\n"

    @Test("chunks split anywhere (CRLF, comments, other fields): the content, usage, version and [DONE]")
    func decodesInAnyPieces() throws {
        let bytes = Array(Self.body.utf8)
        for size in [1, 2, 7, 64, bytes.count] {
            var decoder = ChatStreamDecoder()
            var texts: [String] = []
            var start = 0
            while start < bytes.count {
                let piece = bytes[start..<min(bytes.count, start + size)]
                if try decoder.feed(piece).get() { texts.append(decoder.content) }
                start += size
            }
            #expect(decoder.isDone)
            #expect(decoder.content == "Hello, wörld")
            // Both texts arrive in one piece only when the body is fed at once.
            #expect(texts == (size == bytes.count ? ["Hello, wörld"] : ["Hel", "Hello, wörld"]), "pieces of \(size)")
            #expect(decoder.usage == TokenUsage(input: 7, output: 3))
            #expect(decoder.modelVersion == "m fp")
            #expect(decoder.chunks == 5)
        }
    }

    @Test("a last event without its blank line is read when the body ends; no [DONE] leaves it incomplete")
    func finish() throws {
        var decoder = ChatStreamDecoder()
        _ = try decoder.feed(Array((#"data: {"choices": [{"delta": {"content": "a"}}]}"# + "\n\ndata: [DONE]").utf8))
            .get()
        #expect(!decoder.isDone)
        _ = try decoder.finish().get()
        #expect(decoder.isDone && decoder.content == "a")
        var cut = ChatStreamDecoder()
        _ = try cut.feed(Array(#"data: {"choices": [{"delta": {"content": "a"}}]}"#.utf8)).get()
        _ = try cut.finish().get()
        #expect(!cut.isDone && cut.chunks == 1)
    }

    @Test("a chunk that is not JSON, not an object, of the wrong shape, or an error event is malformed")
    func malformed() {
        for (line, words) in [
            ("data: {\"choices\": [", "not JSON"),
            ("data: [1]", "not a JSON object"),
            (#"data: {"choices": [{"delta": {"content": 3}}]}"#, "delta.content to be a string"),
            (#"data: {"choices": [{"delta": "x"}]}"#, "delta to be an object"),
            (#"data: {"error": {"message": "secret upstream detail"}}"#, "error event"),
        ] {
            var decoder = ChatStreamDecoder()
            switch decoder.feed(Array((line + "\n\n").utf8)) {
            case .success: Issue.record("\(line) should be malformed")
            case .failure(let problem):
                #expect(problem.message.contains(words), "\(problem.message)")
                #expect(!problem.message.contains("secret"))
            }
        }
    }

    @Test("the streamed request asks for the stream and its usage")
    func request() throws {
        let body = OpenAICoding.chatRequest(
            model: "m", messages: [("user", "hi")], maxTokens: 4, temperature: 0, schema: nil, stream: true)
        guard case .object(let object) = try JSONValue.parse(body) else {
            Issue.record("not an object")
            return
        }
        #expect(object["stream"] == .bool(true))
        #expect(object["stream_options"] == .object(["include_usage": .bool(true)]))
    }
}

/// A streamed chat model against `FaultyUpstream`'s streams: text reported as it arrives, the same answer as
/// without streaming, and each way a stream fails. Timed assertions have seconds of margin.
@Suite("Streamed chat against a fault-injecting upstream")
struct ChatStreamClientTests {
    /// Each row's texts as the model reported them, in order.
    final class Reports: Sendable {
        private let texts = Mutex<[Int: [String]]>([:])
        private let firstAt = Mutex<ContinuousClock.Instant?>(nil)
        func record(_ row: Int, _ text: String) {
            texts.withLock { $0[row, default: []].append(text) }
            firstAt.withLock { $0 = $0 ?? .now }
        }
        subscript(row: Int) -> [String] { texts.withLock { $0[row] ?? [] } }
        var first: ContinuousClock.Instant? { firstAt.withLock { $0 } }
    }

    static func spec(_ url: String, stream: Bool = true, limits: UpstreamLimits) -> ModelSpec {
        var spec = UpstreamClientTests.chat(url, key: nil)
        spec.upstream?.stream = stream
        spec.upstream?.limits = limits
        return spec
    }

    static func feeds(_ questions: [String]) throws -> [String: Tensor] {
        [
            "question": try Tensor(shape: [questions.count], strings: questions),
            "n": try Tensor(shape: [questions.count], strings: questions.indices.map { "\($0 + 1)" }),
        ]
    }

    static func infer(
        _ model: any RemoteModel, _ questions: [String], deadline: ContinuousClock.Instant?, reports: Reports
    ) async throws(UpstreamError) -> RemoteAnswer {
        try await model.infer(
            try! feeds(questions), rows: questions.count, priority: .async, deadline: deadline,
            partial: { row, text in reports.record(row, text) })
    }

    @Test("each row's text grows chunk by chunk; the answer, usage and version are the non-streamed call's")
    func roundTrip() async throws {
        let server = FaultyUpstream()
        let metrics = TestMetrics()
        try await server.run { url in
            let limits = UpstreamLimits(maxRetries: 0, tokensPerMinute: 100_000)
            try await UpstreamClientTests.with(Self.spec(url, limits: limits), metrics: metrics) { model in
                #expect(model.streams)
                let reports = Reports()
                let answer = try await Self.infer(model, ["one", "two"], deadline: nil, reports: reports)
                #expect(answer.outputs["text"]?.tensor?.strings == ["echo: Q: one (1)", "echo: Q: two (2)"])
                #expect(answer.usage == [TokenUsage(input: 10, output: 5), TokenUsage(input: 10, output: 5)])
                #expect(answer.modelVersion == "fake-chat fp_1")
                #expect(server.streams == 2)
                for (row, final) in [(0, "echo: Q: one (1)"), (1, "echo: Q: two (2)")] {
                    let texts = reports[row]
                    #expect(texts.count == 6, "\(texts)")
                    #expect(texts.last == final)
                    #expect(zip(texts, texts.dropFirst()).allSatisfy { $1.hasPrefix($0) && $1.count > $0.count })
                }
                #expect(
                    metrics.counterTotal(
                        label: "freshline_upstream_tokens_total",
                        dimensions: [("model", "assistant"), ("kind", "output")])
                        == 10)
                #expect(
                    metrics.counterTotal(
                        label: "freshline_upstream_requests_total",
                        dimensions: [("model", "assistant"), ("outcome", "ok")]) == 3)  // GET /models and 2 rows
            }
            // The same model without streaming answers the same.
            try await UpstreamClientTests.with(Self.spec(url, stream: false, limits: UpstreamLimits())) { model in
                let reports = Reports()
                let answer = try await Self.infer(model, ["one", "two"], deadline: nil, reports: reports)
                #expect(answer.outputs["text"]?.tensor?.strings == ["echo: Q: one (1)", "echo: Q: two (2)"])
                #expect(reports[0].isEmpty)
                #expect(server.streams == 2)
            }
        }
    }

    @Test("a slow stream (chunks 150 ms apart) succeeds within its deadline, its text reported long before the end")
    func slowStream() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            try await UpstreamClientTests.with(Self.spec(url, limits: UpstreamLimits(maxRetries: 0))) { model in
                server.fail([.stream(every: .milliseconds(150))])
                let reports = Reports()
                let start = ContinuousClock.now
                let answer = try await Self.infer(
                    model, ["one"], deadline: .now + .seconds(20), reports: reports)
                let end = ContinuousClock.now
                #expect(answer.outputs["text"]?.tensor?.strings == ["echo: Q: one (1)"])
                #expect(end - start >= .milliseconds(900))
                let first = try #require(reports.first)
                #expect(end - first >= .milliseconds(600), "the first text came \(end - first) before the end")
            }
        }
    }

    @Test("a stream that stalls past the deadline fails as a timeout naming the stall, without a retry")
    func stalledStream() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            try await UpstreamClientTests.with(Self.spec(url, limits: UpstreamLimits(maxRetries: 2))) { model in
                server.fail([.stream(every: .zero, after: 2, then: .stall(.seconds(3)))])
                let reports = Reports()
                let start = ContinuousClock.now
                let error = await UpstreamClientTests.failure { () async throws(UpstreamError) in
                    try await Self.infer(model, ["one"], deadline: .now + .seconds(1), reports: reports)
                }
                #expect(error?.kind == .timeout)
                #expect(error?.message.contains("the stream stalled") == true, "\(error?.message ?? "")")
                #expect(ContinuousClock.now - start < .seconds(2.5))
                #expect(reports[0] == ["ech", "echo: "])
                #expect(server.requests("/v1/chat/completions") == 1)
                // The test double's handler is still stalling: let it end before the server stops.
                try await Task.sleep(for: .seconds(3))
            }
        }
    }

    @Test("a stream cut before [DONE] fails once text has arrived, and is retried when nothing had")
    func cutStream() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            try await UpstreamClientTests.with(Self.spec(url, limits: UpstreamLimits(maxRetries: 2))) { model in
                server.fail([.stream(every: .zero, after: 2, then: .cut)])
                let error = await UpstreamClientTests.failure { () async throws(UpstreamError) in
                    try await Self.infer(model, ["one"], deadline: .now + .seconds(20), reports: Reports())
                }
                #expect(error?.kind == .unavailable)
                #expect(
                    error?.message.contains("cut before [DONE] (after 2 chunks)") == true, "\(error?.message ?? "")")
                #expect(server.requests("/v1/chat/completions") == 1)

                server.fail([.stream(every: .zero, after: 0, then: .cut), .status(503)])
                let reports = Reports()
                let answer = try await Self.infer(model, ["one"], deadline: .now + .seconds(20), reports: reports)
                #expect(answer.outputs["text"]?.tensor?.strings == ["echo: Q: one (1)"])
                #expect(reports[0].last == "echo: Q: one (1)")
                #expect(server.requests("/v1/chat/completions") == 4)
            }
        }
    }

    @Test("a chunk that is not JSON fails the call cleanly, quoting nothing; the breaker counts it")
    func malformedChunk() async throws {
        let server = FaultyUpstream()
        try await server.run { url in
            let limits = UpstreamLimits(maxRetries: 2, breakerFailures: 1, breakerOpenFor: .seconds(60))
            try await UpstreamClientTests.with(Self.spec(url, limits: limits)) { model in
                server.fail([.stream(every: .zero, after: 1, then: .malformed)])
                let error = await UpstreamClientTests.failure { () async throws(UpstreamError) in
                    try await Self.infer(model, ["one"], deadline: .now + .seconds(20), reports: Reports())
                }
                #expect(error?.kind == .unavailable)
                #expect(error?.message.contains("malformed answer: a stream chunk is not JSON") == true)
                #expect(server.requests("/v1/chat/completions") == 1)
                let refused = await UpstreamClientTests.failure { () async throws(UpstreamError) in
                    try await Self.infer(model, ["one"], deadline: .now + .seconds(20), reports: Reports())
                }
                #expect(refused?.kind == .circuitOpen)
            }
        }
    }
}
