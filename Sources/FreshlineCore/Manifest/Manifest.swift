public import FreshlineJSON

/// A Freshline deployment as declared in its YAML manifest: models, features, tokens, pricing and server
/// settings. Built by the runtime's manifest loader; every field has the default documented in
/// `docs/manifest.md`.
public struct Manifest: Sendable, Equatable {
    /// The manifest file's path, for messages.
    public var path: String
    /// Models by name.
    public var models: [String: ModelSpec]
    /// Features by name.
    public var features: [String: FeatureSpec]
    /// Bearer tokens and their scopes. No tokens means the API is open (a warning is logged).
    public var tokens: [TokenSpec]
    /// Prices the advisor uses for cost per pattern.
    public var pricing: Pricing
    /// HTTP server settings.
    public var server: ServerSettings
    /// Where state lives (SQLite file by default).
    public var store: StoreSettings
    /// The advisor's thresholds (`advisor:` section).
    public var advisor = AdvisorSettings()

    /// Makes a manifest.
    public init(
        path: String, models: [String: ModelSpec], features: [String: FeatureSpec], tokens: [TokenSpec] = [],
        pricing: Pricing = Pricing(), server: ServerSettings = ServerSettings(), store: StoreSettings = StoreSettings()
    ) {
        self.path = path
        self.models = models
        self.features = features
        self.tokens = tokens
        self.pricing = pricing
        self.server = server
        self.store = store
    }
}

/// A model file the features run.
public struct ModelSpec: Sendable, Equatable {
    /// The model's name in the manifest.
    public var name: String
    /// The ONNX file, relative to the manifest's folder or absolute; empty for an upstream model.
    public var path: String
    /// The remote model (`kind: oip | openai | http`); `nil` for an ONNX file run by the engine.
    public var upstream: UpstreamSpec?
    /// Where the entry starts in the manifest.
    public var location: SourceLocation

    public init(name: String, path: String, location: SourceLocation) {
        self.name = name
        self.path = path
        self.location = location
    }

    public init(name: String, upstream: UpstreamSpec, location: SourceLocation) {
        self.name = name
        self.path = ""
        self.upstream = upstream
        self.location = location
    }
}

/// How a feature is served. A property of configuration, never of client code.
public enum ServingPattern: String, Sendable, Codable, CaseIterable {
    case realtime, async, batch, hybrid
}

/// One AI feature: the model it runs, how it is served and what it promises.
public struct FeatureSpec: Sendable, Equatable {
    /// The feature's name (URL path segment).
    public var name: String
    /// The model's name in `models`.
    public var model: String
    /// The serving pattern (default `realtime`).
    public var pattern: ServingPattern
    /// The name of the entity key requests carry (e.g. `user_id`); `nil` when requests carry only inputs.
    public var key: String?
    /// The default freshness contract; `nil` accepts any age.
    public var maxStaleness: Duration?
    /// The time a caller waits for a real-time answer (default 100 ms): the deadline each queued item carries.
    public var latencyBudget: Duration
    /// Whether a user waits on this feature (for the advisor's tail-latency axis; default `true`).
    public var userBlocking: Bool
    /// Which model outputs to return (default: all).
    public var outputs: [String]?
    /// Declared inputs, checked against the model (default: none declared; the model's own declaration rules).
    public var inputs: [InputDeclaration] = []
    /// What to answer when the real-time path cannot (default: an error).
    public var onFailure: FailurePolicy
    /// Micro-batching settings for the real-time path.
    public var batching: BatchingSettings
    /// The batch section: snapshot precompute and how its answers are served (`nil`: no snapshot).
    public var batch: BatchSpec?
    /// How the feature's async jobs are leased and retried (`async:` section; defaults documented there).
    public var jobs: JobPolicy = JobPolicy()
    /// Where every job of the feature reports its end (`async.webhook`), unless the submission names its own.
    public var webhook: String?
    /// How the advisor compares the feature's answers over time (`advice.decision`).
    public var decision = DecisionSpec()
    /// The entity set a batch would enumerate (`advice.keys`), for features without a batch section.
    public var adviceKeys: AdviceKeys?
    /// Model inputs taken from other features' snapshots (`compose:`): the hybrid pattern.
    public var compose: [ComposedInput] = []
    /// Where the entry starts in the manifest.
    public var location: SourceLocation

