internal import Foundation
public import FreshlineCore
internal import GRDB

extension SQLiteStore {
    /// Async jobs (`v3-jobs`): one row per job, its input, partial results and result as blobs; an idempotency
    /// key is unique per feature.
    static func registerJobsMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v3-jobs") { db in
            try db.execute(
                sql: """
                    CREATE TABLE jobs (
                        id TEXT PRIMARY KEY,
                        feature TEXT NOT NULL,
                        state TEXT NOT NULL,
                        input BLOB NOT NULL,
                        rows_total INTEGER NOT NULL,
                        rows_done INTEGER NOT NULL DEFAULT 0,
                        partial BLOB,
                        result BLOB,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        max_attempts INTEGER NOT NULL,
                        last_error TEXT,
                        available_at DOUBLE NOT NULL,
                        lease_owner TEXT,
                        lease_expires_at DOUBLE,
                        deadline_at DOUBLE,
                        idempotency_key TEXT,
                        request_hash TEXT,
                        webhook_url TEXT,
                        created_at DOUBLE NOT NULL,
                        updated_at DOUBLE NOT NULL,
                        started_at DOUBLE,
                        finished_at DOUBLE
                    );
                    CREATE UNIQUE INDEX jobs_idempotency ON jobs (feature, idempotency_key)
                        WHERE idempotency_key IS NOT NULL;
                    CREATE INDEX jobs_due ON jobs (state, available_at);
                    CREATE INDEX jobs_feature_created ON jobs (feature, created_at);
                    """)
        }
    }
}

extension SQLiteStore {
    /// An index for reclaiming expired leases (`v5-jobs-lease-index`).
    static func registerJobLeaseIndexMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v5-jobs-lease-index") { db in
            try db.execute(sql: "CREATE INDEX jobs_leases ON jobs (state, lease_expires_at)")
        }
    }
}

extension SQLiteStore {
    /// Who submitted each job (`v8-job-owners`), for per-token quotas, and the indexes the quota count and the
    /// retention sweep read: unfinished jobs per owner, finished jobs by end time, deliveries by creation time.
    static func registerJobOwnersMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v8-job-owners") { db in
            try db.execute(
                sql: """
                    ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
                    CREATE INDEX jobs_owner_state ON jobs (owner, state);
                    CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
                    CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
                    """)
        }
    }
}

extension SQLiteStore: JobStore {
    public func submit(_ job: Job, maxUnfinished: Int?) async throws -> (job: Job, created: Bool) {
        // One write transaction, and GRDB begins those IMMEDIATE: SQLite's single write lock is taken before the
        // idempotency lookup and the quota count, so no other connection or process inserts in between.
        try await writer.write { db in
            if let key = job.idempotencyKey,
                let existing = try Row.fetchOne(
                    db, sql: "SELECT * FROM jobs WHERE feature = ? AND idempotency_key = ?",
                    arguments: [job.feature, key]
                ).map(Self.job(from:))
            {
                guard existing.requestHash == job.requestHash else {
                    throw JobStoreError.idempotencyConflict(jobID: existing.id)
                }
                return (existing, false)
            }
            if let limit = maxUnfinished {
                // Counting stops at the limit: the cost of a submission does not grow with a token's backlog.
                let unfinished =
                    try Int.fetchOne(
                        db.cachedStatement(
                            sql: """
                                SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE owner = ? AND state IN ('queued', 'running')
                                LIMIT ?)
                                """),
                        arguments: [job.owner, limit]) ?? 0
                guard unfinished < limit else { throw JobStoreError.tooManyJobs(limit: limit) }
            }
            try Self.insert(job, db)
            return (job, true)
        }
    }

    public func job(id: String) async throws -> Job? {
        try await writer.read { db in try Self.fetchJob(db, id) }
    }

