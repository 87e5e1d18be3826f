internal import Foundation
public import FreshlineCore
internal import PostgresNIO

extension PostgresStore: LoadTestStore {
    public func record(_ result: LoadTestResult) async throws {
        let sources = try Self.encodeColumn(result.sources)
        let outcomes = try Self.encodeColumn(result.outcomes)
        try await rows(
            """
            INSERT INTO load_tests (id, feature, started_at, ended_at, speed, duration_seconds, sent, answered, shed,
                fallback, errors, achieved_rate, target_url, sources, outcomes)
            VALUES (\(result.id), \(result.feature), \(result.startedAt), \(result.endedAt), \(result.speed),
                \(result.durationSeconds), \(Int64(result.sent)), \(Int64(result.answered)), \(Int64(result.shed)),
                \(Int64(result.fallback)), \(Int64(result.errors)), \(result.achievedRate), \(result.server),
                \(sources), \(outcomes))
            ON CONFLICT (id) DO UPDATE SET feature = EXCLUDED.feature, started_at = EXCLUDED.started_at,
                ended_at = EXCLUDED.ended_at, speed = EXCLUDED.speed, duration_seconds = EXCLUDED.duration_seconds,
                sent = EXCLUDED.sent, answered = EXCLUDED.answered, shed = EXCLUDED.shed,
                fallback = EXCLUDED.fallback, errors = EXCLUDED.errors, achieved_rate = EXCLUDED.achieved_rate,
                target_url = EXCLUDED.target_url, sources = EXCLUDED.sources, outcomes = EXCLUDED.outcomes
            """)
    }

    public func loadTests(feature: String, since: Double, limit: Int) async throws -> [LoadTestResult] {
        try await rows(
            """
            SELECT id, feature, started_at, ended_at, speed, duration_seconds, sent, answered, shed, fallback, errors,
                achieved_rate, target_url, sources, outcomes
            FROM load_tests WHERE feature = \(feature) AND started_at >= \(since)
            ORDER BY started_at DESC, id DESC LIMIT \(limit)
            """
        ).map { row in
            let (
                id, feature, startedAt, endedAt, speed, duration, sent, answered, shed, fallback, errors, rate, url,
                sources, outcomes
            ) = try row.decode(
                (
                    String, String, Double, Double, Double, Double, Int64, Int64, Int64, Int64, Int64, Double, String,
                    String, String
                ).self)
            return LoadTestResult(
                id: id, feature: feature, startedAt: startedAt, endedAt: endedAt, speed: speed,
                durationSeconds: duration, sent: Int(sent), answered: Int(answered),
                sources: try JSONDecoder().decode([SourceLatency].self, from: Data(sources.utf8)), shed: Int(shed),
                fallback: Int(fallback), errors: Int(errors), achievedRate: rate, server: url,
                outcomes: try JSONDecoder().decode([String: Int].self, from: Data(outcomes.utf8)))
        }
    }

    /// Per-source percentiles and outcome counts as the `load_tests` table keeps them: JSON text (as SQLite's).
    private static func encodeColumn(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