    public init(
        name: String, model: String, pattern: ServingPattern = .realtime, key: String? = nil,
        maxStaleness: Duration? = nil,
        latencyBudget: Duration = .milliseconds(100), userBlocking: Bool = true, outputs: [String]? = nil,
        onFailure: FailurePolicy = .error, batching: BatchingSettings = BatchingSettings(), batch: BatchSpec? = nil,
        location: SourceLocation
    ) {
        self.name = name
        self.model = model
        self.pattern = pattern
        self.key = key
        self.maxStaleness = maxStaleness
        self.latencyBudget = latencyBudget
        self.userBlocking = userBlocking
        self.outputs = outputs
        self.onFailure = onFailure
        self.batching = batching
        self.batch = batch
        self.location = location
    }
}

/// The bottom rungs of a feature's fallback ladder (the stale-snapshot rung comes with batch features).
public enum FailurePolicy: Sendable, Equatable {
    /// Fail: 503 with `Retry-After` on overload, 504 on timeout, 500 on model failure.
    case error
    /// Answer this value with `source: default`. Keys are output names.
    case defaultValue([String: JSONValue])
}

/// Micro-batching settings for a feature's real-time path.
public struct BatchingSettings: Sendable, Equatable {
    /// The most rows in one model call (default 64).
    public var maxBatchSize: Int
    /// The longest the batcher holds an item waiting for company (default 2 ms). The batcher waits less
    /// when waiting does not pay (see `AdaptiveBatcherStateMachine`).
    public var maxQueueDelay: Duration
    /// The most rows waiting; beyond it requests are shed (default 1024).
    public var maxQueueLength: Int

    public init(maxBatchSize: Int = 64, maxQueueDelay: Duration = .milliseconds(2), maxQueueLength: Int = 1024) {
        self.maxBatchSize = maxBatchSize
        self.maxQueueDelay = maxQueueDelay
        self.maxQueueLength = maxQueueLength
    }
}

/// A bearer token and what it may do.
public struct TokenSpec: Sendable, Equatable {
    /// What a token may do.
    public enum Scope: String, Sendable, CaseIterable {
        /// Ask for predictions (the /v1 predict API and /v2 inference).
        case predict
        /// Everything else that changes state or reveals configuration.
        case admin
    }
    /// A name for logs (never the secret).
    public var name: String
    /// The secret.
    public var secret: String
    /// What it may do.
    public var scopes: Set<Scope>

    public init(name: String, secret: String, scopes: Set<Scope>) {
        self.name = name
        self.secret = secret
        self.scopes = scopes
    }
}

/// Prices for the advisor's cost per pattern.
public struct Pricing: Sendable, Equatable, Codable {
    /// Price of one core for one hour, on demand (default 0.048 USD).
    public var coreHour: Double
    /// The fraction batch work saves by running on spot capacity (default 0.7).
    public var spotDiscount: Double
    /// The currency label (default USD).
    public var currency: String
    /// Token prices per model, by the manifest's model name (`pricing.models`): features on these models are priced
    /// by their recorded tokens instead of engine time.
    public var models: [String: TokenPrice] = [:]
    /// Serving instances always on, whatever the traffic (`pricing.min_instances`, default 2: one is not available
    /// through a deploy or a host failure). Every pattern that answers requests pays this floor.
    public var minInstances: Int = 2
    /// Cores of one serving instance (`pricing.instance_cores`, default 2).
    public var instanceCores: Double = 2
    /// Price of one instance for one hour (`pricing.instance_hour`); `nil`: `instance_cores × core_hour`.
    public var instanceHour: Double?
    /// What keeping one batch pipeline healthy costs a month besides its compute (`pricing.batch_overhead_per_month`,
    /// default 150): about two engineer-hours of watching schedules, failed runs, backfills and source changes.
    public var batchOverheadPerMonth: Double = 150
    /// Price of one GB of storage for a month (`pricing.storage_gb_month`, default 0.08: block storage).
    public var storageGBMonth: Double = 0.08
    /// Async workers always on (`pricing.async_min_workers`, default 1 instance): a queue nobody drains is not served.
    public var asyncMinWorkers: Int = 1
    /// Price of one million store writes (`pricing.store_write_per_million`, default 1.25: a managed key-value
    /// store's on-demand writes); an async job costs four (submitted, leased, finished, delivered).
    public var storeWritePerMillion: Double = 1.25

