internal import Foundation
public import FreshlineCore
internal import GRDB

extension SQLiteStore {
    /// Load-test runs, apart from the request log (`v13-load-tests`).
    static func registerLoadTestsMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v13-load-tests") { db in
            try db.execute(
                sql: """
                    CREATE TABLE load_tests (
                        id TEXT PRIMARY KEY,
                        feature TEXT NOT NULL,
                        started_at DOUBLE NOT NULL,
                        ended_at DOUBLE NOT NULL,
                        speed DOUBLE NOT NULL CHECK (speed > 0),
                        duration_seconds DOUBLE NOT NULL,
                        sent INTEGER NOT NULL CHECK (sent >= 0),
                        answered INTEGER NOT NULL CHECK (answered >= 0),
                        shed INTEGER NOT NULL CHECK (shed >= 0),
                        fallback INTEGER NOT NULL CHECK (fallback >= 0),
                        errors INTEGER NOT NULL CHECK (errors >= 0),
                        achieved_rate DOUBLE NOT NULL,
                        target_url TEXT NOT NULL,
                        sources TEXT NOT NULL,
                        outcomes TEXT NOT NULL
                    );
                    CREATE INDEX load_tests_feature_started ON load_tests (feature, started_at);
                    """)
        }
    }
}

extension SQLiteStore: LoadTestStore {
    public func record(_ result: LoadTestResult) async throws {
        let sources = try LoadTestColumns.encode(result.sources)
        let outcomes = try LoadTestColumns.encode(result.outcomes)
        try await writer.write { db in
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO load_tests (id, feature, started_at, ended_at, speed, duration_seconds,
                        sent, answered, shed, fallback, errors, achieved_rate, target_url, sources, outcomes)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    result.id, result.feature, result.startedAt, result.endedAt, result.speed,
                    result.durationSeconds, result.sent, result.answered, result.shed, result.fallback, result.errors,
                    result.achievedRate, result.server, sources, outcomes,
                ])
        }
    }

    public func loadTests(feature: String, since: Double, limit: Int) async throws -> [LoadTestResult] {
        try await writer.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM load_tests WHERE feature = ? AND started_at >= ?
                    ORDER BY started_at DESC, id DESC LIMIT ?
                    """,
                arguments: [feature, since, limit]
            ).map { row in
                LoadTestResult(
                    id: row["id"], feature: row["feature"], startedAt: row["started_at"], endedAt: row["ended_at"],
                    speed: row["speed"], durationSeconds: row["duration_seconds"], sent: row["sent"],
                    answered: row["answered"], sources: try LoadTestColumns.decode(row["sources"]), shed: row["shed"],
                    fallback: row["fallback"], errors: row["errors"], achievedRate: row["achieved_rate"],
                    server: row["target_url"], outcomes: try LoadTestColumns.decode(row["outcomes"]))
            }
        }
    }
}

/// A load test's per-source percentiles and outcome counts as the `load_tests` table keeps them: JSON text.
enum LoadTestColumns {
    static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func decode<T: Decodable>(_ text: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }
}
