/// Where load-test runs (`freshline load FEATURE --replay`) are recorded, apart from the request log: a load test's
/// requests are never production traffic (SQLite or PostgreSQL, the same behaviour tests).
public protocol LoadTestStore: Sendable {
    /// Records one finished run (a run recorded again under the same id replaces the earlier record).
    func record(_ result: LoadTestResult) async throws
    /// The latest `limit` runs of one feature that started at or after `since`, newest first.
    func loadTests(feature: String, since: Double, limit: Int) async throws -> [LoadTestResult]
}
