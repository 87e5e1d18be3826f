public import FreshlineJSON

/// A model that runs outside Freshline, behind a network API (`models.NAME.kind: oip | openai | http`): an Open
/// Inference Protocol V2 server (Triton, KServe, MLServer), an OpenAI-compatible API (chat completions or
/// embeddings), or a plain JSON endpoint. Freshline serves it like a local model: micro-batching (OIP), the freshness
/// contract and the fallback ladder, async jobs and batch runs; the call itself is bounded by the request's deadline,
/// retried within it, rate-limited and guarded by a circuit breaker (`UpstreamLimits`).
public struct UpstreamSpec: Sendable, Equatable {
    /// The API the upstream speaks.
    public enum Kind: String, Sendable, CaseIterable {
        /// Open Inference Protocol V2 over HTTP/JSON: inputs and outputs come from the server's model metadata.
        case oip
        /// An OpenAI-compatible API: `POST {url}/chat/completions` or `POST {url}/embeddings`.
        case openai
        /// A plain JSON endpoint: a request template over the named inputs, JSON pointers for the outputs.
        case http
    }

    /// Which OpenAI-compatible operation a model calls.
    public enum Endpoint: String, Sendable, CaseIterable {
        case chat, embeddings
    }

    /// A chat message template: `content` may hold `{{input}}` placeholders, replaced by the row's named inputs.
    public struct Message: Sendable, Equatable {
        public var role: String
        public var content: String
        public init(role: String, content: String) {
            self.role = role
            self.content = content
        }
    }

    /// The element type of a declared input or output.
    public enum ValueType: String, Sendable, CaseIterable {
        case string, float, double, int64, bool
        /// A vector of floats (an embedding); its length is learned from the first answer.
        case floatVector = "float[]"
    }

    /// A named output of an `http` model (or a field of an `openai` structured answer): where it is in the
    /// answer (an RFC 6901 JSON pointer) and its type.
    public struct Output: Sendable, Equatable {
        public var name: String
        public var pointer: String
        public var type: ValueType
        public init(name: String, pointer: String, type: ValueType) {
            self.name = name
            self.pointer = pointer
            self.type = type
        }
    }

    public var kind: Kind
    /// `oip`: the server's base URL (`http://host:8000`); `openai`: the API's base URL ending before
    /// `/chat/completions` (`https://api.openai.com/v1`); `http`: the endpoint itself.
    public var url: String
    /// `oip`: the model's name on the server; `openai`: the `model` sent with each call.
    public var model: String?
    /// `oip`: the model version (optional).
    public var version: String?
    /// The environment variable holding the API key, sent as `Authorization: Bearer …` (never logged or stored).
    public var apiKeyEnv: String?
    /// `openai`: chat (default) or embeddings.
    public var endpoint: Endpoint
    /// `openai` chat: the messages, with `{{input}}` placeholders.
    public var messages: [Message]
    /// `openai` embeddings: the text embedded, with `{{input}}` placeholders.
    public var inputTemplate: String?
    /// `openai` chat: a JSON schema for structured output (`response_format: json_schema`); its top-level
    /// properties become the outputs. Without it the output is `text`.
    public var responseSchema: JSONValue?
    /// `openai` chat: `max_tokens` and `temperature` sent with each call.
    public var maxTokens: Int?
    public var temperature: Double?
    /// `openai` chat: call with `"stream": true` and read the answer as it is generated, so an async job's partial
    /// result grows as tokens arrive (default false). The final answer is the same as without streaming.
    public var stream: Bool
    /// `http`: the request body, JSON text with `{{input}}` placeholders replaced by each input's JSON value.
    public var requestTemplate: String?
    /// `openai` and `http`: the named inputs and their types, in the order declared (by default every placeholder
    /// of the templates, as strings).
    public var inputs: [(name: String, type: ValueType)] {
        get { inputNames.map { ($0, inputTypes[$0] ?? .string) } }
        set {
            inputNames = newValue.map(\.name)
            inputTypes = Dictionary(newValue.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        }
    }
    public var inputNames: [String]
    public var inputTypes: [String: ValueType]
    /// `http`: the outputs; `openai`: derived from `responseSchema` (or `text` / `embedding`) when empty.
    public var outputs: [Output]
    /// Pool, deadline, retry, breaker and rate-limit settings.
    public var limits: UpstreamLimits

    public init(kind: Kind, url: String) {
        self.kind = kind
        self.url = url
        endpoint = .chat
        messages = []
        stream = false
        inputNames = []
        inputTypes = [:]
        outputs = []
        limits = UpstreamLimits()
    }

    /// The `{{name}}` placeholders of `template`, in order of first appearance.
    public static func placeholders(_ template: String) -> [String] {
        var names: [String] = []
        var rest = template[...]
        while let open = rest.firstRange(of: "{{") {
            guard let close = rest[open.upperBound...].firstRange(of: "}}") else { break }
            let name = String(rest[open.upperBound..<close.lowerBound].filter { $0 != " " })
            if !name.isEmpty, !names.contains(name) { names.append(name) }
            rest = rest[close.upperBound...]
        }
        return names
    }
}

/// How calls to one upstream behave under load and faults.
public struct UpstreamLimits: Sendable, Equatable {
    /// Connections kept to the upstream (default 8).
    public var maxConnections: Int
    /// The bound of one call when the caller has no deadline of its own (async jobs, batch runs; default 60 s).
    public var timeout: Duration
    /// Retries of a retryable failure (connection error, 429, 500, 502, 503, 504), each after a jittered backoff,
    /// only while the deadline allows (default 2).
    public var maxRetries: Int
    /// Consecutive failures that open the circuit breaker (default 5); while open, calls fail at once and the
    /// feature's fallback ladder answers.
    public var breakerFailures: Int
    /// How long the breaker stays open before one probe call is let through (default 10 s).
    public var breakerOpenFor: Duration
    /// Calls per minute across every caller of this server (`nil`: unlimited).
    public var requestsPerMinute: Int?
    /// Tokens (prompt + completion) per minute (`nil`: unlimited); estimated before a call, corrected after.
    public var tokensPerMinute: Int?
    /// `oip`: the most rows in one inference request (default 64).
    public var maxBatchRows: Int

    public init(
        maxConnections: Int = 8, timeout: Duration = .seconds(60), maxRetries: Int = 2, breakerFailures: Int = 5,
        breakerOpenFor: Duration = .seconds(10), requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil,
        maxBatchRows: Int = 64
    ) {
        self.maxConnections = maxConnections
        self.timeout = timeout
        self.maxRetries = maxRetries
        self.breakerFailures = breakerFailures
        self.breakerOpenFor = breakerOpenFor
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.maxBatchRows = maxBatchRows
    }
}
