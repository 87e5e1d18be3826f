internal import Foundation
public import FreshlineCore
internal import GRDB

/// The embedded default store: one SQLite file in WAL mode (`.freshline/freshline.sqlite` beside the manifest),
/// or an in-memory database for tests. Schema changes are named migrations.
public final class SQLiteStore: Sendable {
    let writer: any DatabaseWriter

    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    public init(path: String) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        // WAL with synchronous=NORMAL: a committed transaction survives the process being killed (the WAL is in the
        // OS's page cache); only an OS crash or power loss may lose the last commits. FULL would fsync every commit.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        writer = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(writer)
    }

    /// An in-memory database, for tests.
    public init() throws {
        writer = try DatabaseQueue()
        try Self.migrator.migrate(writer)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-request-log") { db in
            try db.create(table: "request_log") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("feature", .text).notNull()
                t.column("key_hash", .text)
                t.column("has_request_inputs", .boolean).notNull()
                t.column("source", .text)
                t.column("outcome", .text).notNull()
                t.column("latency_seconds", .double).notNull().check { $0 >= 0 }
                t.column("age_seconds", .double).notNull()
                t.column("at", .double).notNull()
            }
            try db.create(index: "request_log_feature_at", on: "request_log", columns: ["feature", "at"])
            try db.create(index: "request_log_at", on: "request_log", columns: ["at"])
        }
        registerBatchMigration(&migrator)
        registerJobsMigration(&migrator)
        registerWebhooksMigration(&migrator)
        registerJobLeaseIndexMigration(&migrator)
        migrator.registerMigration("v6-request-log-decisions") { db in
            try db.alter(table: "request_log") { t in
                t.add(column: "sample_rate", .double).notNull().defaults(to: 1)
                t.add(column: "computed_at", .double)
                t.add(column: "decision", .text)
                t.add(column: "input_hashes", .text)
            }
        }
        registerRangesMigration(&migrator)
        registerJobOwnersMigration(&migrator)
        registerProviderBatchesMigration(&migrator)
        migrator.registerMigration("v9-request-log-tokens") { db in
            // Nullable without a default: existing rows stay as they are (no table rewrite), and rows whose answer
            // reported no token usage store nothing.
            try db.alter(table: "request_log") { t in
                t.add(column: "input_tokens", .integer).check { $0 >= 0 }
                t.add(column: "output_tokens", .integer).check { $0 >= 0 }
            }
        }
        registerSealedSnapshotsMigration(&migrator)
        migrator.registerMigration("v12-advisor-measures") { db in
            // The model version and model-call time behind each sampled answer (nullable: older rows and failures
            // have none), and the process-usage ledger the advisor prices serving CPU from.
            try db.alter(table: "request_log") { t in
                t.add(column: "model_version", .text)
                t.add(column: "compute_seconds", .double).check { $0 >= 0 }
                t.add(column: "compute_rows", .integer).check { $0 >= 1 }
            }
            try db.create(table: "process_usage") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("process", .text).notNull()
                t.column("at", .double).notNull().indexed()
                t.column("seconds", .double).notNull()
                t.column("cpu_seconds", .double).notNull()
                t.column("features", .text).notNull()
            }
        }
        registerLoadTestsMigration(&migrator)
        return migrator
    }
}