    /// The price of one serving instance for one hour.
    public var instanceHourPrice: Double { instanceHour ?? instanceCores * coreHour }

    public init(
        coreHour: Double = 0.048, spotDiscount: Double = 0.7, currency: String = "USD",
        models: [String: TokenPrice] = [:]
    ) {
        self.coreHour = coreHour
        self.spotDiscount = spotDiscount
        self.currency = currency
        self.models = models
    }

    private enum CodingKeys: String, CodingKey {
        case coreHour, spotDiscount, currency, models, minInstances, instanceCores, instanceHour
        case batchOverheadPerMonth, storageGBMonth, asyncMinWorkers, storeWritePerMillion
    }

    /// Reads what `encode(to:)` wrote; reports written before a field existed get its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        coreHour = try c.decode(Double.self, forKey: .coreHour)
        spotDiscount = try c.decode(Double.self, forKey: .spotDiscount)
        currency = try c.decode(String.self, forKey: .currency)
        models = try c.decodeIfPresent([String: TokenPrice].self, forKey: .models) ?? [:]
        minInstances = try c.decodeIfPresent(Int.self, forKey: .minInstances) ?? minInstances
        instanceCores = try c.decodeIfPresent(Double.self, forKey: .instanceCores) ?? instanceCores
        instanceHour = try c.decodeIfPresent(Double.self, forKey: .instanceHour)
        batchOverheadPerMonth =
            try c.decodeIfPresent(Double.self, forKey: .batchOverheadPerMonth) ?? batchOverheadPerMonth
        storageGBMonth = try c.decodeIfPresent(Double.self, forKey: .storageGBMonth) ?? storageGBMonth
        asyncMinWorkers = try c.decodeIfPresent(Int.self, forKey: .asyncMinWorkers) ?? asyncMinWorkers
        storeWritePerMillion =
            try c.decodeIfPresent(Double.self, forKey: .storeWritePerMillion) ?? storeWritePerMillion
    }
}

/// What a model's provider charges per token (`pricing.models.<model>`), in the pricing's currency.
public struct TokenPrice: Sendable, Equatable, Codable {
    /// Price of one million input (prompt) tokens.
    public var inputPerMillion: Double
    /// Price of one million output (completion) tokens.
    public var outputPerMillion: Double
    /// The fraction the provider's batch API takes off both prices (default 0.5, OpenAI's Batch API discount).
    public var batchDiscount: Double

    /// The default batch discount: OpenAI's Batch API halves the price of both input and output tokens.
    public static let defaultBatchDiscount = 0.5

    public init(inputPerMillion: Double, outputPerMillion: Double, batchDiscount: Double = defaultBatchDiscount) {
        self.inputPerMillion = inputPerMillion
        self.outputPerMillion = outputPerMillion
        self.batchDiscount = batchDiscount
    }

    /// The price of `tokens` at full price, or at the batch price when `batch`.
    public func cost(_ tokens: TokenCounts, batch: Bool = false) -> Double {
        let full = (tokens.input * inputPerMillion + tokens.output * outputPerMillion) / 1_000_000
        return batch ? full * (1 - max(0, min(1, batchDiscount))) : full
    }
}

