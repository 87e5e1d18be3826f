public import FreshlineCore
internal import PostgresNIO

extension PostgresStore: UpstreamBudgetStore {
    /// One transaction: the upstream's row is created full if missing, read `FOR UPDATE` with the database's clock
    /// (one clock for every server), updated by `SharedBudgetBuckets.take`, and written back; concurrent servers
    /// queue on the row lock, so no slice is granted twice.
    public func takeBudget(_ request: BudgetSliceRequest) async throws -> BudgetSlice {
        try await transaction { tx in
            var (buckets, now) = try await Self.lockedBuckets(request, tx)
            let slice = buckets.take(request, now: now)
            try await Self.write(buckets, upstream: request.upstream, tx)
            return slice
        }
    }

    private static func lockedBuckets(_ request: BudgetSliceRequest, _ tx: Transaction) async throws -> (
        SharedBudgetBuckets, Double
    ) {
        let full = SharedBudgetBuckets.full(request, now: 0)
        try await tx.rows(
            """
            INSERT INTO upstream_budgets (upstream, requests, tokens, updated_at)
            VALUES (\(request.upstream), \(full.requests), \(full.tokens),
                extract(epoch FROM clock_timestamp())::double precision)
            ON CONFLICT (upstream) DO NOTHING
            """)
        let rows = try await tx.rows(
            """
            SELECT requests, tokens, updated_at, extract(epoch FROM clock_timestamp())::double precision
            FROM upstream_budgets WHERE upstream = \(request.upstream) FOR UPDATE
            """)
        guard let row = rows.first else {
            throw PostgresStoreError.database(operation: "takeBudget", message: "the budget row vanished")
        }
        let (requests, tokens, updatedAt, now) = try row.decode((Double, Double, Double, Double).self)
        return (SharedBudgetBuckets(requests: requests, tokens: tokens, updatedAt: updatedAt), now)
    }

    private static func write(_ buckets: SharedBudgetBuckets, upstream: String, _ tx: Transaction) async throws {
        try await tx.rows(
            """
            UPDATE upstream_budgets SET requests = \(buckets.requests), tokens = \(buckets.tokens),
                updated_at = \(buckets.updatedAt)
            WHERE upstream = \(upstream)
            """)
    }
}