/// One row of `request_log`.
struct RequestLogRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "request_log"
    enum Columns {
        static let feature = Column(CodingKeys.feature)
        static let at = Column(CodingKeys.at)
    }
    var id: Int64?
    var feature: String
    var key_hash: String?
    var has_request_inputs: Bool
    var source: String?
    var outcome: String
    var latency_seconds: Double
    var age_seconds: Double
    var at: Double
    var sample_rate: Double
    var computed_at: Double?
    var decision: String?
    var input_hashes: String?
    var input_tokens: Int?
    var output_tokens: Int?
    var model_version: String?
    var compute_seconds: Double?
    var compute_rows: Int?

    init(_ s: RequestLogSample) {
        feature = s.feature
        key_hash = s.keyHash
        has_request_inputs = s.hasRequestInputs
        source = s.source?.rawValue
        outcome = s.outcome
        latency_seconds = s.latencySeconds
        age_seconds = s.ageSeconds
        at = s.at
        sample_rate = s.sampleRate
        computed_at = s.computedAt
        decision = s.decision?.encoded
        input_hashes = s.encodedInputHashes
        input_tokens = s.inputTokens
        output_tokens = s.outputTokens
        model_version = s.modelVersion
        compute_seconds = s.computeSeconds
        compute_rows = s.computeRows
    }

    var sample: RequestLogSample {
        var s = RequestLogSample(
            feature: feature, keyHash: key_hash, hasRequestInputs: has_request_inputs,
            source: source.flatMap(PredictionSource.init(rawValue:)), outcome: outcome,
            latencySeconds: latency_seconds, ageSeconds: age_seconds, at: at, sampleRate: sample_rate,
            computedAt: computed_at, decision: decision.flatMap(DecisionValue.init(encoded:)),
            inputHashes: RequestLogSample.decodeInputHashes(input_hashes), inputTokens: input_tokens,
            outputTokens: output_tokens)
        s.modelVersion = model_version
        s.computeSeconds = compute_seconds
        s.computeRows = compute_rows
        return s
    }
}

/// One row of `process_usage`: an interval of the ledger, its features as JSON text.
struct ProcessUsageRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "process_usage"
    enum Columns {
        static let at = Column(CodingKeys.at)
    }
    var id: Int64?
    var process: String
    var at: Double
    var seconds: Double
    var cpu_seconds: Double
    var features: String

    init(_ u: ProcessUsage) {
        process = u.process
        at = u.at
        seconds = u.seconds
        cpu_seconds = u.cpuSeconds
        features = ProcessUsage.encodeFeatures(u.features)
    }

    var usage: ProcessUsage {
        ProcessUsage(
            process: process, at: at, seconds: seconds, cpuSeconds: cpu_seconds,
            features: ProcessUsage.decodeFeatures(features))
    }
}

extension SQLiteStore: RequestLogStore {
    public func append(_ samples: [RequestLogSample]) async throws {
        guard !samples.isEmpty else { return }
        try await writer.write { db in
            for sample in samples { try RequestLogRecord(sample).insert(db) }
        }
    }

    public func samples(feature: String, since: Double, until: Double, limit: Int) async throws
        -> [RequestLogSample]
    {
        try await writer.read { db in
            try RequestLogRecord
                .filter(
                    RequestLogRecord.Columns.feature == feature && RequestLogRecord.Columns.at >= since
                        && RequestLogRecord.Columns.at < until
                )
                .order(RequestLogRecord.Columns.at.desc)
                .limit(limit)
                .fetchAll(db)
                .reversed()
                .map(\.sample)
        }
    }

    public func deleteSamples(before: Double) async throws -> Int {
        try await writer.write { db in
            try RequestLogRecord.filter(RequestLogRecord.Columns.at < before).deleteAll(db)
        }
    }

    public func appendUsage(_ usage: ProcessUsage) async throws {
        let record = ProcessUsageRecord(usage)
        try await writer.write { db in try record.insert(db) }
    }

    public func usage(since: Double, until: Double) async throws -> [ProcessUsage] {
        try await writer.read { db in
            try ProcessUsageRecord
                .filter(ProcessUsageRecord.Columns.at >= since && ProcessUsageRecord.Columns.at < until)
                .order(ProcessUsageRecord.Columns.at)
                .fetchAll(db)
                .map(\.usage)
        }
    }

    public func deleteUsage(before: Double) async throws -> Int {
        try await writer.write { db in
            try ProcessUsageRecord.filter(ProcessUsageRecord.Columns.at < before).deleteAll(db)
        }
    }
}