    public func jobs(feature: String?, state: Job.State?, limit: Int) async throws -> [Job] {
        try await writer.read { db in
            var clauses: [String] = []
            var arguments: StatementArguments = []
            if let feature {
                clauses.append("feature = ?")
                arguments += [feature]
            }
            if let state {
                clauses.append("state = ?")
                arguments += [state.rawValue]
            }
            arguments += [limit]
            let filter = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            return try Row.fetchAll(
                db, sql: "SELECT * FROM jobs \(filter) ORDER BY created_at DESC, rowid DESC LIMIT ?",
                arguments: arguments
            ).map(Self.job(from:))
        }
    }

    public func lease(features: [String], owner: String, now: Double, policies: [String: JobPolicy]) async throws
        -> Job?
    {
        guard !features.isEmpty else { return nil }
        return try await writer.write { db in
            // Two index range scans (due queued jobs; expired leases) of this worker's features, not a scan of every
            // job ever submitted.
            let marks = Array(repeating: "?", count: features.count).joined(separator: ", ")
            var arguments = StatementArguments([now])
            arguments += StatementArguments(features)
            let queued = try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT * FROM jobs WHERE state = 'queued' AND available_at <= ? AND feature IN (\(marks))
                        ORDER BY available_at LIMIT 16
                        """),
                arguments: arguments
            ).map(Self.job(from:))
            let expired = try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT * FROM jobs WHERE state = 'running' AND lease_expires_at <= ? AND feature IN (\(marks))
                        ORDER BY lease_expires_at LIMIT 16
                        """),
                arguments: arguments
            ).map(Self.job(from:))
            let candidates = expired + queued
            for candidate in candidates {
                let policy = policies[candidate.feature] ?? JobPolicy()
                guard let next = JobStateMachine.lease(candidate, owner: owner, now: now, policy: policy) else {
                    continue
                }
                try Self.update(next, db)
                if next.state == .running { return next }
            }
            return nil
        }
    }

    public func heartbeat(id: String, owner: String, now: Double, policy: JobPolicy) async throws -> Job? {
        try await transition(id) { JobStateMachine.heartbeat($0, owner: owner, now: now, policy: policy) }
    }

    public func progress(id: String, owner: String, rowsDone: Int, partial: [UInt8], now: Double) async throws
        -> Job?
    {
        try await transition(id) {
            JobStateMachine.progress($0, owner: owner, rowsDone: rowsDone, partial: partial, now: now)
        }
    }

    public func complete(id: String, result: [UInt8], now: Double) async throws -> JobStateMachine.Completion? {
        try await writer.write { db in
            guard let job = try Self.fetchJob(db, id) else { return nil }
            let completion = JobStateMachine.complete(job, result: result, now: now)
            if case .recorded(let done) = completion { try Self.update(done, db) }
            return completion
        }
    }

    public func fail(id: String, owner: String, error: String, retryable: Bool, now: Double, policy: JobPolicy)
        async throws -> Job?
    {
        try await transition(id) {
            JobStateMachine.fail($0, owner: owner, error: error, retryable: retryable, now: now, policy: policy)
        }
    }

    public func release(id: String, owner: String, now: Double) async throws -> Job? {
        try await transition(id) { JobStateMachine.release($0, owner: owner, now: now) }
    }

    public func expireOverdue(now: Double, limit: Int) async throws -> [Job] {
        try await writer.write { db in
            let overdue = try Row.fetchAll(
                db,
                sql: "SELECT * FROM jobs WHERE state = 'queued' AND deadline_at <= ? ORDER BY deadline_at LIMIT ?",
                arguments: [now, limit]
            ).map(Self.job(from:))
            var expired: [Job] = []
            for job in overdue {
                guard let next = JobStateMachine.expire(job, now: now) else { continue }
                try Self.update(next, db)
                expired.append(next)
            }
            return expired
        }
    }

    public func cancel(id: String, now: Double) async throws -> Job? {
        try await transition(id) { JobStateMachine.cancel($0, now: now) }
    }

    public func queueFigures(feature: String) async throws -> (counts: [Job.State: Int], oldestQueuedAt: Double?) {
        try await writer.read { db in
            var counts: [Job.State: Int] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT state, COUNT(*) AS n FROM jobs WHERE feature = ? GROUP BY state", arguments: [feature])
            {
                if let state = Job.State(rawValue: row["state"]) { counts[state] = row["n"] }
            }
            let oldest = try Double.fetchOne(
                db, sql: "SELECT MIN(created_at) FROM jobs WHERE feature = ? AND state = 'queued'", arguments: [feature]
            )
            return (counts, oldest)
        }
    }

    public func deleteFinishedJobs(finishedBefore: Double, limit: Int) async throws -> Int {
        try await writer.write { db in
            try db.execute(
                sql: """
                    DELETE FROM jobs WHERE id IN (
                        SELECT id FROM jobs
                        WHERE finished_at <= ? AND state IN ('succeeded', 'failed', 'canceled', 'expired')
                        ORDER BY finished_at LIMIT ?)
                    """,
                arguments: [finishedBefore, limit])
            return db.changesCount
        }
    }

    /// Reads a job, applies `change`, writes the result; `nil` when the job is missing or `change` refuses.
    private func transition(_ id: String, _ change: @escaping @Sendable (Job) -> Job?) async throws -> Job? {
        try await writer.write { db in
            guard let job = try Self.fetchJob(db, id), let next = change(job) else { return nil }
            try Self.update(next, db)
            return next
        }
    }

    // MARK: Rows

    private static func fetchJob(_ db: Database, _ id: String) throws -> Job? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM jobs WHERE id = ?"), arguments: [id]).map(job(from:))
    }

    private static func insert(_ job: Job, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO jobs (id, feature, state, input, rows_total, rows_done, partial, result, attempts,
                    max_attempts, last_error, available_at, lease_owner, lease_expires_at, deadline_at, idempotency_key,
                    request_hash, webhook_url, created_at, updated_at, started_at, finished_at, owner)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(
            arguments: [
                job.id, job.feature, job.state.rawValue, Data(job.input), job.rowsTotal, job.rowsDone,
                job.partial.map { Data($0) }, job.result.map { Data($0) }, job.attempts, job.maxAttempts,
                job.lastError, job.availableAt, job.leaseOwner, job.leaseExpiresAt, job.deadlineAt,
                job.idempotencyKey, job.requestHash, job.webhookURL, job.createdAt, job.updatedAt, job.startedAt,
                job.finishedAt, job.owner,
            ])
    }

    private static func update(_ job: Job, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                UPDATE jobs SET state = ?, rows_done = ?, partial = ?, result = ?, attempts = ?, last_error = ?,
                    available_at = ?, lease_owner = ?, lease_expires_at = ?, updated_at = ?, started_at = ?,
                    finished_at = ?
                WHERE id = ?
                """
        ).execute(
            arguments: [
                job.state.rawValue, job.rowsDone, job.partial.map { Data($0) }, job.result.map { Data($0) },
                job.attempts, job.lastError, job.availableAt, job.leaseOwner, job.leaseExpiresAt, job.updatedAt,
                job.startedAt, job.finishedAt, job.id,
            ])
    }

    private static func job(from row: Row) -> Job {
        var job = Job(
            id: row["id"], feature: row["feature"], input: [UInt8]((row["input"] as Data?) ?? Data()),
            rowsTotal: row["rows_total"], maxAttempts: row["max_attempts"], createdAt: row["created_at"],
            deadlineAt: row["deadline_at"], idempotencyKey: row["idempotency_key"], requestHash: row["request_hash"],
            webhookURL: row["webhook_url"], owner: row["owner"])
        job.state = Job.State(rawValue: row["state"]) ?? .failed
        job.rowsDone = row["rows_done"]
        job.partial = (row["partial"] as Data?).map { [UInt8]($0) }
        job.result = (row["result"] as Data?).map { [UInt8]($0) }
        job.attempts = row["attempts"]
        job.lastError = row["last_error"]
        job.availableAt = row["available_at"]
        job.leaseOwner = row["lease_owner"]
        job.leaseExpiresAt = row["lease_expires_at"]
        job.updatedAt = row["updated_at"]
        job.startedAt = row["started_at"]
        job.finishedAt = row["finished_at"]
        return job
    }
}
