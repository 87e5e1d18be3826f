internal import Foundation
internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import FreshlineRuntime
internal import HTTPTypes
internal import Hummingbird

/// The `/v1` API: predictions with provenance, and the features with their live figures.
struct FeatureRoutes {
    typealias Context = FreshlineRequestContext
    let runtime: ServingRuntime
    let maxBodyBytes: Int
    /// Real-time requests in flight, shared with `/v2` (`server.max_in_flight`).
    var inFlight: InFlightLimit? = nil

    func register(on routes: ScopedRoutes) {
        routes.predict.post("/v1/features/:name/predict") { request, context in try await predict(request, context) }
        routes.client.get("/v1/features") { _, _ in try listFeatures() }
        // Either scope reads a feature's contract; its batch source (file paths, SQL text) only with `admin`.
        routes.client.get("/v1/features/:name") { _, context in
            try describeFeature(
                try feature(context), internals: context.token.map { $0.scopes.contains(.admin) } ?? true)
        }
    }

    private func feature(_ context: Context) throws -> FeatureServer {
        let name = context.parameters.get("name") ?? ""
        guard let feature = runtime.features[name] else {
            throw APIError.notFound(
                "no feature named '\(name)' (features: \(runtime.features.keys.sorted().joined(separator: ", ")))")
        }
        return feature
    }

    /// The request body: one row (`key`, `inputs`) or several (`rows`), with an optional `max_staleness`.
    struct PredictBody {
        struct Row {
            var key: JSONValue?
            var inputs: [String: JSONValue]?
        }
        var key: JSONValue?
        var inputs: [String: JSONValue]?
        var rows: [Row]?
        var max_staleness: JSONValue?

        /// Reads the body's fields from parsed JSON; unknown fields are ignored, wrong types are a 400.
        init(_ json: JSONValue) throws {
            guard case .object(let object) = json else { throw APIError.badRequest("body: expected a JSON object") }
            key = object["key"]
            max_staleness = object["max_staleness"]
            inputs = try Self.inputs(object["inputs"], field: "inputs")
            switch object["rows"] {
            case nil, .null?: rows = nil
            case .array(let items)?:
                rows = try items.enumerated().map { index, item in
                    guard case .object(let row) = item else {
                        throw APIError.badRequest("rows[\(index)]: expected an object")
                    }
                    return Row(key: row["key"], inputs: try Self.inputs(row["inputs"], field: "rows[\(index)].inputs"))
                }
            default: throw APIError.badRequest("rows: expected an array of {key, inputs}")
            }
        }

        /// The body's rows as requests: `rows` (1…`maxRows`, not mixed with `key`/`inputs`) or the one row.
        func requests(
            maxRows: Int, maxStaleness: Duration? = nil, timeout: Duration? = nil,
            arrival: ContinuousClock.Instant? = nil
        ) throws -> [PredictRequest] {
            guard let rows else {
                return [
                    PredictRequest(
                        key: try FeatureRoutes.key(key, field: "key"), inputs: inputs ?? [:],
                        maxStaleness: maxStaleness, timeout: timeout, arrival: arrival)
                ]
            }
            guard inputs == nil, key == nil else {
                throw APIError.badRequest("give either rows or key/inputs, not both")
            }
            guard !rows.isEmpty, rows.count <= maxRows else {
                throw APIError.badRequest("rows must hold 1 to \(maxRows) rows")
            }
            return try rows.enumerated().map { index, row in
                PredictRequest(
                    key: try FeatureRoutes.key(row.key, field: "rows[\(index)].key"), inputs: row.inputs ?? [:],
                    maxStaleness: maxStaleness, timeout: timeout, arrival: arrival)
            }
        }

        static func inputs(_ value: JSONValue?, field: String) throws -> [String: JSONValue]? {
            switch value {
            case nil, .null?: return nil
            case .object(let inputs)?: return inputs
            default: throw APIError.badRequest("\(field): expected an object of named inputs")
            }
        }
    }

