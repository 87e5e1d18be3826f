/// One sampled request, as the advisor needs it: which feature, a hash of the entity key (never the key),
/// whether the request carried inputs beyond the key, where the answer came from, how long it took and how old
/// the answer was.
public struct RequestLogSample: Sendable, Equatable {
    public var feature: String
    /// A 64-bit hash of the entity key, hex; `nil` when the request carried no key.
    public var keyHash: String?
    /// Whether the request carried inputs beyond an enumerable key (free text, novel transactions).
    public var hasRequestInputs: Bool
    public var source: PredictionSource?
    /// `ok`, `shed`, `timeout`, `error`, `bad_request`.
    public var outcome: String
    public var latencySeconds: Double
    public var ageSeconds: Double
    /// When the request arrived, seconds since 1970.
    public var at: Double
    /// The probability with which this request was sampled (keyed requests are sampled by key, so every request
    /// of a sampled key is kept); the advisor weighs each sample by its inverse.
    public var sampleRate: Double = 1
    /// When the answer was computed (a snapshot's input time for batch answers); `nil` for failures.
    public var computedAt: Double?
    /// The answer's decision, for the advisor's shadow comparisons; `nil` for failures.
    public var decision: DecisionValue?
    /// A 64-bit hash of each request input's value, to tell which inputs change per key.
    public var inputHashes: [String: UInt64] = [:]
    /// Input (prompt) tokens the upstream model reported for this answer; `nil` when it reported none (local
    /// models, snapshot answers, failures).
    public var inputTokens: Int?
    /// Output (completion) tokens the upstream model reported for this answer; `nil` when it reported none.
    public var outputTokens: Int?
    /// The version of the model that computed the answer (`nil` for failures, defaults, and logs written before
    /// versions were recorded): the advisor compares answers of the same version only.
    public var modelVersion: String?
    /// Wall time of the model call that computed the answer (real-time and async answers), queueing excluded.
    public var computeSeconds: Double?
    /// Rows in that call (a micro-batch computes several requests at once).
    public var computeRows: Int?

    public init(
        feature: String, keyHash: String?, hasRequestInputs: Bool, source: PredictionSource?, outcome: String,
        latencySeconds: Double, ageSeconds: Double, at: Double, sampleRate: Double = 1, computedAt: Double? = nil,
        decision: DecisionValue? = nil, inputHashes: [String: UInt64] = [:], inputTokens: Int? = nil,
        outputTokens: Int? = nil, modelVersion: String? = nil, computeSeconds: Double? = nil, computeRows: Int? = nil
    ) {
        self.modelVersion = modelVersion
        self.computeSeconds = computeSeconds
        self.computeRows = computeRows
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.sampleRate = sampleRate
        self.computedAt = computedAt
        self.decision = decision
        self.inputHashes = inputHashes
        self.feature = feature
        self.keyHash = keyHash
        self.hasRequestInputs = hasRequestInputs
        self.source = source
        self.outcome = outcome
        self.latencySeconds = latencySeconds
        self.ageSeconds = ageSeconds
        self.at = at
    }
}

/// Where request-log samples are kept (SQLite or PostgreSQL, the same behaviour tests).
/// The process-usage ledger lives beside it: both are what the advisor reads.
public protocol RequestLogStore: ProcessUsageStore {
    /// Appends samples (one transaction).
    func append(_ samples: [RequestLogSample]) async throws
    /// The latest `limit` samples of one feature in `[since, until)`, returned oldest first.
    func samples(feature: String, since: Double, until: Double, limit: Int) async throws -> [RequestLogSample]
    /// Deletes samples older than `before`; returns how many were deleted.
    func deleteSamples(before: Double) async throws -> Int
}

extension RequestLogSample {
    /// `inputHashes` as text for a store column: `name=hex` pairs separated by U+001F.
    public var encodedInputHashes: String? {
        guard !inputHashes.isEmpty else { return nil }
        return inputHashes.sorted { $0.key < $1.key }.map { "\($0.key)=\(String($0.value, radix: 16))" }
            .joined(separator: "\u{1F}")
    }

    /// Reads `encodedInputHashes`; malformed pairs are skipped.
    public static func decodeInputHashes(_ text: String?) -> [String: UInt64] {
        guard let text, !text.isEmpty else { return [:] }
        var result: [String: UInt64] = [:]
        for pair in text.split(separator: "\u{1F}") {
            guard let equals = pair.lastIndex(of: "="),
                let value = UInt64(pair[pair.index(after: equals)...], radix: 16)
            else { continue }
            result[String(pair[..<equals])] = value
        }
        return result
    }
}
