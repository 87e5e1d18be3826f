public import FreshlineCore
internal import GRDB

extension SQLiteStore {
    /// Webhook deliveries and their attempt log (`v4-webhooks`).
    static func registerWebhooksMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v4-webhooks") { db in
            try db.execute(
                sql: """
                    CREATE TABLE webhook_deliveries (
                        id TEXT PRIMARY KEY,
                        job_id TEXT NOT NULL,
                        event_id TEXT NOT NULL,
                        event_type TEXT NOT NULL,
                        url TEXT NOT NULL,
                        state TEXT NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        next_attempt_at DOUBLE NOT NULL,
                        created_at DOUBLE NOT NULL,
                        delivered_at DOUBLE,
                        last_status INTEGER,
                        last_error TEXT
                    );
                    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
                    CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, created_at);
                    CREATE TABLE webhook_attempts (
                        delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
                        attempt INTEGER NOT NULL,
                        at DOUBLE NOT NULL,
                        status INTEGER,
                        error TEXT,
                        PRIMARY KEY (delivery_id, attempt)
                    );
                    """)
        }
    }
}

extension SQLiteStore: WebhookStore {
    public func enqueue(_ delivery: WebhookDelivery) async throws {
        try await writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO webhook_deliveries (id, job_id, event_id, event_type, url, state, attempts,
                        next_attempt_at, created_at, delivered_at, last_status, last_error)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    delivery.id, delivery.jobID, delivery.eventID, delivery.eventType, delivery.url,
                    delivery.state.rawValue, delivery.attempts, delivery.nextAttemptAt, delivery.createdAt,
                    delivery.deliveredAt, delivery.lastStatus, delivery.lastError,
                ])
        }
    }

    public func claimDueDeliveries(now: Double, limit: Int, claimSeconds: Double) async throws -> [WebhookDelivery] {
        try await writer.write { db in
            let due = try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ?
                    ORDER BY next_attempt_at LIMIT ?
                    """,
                arguments: [now, limit]
            ).map(Self.delivery(from:))
            for delivery in due {
                try db.execute(
                    sql: "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?",
                    arguments: [now + claimSeconds, delivery.id])
            }
            return due
        }
    }

    public func record(_ delivery: WebhookDelivery, attempt: WebhookAttempt) async throws {
        try await writer.write { db in
            try db.execute(
                sql: """
                    UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_at = ?, delivered_at = ?,
                        last_status = ?, last_error = ?
                    WHERE id = ?
                    """,
                arguments: [
                    delivery.state.rawValue, delivery.attempts, delivery.nextAttemptAt, delivery.deliveredAt,
                    delivery.lastStatus, delivery.lastError, delivery.id,
                ])
            try db.execute(
                sql:
                    "INSERT OR REPLACE INTO webhook_attempts (delivery_id, attempt, at, status, error) VALUES (?,?,?,?,?)",
                arguments: [attempt.deliveryID, attempt.attempt, attempt.at, attempt.status, attempt.error])
        }
    }

    public func deliveries(jobID: String) async throws -> [(delivery: WebhookDelivery, attempts: [WebhookAttempt])] {
        try await writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM webhook_deliveries WHERE job_id = ? ORDER BY created_at, rowid",
                arguments: [jobID]
            ).map(Self.delivery(from:)).map { delivery in
                let attempts = try Row.fetchAll(
                    db, sql: "SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt",
                    arguments: [delivery.id]
                ).map { row in
                    WebhookAttempt(
                        deliveryID: row["delivery_id"], attempt: row["attempt"], at: row["at"], status: row["status"],
                        error: row["error"])
                }
                return (delivery, attempts)
            }
        }
    }

    public func deleteDeliveries(createdBefore: Double, limit: Int) async throws -> Int {
        try await writer.write { db in
            // The attempt log goes with its delivery (`ON DELETE CASCADE`; GRDB turns foreign keys on).
            try db.execute(
                sql: """
                    DELETE FROM webhook_deliveries WHERE id IN (
                        SELECT id FROM webhook_deliveries WHERE created_at <= ? AND state <> 'pending'
                        ORDER BY created_at LIMIT ?)
                    """,
                arguments: [createdBefore, limit])
            return db.changesCount
        }
    }

    private static func delivery(from row: Row) -> WebhookDelivery {
        var delivery = WebhookDelivery(
            id: row["id"], jobID: row["job_id"], eventID: row["event_id"], eventType: row["event_type"],
            url: row["url"], createdAt: row["created_at"])
        delivery.state = WebhookDelivery.State(rawValue: row["state"]) ?? .failed
        delivery.attempts = row["attempts"]
        delivery.nextAttemptAt = row["next_attempt_at"]
        delivery.deliveredAt = row["delivered_at"]
        delivery.lastStatus = row["last_status"]
        delivery.lastError = row["last_error"]
        return delivery
    }
}