    private func predict(_ request: Request, _ context: Context) async throws -> Response {
        let feature = try feature(context)
        let respondAsync = feature.spec.pattern == .async || Prefer(request.headers[preferHeader]).respondAsync
        let timeout = try Self.timeout(request)
        // Refused before the body is read when the server is answering its limit of real-time requests, or when the
        // rows already queued mean it cannot be answered in time.
        if !respondAsync { try inFlight?.enter() }
        defer { if !respondAsync { inFlight?.leave() } }
        if !respondAsync, !feature.admits(arrival: context.arrival, timeout: timeout) {
            throw APIError(
                .serviceUnavailable, code: "overloaded",
                "the request cannot be answered within its deadline: the feature's queue is too long", retryAfter: 1)
        }
        let json = try await Self.body(of: request, limit: maxBodyBytes)
        let body = try PredictBody(json)
        // Async: features whose pattern is async, and any feature when the caller prefers it (RFC 7240).
        if respondAsync {
            guard let jobs = runtime.jobs else {
                throw APIError(.serviceUnavailable, code: "unavailable", "this server has no job store")
            }
            return try await JobRoutes.accept(
                request, context: context, feature: feature, rows: try body.requests(maxRows: JobRoutes.maxRows),
                body: json, service: jobs, single: body.rows == nil)
        }
        let maxStaleness = try body.max_staleness.map { try Self.duration($0, field: "max_staleness") }
        var requests = try body.requests(
            maxRows: Self.maxRows, maxStaleness: maxStaleness, timeout: timeout, arrival: context.arrival)
        if isLoadTest(request, context) {
            for index in requests.indices { requests[index].loadTest = true }
        }
        if body.rows != nil {
            // Up to one full batch of the request's rows is in the batcher's queue at a time, so the batcher can still
            // fill batches from it, while one 10,000-row request cannot fill the queue and starve every other caller:
            // their rows queue beside its next window, not behind all of it.
            let window = max(1, feature.spec.batching.maxBatchSize)
            let name = feature.spec.name
            // Each row's answer (or error) as its JSON, in the request's order.
            let items = await withTaskGroup(of: (Int, JSONValue).self) { group in
                var ordered = [JSONValue](repeating: .null, count: requests.count)
                for (index, row) in requests.enumerated() {
                    if index >= window, let (done, item) = await group.next() { ordered[done] = item }
                    group.addTask {
                        do { return (index, Self.json(try await feature.predict(row), feature: name)) } catch {
                            let e = PredictionError(modelCall: error)
                            let code = JSONValue.string(APIError(e).code)
                            return (index, .object(["error": .object(["code": code, "message": .string(e.message)])]))
                        }
                    }
                }
                for await (index, item) in group { ordered[index] = item }
                return ordered
            }
            return JSONResponse.make(
                JSONValue.object(["feature": .string(feature.spec.name), "results": .array(items)]))
        }
        do {
            let prediction = try await feature.predict(requests[0])
            var headers = HTTPFields()
            headers[.age] = String(Int(prediction.provenance.ageSeconds.rounded(.down)))
            return JSONResponse.make(bytes: Self.body(prediction, feature: feature.spec.name), headers: headers)
        } catch let error as PredictionError {
            throw APIError(error)
        }
    }

    /// Whether the request is a load test's (`freshline load`: `X-Freshline-Load-Test: <run id>`), kept out of the
    /// request log. Honoured on an open API, and with tokens configured only for a caller whose token was checked.
    private func isLoadTest(_ request: Request, _ context: Context) -> Bool {
        guard request.headers[Self.loadTestHeader] != nil else { return false }
        return context.token != nil || runtime.manifest.tokens.isEmpty
    }

    /// The header `freshline load` marks its requests with (`LoadRunner.header`).
    static let loadTestHeader = HTTPField.Name(LoadRunner.header)!

