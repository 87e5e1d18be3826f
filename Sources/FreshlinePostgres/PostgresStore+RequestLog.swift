public import FreshlineCore
internal import PostgresNIO

extension PostgresStore: RequestLogStore {
    public func append(_ samples: [RequestLogSample]) async throws {
        guard !samples.isEmpty else { return }
        // One statement whatever the count: a column array per field, zipped back into rows by UNNEST.
        try await rows(
            """
            INSERT INTO request_log (feature, key_hash, has_request_inputs, source, outcome, latency_seconds,
                age_seconds, at, sample_rate, computed_at, decision, input_hashes, input_tokens, output_tokens,
                model_version, compute_seconds, compute_rows)
            SELECT * FROM UNNEST(
                \(samples.map(\.feature)), \(NullableArray(samples.map(\.keyHash))),
                \(samples.map(\.hasRequestInputs)), \(NullableArray(samples.map { $0.source?.rawValue })),
                \(samples.map(\.outcome)), \(samples.map(\.latencySeconds)), \(samples.map(\.ageSeconds)),
                \(samples.map(\.at)), \(samples.map(\.sampleRate)), \(NullableArray(samples.map(\.computedAt))),
                \(NullableArray(samples.map { $0.decision?.encoded })), \(NullableArray(samples.map(\.encodedInputHashes))),
                \(NullableArray(samples.map { $0.inputTokens.map(Int64.init) })),
                \(NullableArray(samples.map { $0.outputTokens.map(Int64.init) })),
                \(NullableArray(samples.map(\.modelVersion))), \(NullableArray(samples.map(\.computeSeconds))),
                \(NullableArray(samples.map { $0.computeRows.map(Int64.init) })))
            """)
    }

    public func samples(feature: String, since: Double, until: Double, limit: Int) async throws
        -> [RequestLogSample]
    {
        try await rows(
            """
            SELECT feature, key_hash, has_request_inputs, source, outcome, latency_seconds, age_seconds, at,
                sample_rate, computed_at, decision, input_hashes, input_tokens, output_tokens, model_version,
                compute_seconds, compute_rows
            FROM request_log WHERE feature = \(feature) AND at >= \(since) AND at < \(until)
            ORDER BY at DESC, id DESC LIMIT \(limit)
            """
        ).reversed().map(Self.sample(from:))
    }

    public func deleteSamples(before: Double) async throws -> Int {
        try await rows(
            """
            WITH deleted AS (DELETE FROM request_log WHERE at < \(before) RETURNING 1)
            SELECT COUNT(*) FROM deleted
            """
        ).first?.decode(Int.self) ?? 0
    }

    private static func sample(from row: PostgresRow) throws -> RequestLogSample {
        let (
            feature, keyHash, hasRequestInputs, source, outcome, latency, age, at, sampleRate, computedAt, decision,
            inputHashes, inputTokens, outputTokens, modelVersion, computeSeconds, computeRows
        ) = try row.decode(
            (
                String, String?, Bool, String?, String, Double, Double, Double, Double, Double?, String?, String?,
                Int64?, Int64?, String?, Double?, Int64?
            ).self)
        var sample = RequestLogSample(
            feature: feature, keyHash: keyHash, hasRequestInputs: hasRequestInputs,
            source: source.flatMap(PredictionSource.init(rawValue:)), outcome: outcome, latencySeconds: latency,
            ageSeconds: age, at: at, sampleRate: sampleRate, computedAt: computedAt,
            decision: decision.flatMap(DecisionValue.init(encoded:)),
            inputHashes: RequestLogSample.decodeInputHashes(inputHashes), inputTokens: inputTokens.map(Int.init),
            outputTokens: outputTokens.map(Int.init))
        sample.modelVersion = modelVersion
        sample.computeSeconds = computeSeconds
        sample.computeRows = computeRows.map { Int(clamping: $0) }
        return sample
    }

    public func appendUsage(_ usage: ProcessUsage) async throws {
        let features = ProcessUsage.encodeFeatures(usage.features)
        try await rows(
            """
            INSERT INTO process_usage (process, at, seconds, cpu_seconds, features)
            VALUES (\(usage.process), \(usage.at), \(usage.seconds), \(usage.cpuSeconds), \(features))
            """)
    }

    public func usage(since: Double, until: Double) async throws -> [ProcessUsage] {
        try await rows(
            """
            SELECT process, at, seconds, cpu_seconds, features FROM process_usage
            WHERE at >= \(since) AND at < \(until) ORDER BY at, id
            """
        ).map { row in
            let (process, at, seconds, cpu, features) = try row.decode((String, Double, Double, Double, String).self)
            return ProcessUsage(
                process: process, at: at, seconds: seconds, cpuSeconds: cpu,
                features: ProcessUsage.decodeFeatures(features))
        }
    }

    public func deleteUsage(before: Double) async throws -> Int {
        try await rows(
            """
            WITH deleted AS (DELETE FROM process_usage WHERE at < \(before) RETURNING 1)
            SELECT COUNT(*) FROM deleted
            """
        ).first?.decode(Int.self) ?? 0
    }
}