/// HTTP server settings.
public struct ServerSettings: Sendable, Equatable {
    /// Listen address (default 127.0.0.1).
    public var host: String
    /// Listen port (default 8080).
    public var port: Int
    /// Largest request body accepted (default 1 MiB).
    public var maxBodyBytes: Int
    /// Threads that run models for real-time requests (default 1).
    public var computeThreads: Int
    /// Share of requests recorded in the request log (default 0.1).
    public var requestLogSampleRate: Double
    /// How long request-log samples are kept (default 7 days).
    public var requestLogRetention: Duration
    /// Async jobs one process works on at once (default 2).
    public var jobWorkers: Int = 2
    /// Webhook signing, retries and allowed targets.
    public var webhooks = WebhookSettings()
    /// A connection with nothing read or written for this long is closed: idle keep-alive connections, and a
    /// request whose head or body stops arriving (default 30 s).
    public var idleTimeout: Duration = .seconds(30)
    /// Connections open at once; more are closed as they arrive (default 1,024).
    public var maxConnections = 1024
    /// Real-time prediction requests (`POST …/predict` answered now, `/v2/…/infer`) worked on at once; more are
    /// refused at once with 503 and `Retry-After` (default 64 per compute thread).
    public var maxInFlight: Int { maxInFlightSetting ?? 64 * computeThreads }
    /// `server.max_in_flight` as the manifest gives it, if it does.
    public var maxInFlightSetting: Int?
    /// How long a graceful shutdown (SIGTERM) may take before what is left is cancelled (default 30 s).
    public var shutdownTimeout: Duration = .seconds(30)
    /// Server-Sent Event streams (`GET /v1/jobs/{id}/events`) open at once, on the server and per token
    /// (defaults 256 and 16).
    public var maxStreams = 256
    public var maxStreamsPerToken = 16
    /// Unfinished (queued or running) async jobs one token may have; more submissions are refused with 429
    /// (default 1,000). On an open API every caller counts as the same one.
    public var maxQueuedJobsPerToken = 1000
    /// How long finished jobs (with their results) and finished webhook deliveries (with their attempt logs) are
    /// kept before the sweeper deletes them (default 7 days).
    public var jobRetention: Duration = .seconds(7 * 86_400)

    public init(
        host: String = "127.0.0.1", port: Int = 8080, maxBodyBytes: Int = 1 << 20, computeThreads: Int = 1,
        requestLogSampleRate: Double = 0.1, requestLogRetention: Duration = .seconds(7 * 86_400)
    ) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.computeThreads = computeThreads
        self.requestLogSampleRate = requestLogSampleRate
        self.requestLogRetention = requestLogRetention
    }
}

/// Where Freshline keeps its state.
public struct StoreSettings: Sendable, Equatable {
    /// An SQLite file path (default `.freshline/freshline.sqlite` beside the manifest) or a `postgres://` URL.
    public var location: String
    /// The longest one call to a PostgreSQL store may take, waiting for a connection included (`store.call_timeout`,
    /// 100 ms to 10 min, default 5 s): past it the call fails as "store unavailable" (HTTP 503) instead of waiting
    /// for a database that is down. Also the server's `statement_timeout`.
    public var callTimeout: Duration
    /// The folder snapshot files are kept in (`store.snapshots`, relative to the manifest's folder); by default
    /// beside an SQLite store (`freshline.sqlite` → `freshline.snapshots/`), or `.freshline/snapshots` beside the
    /// manifest for PostgreSQL (each host keeps its own copy there).
    public var snapshots: String?

    /// The range `call_timeout` must be in, in seconds.
    public static let callTimeoutRange: ClosedRange<Double> = 0.1...600

    public init(location: String = ".freshline/freshline.sqlite", callTimeout: Duration = .seconds(5)) {
        self.location = location
        self.callTimeout = callTimeout
    }
}

/// A feature's declared input: a model input name with its element type and per-row shape, checked against
/// the ONNX file by `freshline check` (`X: float[30]`, `user_id: int64`).
public struct InputDeclaration: Sendable, Equatable {
    /// The model input's name.
    public var name: String
    /// The element type's ONNX name (`float`, `double`, `int64`, `int32`, `string`, `bool`, …).
    public var elementType: String
    /// The per-row shape (without the batch dimension); `[]` for a scalar per row.
    public var shape: [Int]
    /// Where it is declared.
    public var location: SourceLocation

    /// Parses `type` or `type[d1,d2]`; `nil` when the text is not of that form.
    public init?(name: String, text: String, location: SourceLocation) {
        let trimmed = text.trimmingWhitespace()
        var type = Substring(trimmed)
        var shape: [Int] = []
        if let open = trimmed.firstIndex(of: "[") {
            guard trimmed.hasSuffix("]") else { return nil }
            type = trimmed[..<open]
            let inside = trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)]
            for part in inside.split(separator: ",", omittingEmptySubsequences: false) {
                guard let d = Int(part.trimmingCharacters(in: " ")), d >= 1 else { return nil }
                shape.append(d)
            }
        }
        let known: Set<String> = ["float", "double", "int64", "int32", "int8", "uint8", "bool", "string"]
        guard known.contains(String(type)) else { return nil }
        self.name = name
        self.elementType = String(type)
        self.shape = shape
        self.location = location
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return s
    }
}