    /// The single-row answer's body, written directly (the same text as `json(_:feature:).serialized()`, keys in
    /// sorted order) — the hot path of every lookup.
    static func body(_ p: Prediction, feature: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        func key(_ name: StaticString, first: Bool = false) {
            if !first { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            name.withUTF8Buffer { out.append(contentsOf: $0) }
            out.append(contentsOf: "\":".utf8)
        }
        out.append(UInt8(ascii: "{"))
        key("age_seconds", first: true)
        JSONValue.number(p.provenance.ageSeconds).write(into: &out)
        key("computed_at")
        out.append(UInt8(ascii: "\""))
        Timestamp.write(p.provenance.computedAt, into: &out)
        out.append(UInt8(ascii: "\""))
        key("feature")
        JSONValue.writeString(feature, into: &out)
        if !p.inputs.isEmpty {
            key("inputs_from")
            Self.inputsFrom(p).write(into: &out)
        }
        if let k = p.key {
            key("key")
            JSONValue.writeString(k, into: &out)
        }
        key("model_version")
        if let version = p.provenance.modelVersion {
            JSONValue.writeString(version, into: &out)
        } else {
            out.append(contentsOf: "null".utf8)
        }
        key("outputs")
        JSONValue.object(p.outputs).write(into: &out)
        if let snapshot = p.provenance.snapshot {
            key("snapshot")
            JSONValue.writeString(snapshot, into: &out)
        }
        key("source")
        JSONValue.writeString(p.provenance.source.rawValue, into: &out)
        key("stale")
        out.append(contentsOf: (p.provenance.stale ? "true" : "false").utf8)
        if let usage = p.usage {
            key("usage")
            JobService.usage(usage).write(into: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    static func json(_ p: Prediction, feature: String) -> JSONValue {
        var object: [String: JSONValue] = [
            "feature": .string(feature),
            "outputs": .object(p.outputs),
            "source": .string(p.provenance.source.rawValue),
            "computed_at": .string(Timestamp.rfc3339(p.provenance.computedAt)),
            "age_seconds": .number(p.provenance.ageSeconds),
            "model_version": p.provenance.modelVersion.map(JSONValue.string) ?? .null,
            "stale": .bool(p.provenance.stale),
        ]
        if let key = p.key { object["key"] = .string(key) }
        if let snapshot = p.provenance.snapshot { object["snapshot"] = .string(snapshot) }
        if !p.inputs.isEmpty { object["inputs_from"] = inputsFrom(p) }
        if let usage = p.usage { object["usage"] = JobService.usage(usage) }
        return .object(object)
    }

    /// Where each composed input came from: `{"X": {"feature", "key", "source", "snapshot", "computed_at",
    /// "age_seconds", "stale"}}`.
    static func inputsFrom(_ p: Prediction) -> JSONValue {
        .object(
            p.inputs.mapValues { i in
                var o: [String: JSONValue] = [
                    "feature": .string(i.feature), "key": .string(i.key), "source": .string(i.source.rawValue),
                    "stale": .bool(i.stale),
                ]
                if let snapshot = i.snapshot { o["snapshot"] = .string(snapshot) }
                if let at = i.computedAt { o["computed_at"] = .string(Timestamp.rfc3339(at)) }
                if let age = i.ageSeconds { o["age_seconds"] = .number(age) }
                return .object(o)
            })
    }

    private func listFeatures() throws -> Response {
        let items = runtime.features.values.sorted { $0.spec.name < $1.spec.name }.map { f -> JSONValue in
            .object([
                "name": .string(f.spec.name), "pattern": .string(f.spec.pattern.rawValue),
                "model": .string(f.spec.model),
                "model_version": .string(f.model.metadata.version),
                "max_staleness": f.spec.maxStaleness.map { .string(DurationText.format($0)) } ?? .null,
                "latency_budget": .string(DurationText.format(f.spec.latencyBudget)),
            ])
        }
        return JSONResponse.make(JSONValue.object(["features": .array(items)]))
    }

    /// The feature's contract and live figures; `internals` adds the batch source (file paths, SQL text).
    private func describeFeature(_ f: FeatureServer, internals: Bool) throws -> Response {
        let metadata = f.model.metadata
        func info(_ v: ModelMetadata.ValueInfo) -> JSONValue {
            .object(["name": .string(v.name), "type": .string(v.type.description)])
        }
        let live = f.liveFigures
        let latency = live.latency.mapValues { s -> JSONValue in
            .object([
                "count": .integer(Int64(s.count)), "p50_seconds": .number(s.p50), "p95_seconds": .number(s.p95),
                "p99_seconds": .number(s.p99), "p999_seconds": .number(s.p999), "max_seconds": .number(s.max),
            ])
        }
        var failure: JSONValue = .string("error")
        if case .defaultValue(let value) = f.spec.onFailure {
            failure = .object(["default": .object(value)])
        }
        var spec: [String: JSONValue] = [
            "pattern": .string(f.spec.pattern.rawValue), "model": .string(f.spec.model),
            "key": f.spec.key.map(JSONValue.string) ?? .null,
            "max_staleness": f.spec.maxStaleness.map { .string(DurationText.format($0)) } ?? .null,
            "latency_budget": .string(DurationText.format(f.spec.latencyBudget)),
            "user_blocking": .bool(f.spec.userBlocking),
            "on_failure": failure,
            "batching": .object([
                "max_batch_size": .integer(Int64(f.spec.batching.maxBatchSize)),
                "max_queue_delay": .string(DurationText.format(f.spec.batching.maxQueueDelay)),
                "max_queue_length": .integer(Int64(f.spec.batching.maxQueueLength)),
            ]),
        ]
        var liveObject: [String: JSONValue] = [
            "queued": .integer(Int64(live.queued)),
            "estimated_row_cost_seconds": .number(live.estimatedRowCost.seconds),
            "latency": .object(latency),
        ]
        if let batch = f.spec.batch {
            spec["batch"] = Self.json(batch, source: internals)
            let lookups = live.snapshotHits + live.snapshotMisses
            liveObject["snapshot"] =
                live.snapshot.map { s in
                    .object([
                        "version": .integer(Int64(s.version)), "label": .string("v\(s.version)"),
                        "key_count": .integer(Int64(s.keyCount)),
                        "computed_at": .string(Timestamp.rfc3339(s.inputTime)),
                        "age_seconds": .number(live.snapshotAgeSeconds ?? 0),
                        "model_version": .string(s.modelVersion),
                    ])
                } ?? .null
            liveObject["snapshot_lookups"] = .object([
                "hits": .integer(Int64(live.snapshotHits)), "misses": .integer(Int64(live.snapshotMisses)),
                "coverage": lookups > 0 ? .number(Double(live.snapshotHits) / Double(lookups)) : .null,
            ])
        }
        let body: JSONValue = .object([
            "name": .string(f.spec.name),
            "spec": .object(spec),
            "model": .object([
                "name": .string(f.spec.model), "version": .string(metadata.version), "sha256": .string(metadata.sha256),
                "inputs": .array(metadata.inputs.map(info)), "outputs": .array(metadata.outputs.map(info)),
                "opsets": .object(metadata.opsets.mapValues { .integer(Int64($0)) }),
            ]),
            "live": .object(liveObject),
        ])
        return JSONResponse.make(body)
    }

    static func json(_ batch: BatchSpec, source includeSource: Bool) -> JSONValue {
        var source: JSONValue = .null
        switch batch.source {
        case .csv(let path) where includeSource: source = .object(["csv": .string(path)])
        case .jsonLines(let path) where includeSource: source = .object(["jsonl": .string(path)])
        case .sql(let database, let query) where includeSource:
            source = .object(["sql": .object(["database": .string(database), "query": .string(query)])])
        default: break
        }
        return .object([
            "schedule": batch.schedule.map { .string($0.description) } ?? .null, "source": source,
            "key_column": .string(batch.keyColumn), "cold_start": .string(batch.coldStart.rawValue),
            "on_stale": .string(batch.onStale.rawValue), "catch_up": .string(batch.catchUp.rawValue),
            "retention": .integer(Int64(batch.retention)), "chunk_rows": .integer(Int64(batch.chunkRows)),
            "threads": .integer(Int64(batch.threads)),
            "range_rows": batch.rangeRows.map { .integer(Int64($0)) } ?? .null,
        ])
    }

    // MARK: decoding helpers

    /// Collects the body (up to `limit` bytes) and parses it as JSON.
    static func body(of request: Request, limit: Int, allowEmpty: Bool = false) async throws -> JSONValue {
        var request = request
        if let encoding = request.headers[.contentEncoding], encoding.lowercased() != "identity" {
            throw APIError(
                .unsupportedMediaType, code: "unsupported_encoding",
                "Content-Encoding '\(encoding)' is not supported: send the body uncompressed")
        }
        // A declared length over the limit is refused before a byte of the body is read.
        if let length = request.headers[.contentLength], let declared = Int(length), declared > limit {
            throw APIError(.contentTooLarge, code: "too_large", "the request body exceeds \(limit) bytes")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: limit)
        } catch {
            throw APIError(.contentTooLarge, code: "too_large", "the request body exceeds \(limit) bytes")
        }
        if allowEmpty && buffer.readableBytes == 0 { return .null }
        do {
            return try JSONValue.parse(buffer.readableBytesView)
        } catch {
            throw APIError.badRequest("the body is \(error.message)")
        }
    }

    static func key(_ value: JSONValue?, field: String) throws -> String? {
        switch value {
        case nil, .null?: nil
        case .string(let s)?: s
        case .integer(let i)?: String(i)
        default: throw APIError.badRequest("\(field) must be a string or an integer")
        }
    }

    /// A duration from a body field: text (`30s`, `6h`) or a number of seconds, at most
    /// `DurationText.maximumSeconds` (checked before any arithmetic: a larger number would overflow nanoseconds).
    static func duration(_ value: JSONValue, field: String) throws -> Duration {
        let parsed: Duration?
        switch value {
        case .string(let s): parsed = DurationText.parse(s)
        case .integer(let i): parsed = i < 0 ? nil : DurationText.seconds(Double(i))
        case .number(let d): parsed = DurationText.seconds(d)
        default: parsed = nil
        }
        guard let parsed else {
            throw APIError.badRequest(
                "\(field) must be a duration such as 30s, 6h, 7d, or a number of seconds from 0 to "
                    + "\(Int(DurationText.maximumSeconds))")
        }
        return parsed
    }

    /// The most rows one synchronous predict request may hold.
    static let maxRows = 10_000
    /// The longest `X-Freshline-Timeout` a request may ask for; a longer one is refused (400), not clamped, so a
    /// client learns its deadline is not what it thinks. Work that takes longer belongs to the async pattern.
    static let maximumTimeout = Duration.seconds(300)

    /// The request's `X-Freshline-Timeout`, if any: a positive duration of at most `maximumTimeout`.
    static func timeout(_ request: Request) throws -> Duration? {
        guard let header = request.headers[freshlineTimeoutHeader] else { return nil }
        guard let t = DurationText.parse(header), t > .zero, t <= maximumTimeout else {
            throw APIError.badRequest("X-Freshline-Timeout must be a duration from 1us to 300s, such as 50ms")
        }
        return t
    }
}

/// The per-request deadline header (`X-Freshline-Timeout: 50ms`), made once.
let freshlineTimeoutHeader = HTTPField.Name("X-Freshline-Timeout")!
