internal import AsyncHTTPClient
internal import FreshlineEngine
internal import FreshlineJSON
internal import NIOCore
internal import NIOHTTP1
internal import Synchronization

extension UpstreamClient {
    /// One streamed chat request (`"stream": true`): waits for the rate budget like `send`, then reads the answer's
    /// server-sent events as they arrive, calling `onText` with the message content so far each time it grows.
    ///
    /// The request keeps `send`'s rules: the whole call, stream included, ends by `deadline`; retryable failures are
    /// retried while the deadline allows, but only while nothing of the stream has arrived (text already reported
    /// cannot be taken back); the outcome counts in the metrics, and, through `guarded`, in the breaker. A stream
    /// that stalls until the deadline is a `.timeout`; one that ends or breaks before `[DONE]`, or carries a chunk
    /// that is not one, is `.unavailable`. An API that ignores `stream` and answers plain JSON is read as such.
    func stream(
        _ url: String, body: [UInt8], priority: CallPriority, tokens: Int, deadline: ContinuousClock.Instant,
        onText: @escaping @Sendable (String) -> Void
    ) async throws(UpstreamError) -> OpenAICoding.ChatAnswer {
        let start = ContinuousClock.now
        defer { metrics.duration(.now - start) }
        try await waitForBudget(priority: priority, tokens: tokens, deadline: deadline)
        let request = self.request(.POST, url, body: body, accept: "text/event-stream")
        return try await retrying(deadline: deadline) { () async -> Attempt<OpenAICoding.ChatAnswer> in
            await streamAttempt(request, deadline: deadline, onText: onText)
        }
    }

    /// How reading a stream ended (the deadline aside).
    private enum StreamRead: Sendable {
        /// `[DONE]` was read.
        case complete(ChatStreamDecoder)
        /// The body ended before `[DONE]`, after `chunks` chunks.
        case cut(chunks: Int)
        /// A chunk that is not one, after `chunks` chunks.
        case malformed(MalformedAnswer, chunks: Int)
    }

    /// One streamed exchange bounded by `deadline`: the events are read in a race with a sleep to the deadline.
    private func streamAttempt(
        _ request: HTTPClientRequest, deadline: ContinuousClock.Instant, onText: @escaping @Sendable (String) -> Void
    ) async -> Attempt<OpenAICoding.ChatAnswer> {
        // Chunks read so far, shared with the reading task: whether a failure may still be retried.
        let received = ChunkCount()
        do {
            let response = try await http.execute(request, deadline: .now() + Self.timeAmount(deadline - .now))
            let status = Int(response.status.code)
            guard (200..<300).contains(status) else {
                let retryAfter = Self.retryAfter(response)
                _ = try? await collect(response, deadline: deadline)
                return .refused(status: status, retryAfter: retryAfter)
            }
            let type = response.headers.first(name: "Content-Type")?.lowercased() ?? ""
            if type.hasPrefix("application/json") {
                let bytes = try await collect(response, deadline: deadline)
                guard let json = try? JSONValue.parse(bytes) else {
                    return .failed(error(.unavailable, "malformed answer: not JSON"), retryable: false)
                }
                switch OpenAICoding.chatAnswer(json) {
                case .success(let answer):
                    onText(answer.content)
                    return .done(answer)
                case .failure(let problem):
                    return .failed(error(.unavailable, "malformed answer: \(problem.message)"), retryable: false)
                }
            }
            let read = try await withThrowingTaskGroup(of: StreamRead?.self) { group in
                group.addTask {
                    var decoder = ChatStreamDecoder()
                    var total = 0
                    for try await buffer in response.body {
                        total += buffer.readableBytes
                        guard total <= Self.maximumAnswerBytes else {
                            return .malformed(
                                "larger than \(Self.maximumAnswerBytes >> 20) MiB", chunks: decoder.chunks)
                        }
                        let fed = decoder.feed(buffer.readableBytesView)
                        received.set(decoder.chunks)
                        switch fed {
                        case .failure(let problem): return .malformed(problem, chunks: decoder.chunks)
                        case .success(let grew): if grew { onText(decoder.content) }
                        }
                        if decoder.isDone { return .complete(decoder) }
                    }
                    switch decoder.finish() {
                    case .failure(let problem): return .malformed(problem, chunks: decoder.chunks)
                    case .success(let grew): if grew { onText(decoder.content) }
                    }
                    return decoder.isDone ? .complete(decoder) : .cut(chunks: decoder.chunks)
                }
                group.addTask {
                    try await Task.sleep(until: deadline, clock: .continuous)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let read = first else {
                    throw HTTPClientError.deadlineExceeded
                }
                return read
            }
            switch read {
            case .complete(let decoder):
                return .done(
                    OpenAICoding.ChatAnswer(
                        content: decoder.content, usage: decoder.usage, modelVersion: decoder.modelVersion))
            case .cut(let chunks) where chunks == 0:
                return .failed(error(.unavailable, "the stream ended before its first chunk"), retryable: true)
            case .cut(let chunks):
                return .failed(
                    error(.unavailable, "the stream was cut before [DONE] (after \(chunks) chunks)"), retryable: false)
            case .malformed(let problem, _):
                return .failed(error(.unavailable, "malformed answer: \(problem.message)"), retryable: false)
            }
        } catch {
            let chunks = received.value
            let result = classify(error, deadline: deadline)
            guard chunks > 0, case .failed(let problem, _, _) = result else { return Self.outcome(of: result) }
            // Part of the answer has been reported: not retried, and said so.
            if problem.kind == .timeout {
                return .failed(
                    self.error(.timeout, "the stream stalled: no [DONE] before the deadline (after \(chunks) chunks)"),
                    retryable: false)
            }
            var failed = problem
            failed.message += " mid-stream (after \(chunks) chunks)"
            return .failed(failed, retryable: false)
        }
    }

    /// A transport failure as an attempt's outcome.
    private static func outcome(of result: AttemptResult) -> Attempt<OpenAICoding.ChatAnswer> {
        switch result {
        case .failed(let problem, let retryable, let neverSent):
            .failed(problem, retryable: retryable, neverSent: neverSent)
        case .answered(let status, let retryAfter, _): .refused(status: status, retryAfter: retryAfter)
        }
    }
}

/// The chunks a stream has delivered so far, written by the task reading it and read after it failed.
private final class ChunkCount: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func set(_ value: Int) { count.withLock { $0 = value } }
}
