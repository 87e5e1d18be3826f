public import FreshlineCore
internal import PostgresNIO

extension PostgresStore: WebhookStore {
    public func enqueue(_ delivery: WebhookDelivery) async throws {
        try await rows(
            """
            INSERT INTO webhook_deliveries (id, job_id, event_id, event_type, url, state, attempts, next_attempt_at,
                created_at, delivered_at, last_status, last_error)
            VALUES (\(delivery.id), \(delivery.jobID), \(delivery.eventID), \(delivery.eventType), \(delivery.url),
                \(delivery.state.rawValue), \(delivery.attempts), \(delivery.nextAttemptAt), \(delivery.createdAt),
                \(delivery.deliveredAt), \(delivery.lastStatus), \(delivery.lastError))
            """)
    }

    public func claimDueDeliveries(now: Double, limit: Int, claimSeconds: Double) async throws -> [WebhookDelivery] {
        try await transaction { tx in
            // Deliveries another dispatcher is claiming right now are skipped, not waited for.
            let due = try await tx.rows(
                """
                SELECT * FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= \(now)
                ORDER BY next_attempt_at, seq LIMIT \(limit) FOR UPDATE SKIP LOCKED
                """
            ).map(Self.delivery(from:))
            guard !due.isEmpty else { return [] }
            // As the SQLite store: the claimed deliveries are returned as they were read (their due time).
            try await tx.rows(
                """
                UPDATE webhook_deliveries SET next_attempt_at = \(now + claimSeconds)
                WHERE id = ANY(\(due.map(\.id)))
                """)
            return due
        }
    }

    public func record(_ delivery: WebhookDelivery, attempt: WebhookAttempt) async throws {
        try await transaction { tx in
            try await tx.rows(
                """
                UPDATE webhook_deliveries SET state = \(delivery.state.rawValue), attempts = \(delivery.attempts),
                    next_attempt_at = \(delivery.nextAttemptAt), delivered_at = \(delivery.deliveredAt),
                    last_status = \(delivery.lastStatus), last_error = \(delivery.lastError)
                WHERE id = \(delivery.id)
                """)
            try await tx.rows(
                """
                INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error)
                VALUES (\(attempt.deliveryID), \(attempt.attempt), \(attempt.at), \(attempt.status), \(attempt.error))
                ON CONFLICT (delivery_id, attempt) DO UPDATE
                SET at = EXCLUDED.at, status = EXCLUDED.status, error = EXCLUDED.error
                """)
        }
    }

    public func deliveries(jobID: String) async throws -> [(delivery: WebhookDelivery, attempts: [WebhookAttempt])] {
        try await transaction { tx in
            let deliveries = try await tx.rows(
                "SELECT * FROM webhook_deliveries WHERE job_id = \(jobID) ORDER BY created_at, seq"
            ).map(Self.delivery(from:))
            var attempts: [String: [WebhookAttempt]] = [:]
            for row in try await tx.rows(
                """
                SELECT delivery_id, attempt, at, status, error FROM webhook_attempts
                WHERE delivery_id = ANY(\(deliveries.map(\.id))) ORDER BY delivery_id, attempt
                """)
            {
                let (deliveryID, number, at, status, error) = try row.decode((String, Int, Double, Int?, String?).self)
                attempts[deliveryID, default: []].append(
                    WebhookAttempt(deliveryID: deliveryID, attempt: number, at: at, status: status, error: error))
            }
            return deliveries.map { ($0, attempts[$0.id] ?? []) }
        }
    }

    public func deleteDeliveries(createdBefore: Double, limit: Int) async throws -> Int {
        // The attempt log goes with its delivery (`ON DELETE CASCADE`).
        try await rows(
            """
            WITH gone AS (
                DELETE FROM webhook_deliveries WHERE id IN (
                    SELECT id FROM webhook_deliveries WHERE created_at <= \(createdBefore) AND state <> 'pending'
                    ORDER BY created_at LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                RETURNING 1)
            SELECT COUNT(*) FROM gone
            """
        ).first?.decode(Int.self) ?? 0
    }

    private static func delivery(from row: PostgresRow) throws -> WebhookDelivery {
        let column = row.makeRandomAccess()
        var delivery = WebhookDelivery(
            id: try column["id"].decode(String.self), jobID: try column["job_id"].decode(String.self),
            eventID: try column["event_id"].decode(String.self),
            eventType: try column["event_type"].decode(String.self), url: try column["url"].decode(String.self),
            createdAt: try column["created_at"].decode(Double.self))
        delivery.state = WebhookDelivery.State(rawValue: try column["state"].decode(String.self)) ?? .failed
        delivery.attempts = try column["attempts"].decode(Int.self)
        delivery.nextAttemptAt = try column["next_attempt_at"].decode(Double.self)
        delivery.deliveredAt = try column["delivered_at"].decode(Double?.self)
        delivery.lastStatus = try column["last_status"].decode(Int?.self)
        delivery.lastError = try column["last_error"].decode(String?.self)
        return delivery
    }
}
