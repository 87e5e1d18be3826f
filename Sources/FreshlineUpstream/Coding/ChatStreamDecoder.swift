internal import FreshlineEngine
internal import FreshlineJSON

/// A chat answer streamed by an OpenAI-compatible API (`"stream": true`), read as it arrives: server-sent events
/// whose `data:` lines each carry one chunk (`choices[0].delta.content`; with `stream_options.include_usage` the last
/// chunk carries `usage` and no choices), then `data: [DONE]`. Pure: fed the body's bytes in whatever pieces the
/// network delivers, so the parsing is tested without a server.
///
/// Events follow the Server-Sent Events rules that OpenAI-compatible servers use: lines end with LF or CRLF, an
/// event's `data:` lines are joined with LF and dispatched at a blank line, `:` lines are comments, other fields
/// (`event:`, `id:`, `retry:`) are ignored. Anything after `[DONE]` is ignored.
struct ChatStreamDecoder: Sendable {
    /// The longest line taken; a longer one is a malformed answer (the whole body is bounded by the client).
    static let maximumLineBytes = 1 << 20

    /// The message content so far.
    private(set) var content = ""
    /// The final chunk's `usage`, when the API sent one.
    private(set) var usage: TokenUsage?
    /// `model` (and `system_fingerprint`) of the first chunk that names them.
    private(set) var modelVersion: String?
    /// Chunks read so far (`[DONE]` not counted): any at all means the upstream has started answering.
    private(set) var chunks = 0
    /// Whether `data: [DONE]` was read: the answer is complete.
    private(set) var isDone = false

    private var line: [UInt8] = []
    private var data: [UInt8]?

    /// Reads the next bytes of the body; `true` when `content` grew.
    mutating func feed(_ bytes: some Sequence<UInt8>) -> Result<Bool, MalformedAnswer> {
        var grew = false
        for byte in bytes where !isDone {
            guard byte == UInt8(ascii: "\n") else {
                guard line.count < Self.maximumLineBytes else { return .failure("a stream line is longer than 1 MiB") }
                line.append(byte)
                continue
            }
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            let complete = line
            line.removeAll(keepingCapacity: true)
            switch take(complete) {
            case .success(let more): grew = grew || more
            case .failure(let problem): return .failure(problem)
            }
        }
        return .success(grew)
    }

    /// The body has ended: an event whose blank line never came is dispatched (servers that close right after
    /// `data: [DONE]`). `true` when `content` grew.
    mutating func finish() -> Result<Bool, MalformedAnswer> {
        if !line.isEmpty {
            let last = line
            line.removeAll()
            if case .failure(let problem) = take(last) { return .failure(problem) }
        }
        return take([])
    }

    /// One line without its ending.
    private mutating func take(_ line: [UInt8]) -> Result<Bool, MalformedAnswer> {
        if line.isEmpty {
            guard let event = data else { return .success(false) }
            data = nil
            return dispatch(event)
        }
        if line.first == UInt8(ascii: ":") { return .success(false) }
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.endIndex
        guard line[..<colon].elementsEqual("data".utf8) else { return .success(false) }
        var value = line[min(colon + 1, line.endIndex)...]
        if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        if data == nil {
            data = Array(value)
        } else {
            data?.append(UInt8(ascii: "\n"))
            data?.append(contentsOf: value)
        }
        return .success(false)
    }

    /// One event's data: a chunk, or `[DONE]`.
    private mutating func dispatch(_ event: [UInt8]) -> Result<Bool, MalformedAnswer> {
        if event.elementsEqual("[DONE]".utf8) {
            isDone = true
            return .success(false)
        }
        let json: JSONValue
        do { json = try JSONValue.parse(event) } catch { return .failure("a stream chunk is not JSON") }
        guard case .object(let object) = json else { return .failure("a stream chunk is not a JSON object") }
        // An API that fails mid-stream may send `{"error": …}`: its text is the upstream's, not repeated.
        if object["error"] != nil { return .failure("the stream carried an error event") }
        chunks += 1
        // The first chunk's: the usage chunk of some APIs repeats `model` without `system_fingerprint`.
        if modelVersion == nil { modelVersion = OpenAICoding.modelVersion(object) }
        if let used = OpenAICoding.usage(object) { usage = used }
        guard case .array(let choices)? = object["choices"], let first = choices.first else {
            return .success(false)
        }
        guard case .object(let choice) = first else { return .failure("expected choices[0] to be an object") }
        switch choice["delta"] {
        case nil, .null?: return .success(false)
        case .object(let delta)?:
            switch delta["content"] {
            case nil, .null?: return .success(false)
            case .string(let text)?:
                content += text
                return .success(!text.isEmpty)
            default: return .failure("expected choices[0].delta.content to be a string")
            }
        default: return .failure("expected choices[0].delta to be an object")
        }
    }
}
