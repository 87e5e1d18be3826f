public import FreshlineCore
internal import PostgresNIO

extension PostgresStore: JobStore {
    public func submit(_ job: Job, maxUnfinished: Int?) async throws -> (job: Job, created: Bool) {
        try await transaction { tx in
            if maxUnfinished != nil {
                // The quota is race-free across processes: a transaction-scoped advisory lock per owner serializes
                // one token's submissions (other tokens' are not held up), and under READ COMMITTED the count below
                // is taken after the lock, so it sees every job the previous holder committed. Without the lock, two
                // processes could each count limit − 1 and both insert.
                try await tx.lock("job-quota", job.owner)
            }
            if job.idempotencyKey != nil, let existing = try await Self.idempotent(job, tx) {
                // A replay of an existing job is answered whatever the quota.
                guard existing.requestHash == job.requestHash else {
                    throw JobStoreError.idempotencyConflict(jobID: existing.id)
                }
                return (existing, false)
            }
            if let limit = maxUnfinished {
                // Counting stops at the limit: the cost of a submission does not grow with a token's backlog.
                let unfinished =
                    try await tx.rows(
                        """
                        SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE owner = \(job.owner)
                            AND state IN ('queued', 'running') LIMIT \(limit)) AS unfinished
                        """
                    ).first?.decode(Int.self) ?? 0
                guard unfinished < limit else { throw JobStoreError.tooManyJobs(limit: limit) }
            }
            // Race-free across processes: of two submissions with one key (not serialized by the quota lock when
            // there is no quota), the second's insert waits for the first to commit, then does nothing and reads
            // the first's job.
            let inserted = try await tx.rows(
                """
                INSERT INTO jobs (id, feature, state, input, rows_total, rows_done, partial, result, attempts,
                    max_attempts, last_error, available_at, lease_owner, lease_expires_at, deadline_at, idempotency_key,
                    request_hash, webhook_url, created_at, updated_at, started_at, finished_at, owner)
                VALUES (\(job.id), \(job.feature), \(job.state.rawValue), \(ByteBuffer(bytes: job.input)),
                    \(job.rowsTotal), \(job.rowsDone), \(job.partial.map { ByteBuffer(bytes: $0) }),
                    \(job.result.map { ByteBuffer(bytes: $0) }), \(job.attempts), \(job.maxAttempts), \(job.lastError),
                    \(job.availableAt), \(job.leaseOwner), \(job.leaseExpiresAt), \(job.deadlineAt),
                    \(job.idempotencyKey), \(job.requestHash), \(job.webhookURL), \(job.createdAt), \(job.updatedAt),
                    \(job.startedAt), \(job.finishedAt), \(job.owner))
                ON CONFLICT (feature, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING id
                """)
            if !inserted.isEmpty {
                try await tx.notify(.jobsQueued(feature: job.feature))
                return (job, true)
            }
            guard let existing = try await Self.idempotent(job, tx) else {
                // Only the idempotency index is a conflict target, so a skipped insert means the key exists.
                throw PostgresStoreError.database(
                    operation: #function, message: "the job conflicting on its Idempotency-Key vanished")
            }
            guard existing.requestHash == job.requestHash else {
                throw JobStoreError.idempotencyConflict(jobID: existing.id)
            }
            return (existing, false)
        }
    }

    public func job(id: String) async throws -> Job? {
        try await rows("SELECT * FROM jobs WHERE id = \(id)").first.map(Self.job(from:))
    }

    public func jobs(feature: String?, state: Job.State?, limit: Int) async throws -> [Job] {
        // NULL parameters mean "any": one statement, no query chosen between interpolated literals.
        try await rows(
            """
            SELECT * FROM jobs WHERE (\(feature)::text IS NULL OR feature = \(feature))
            AND (\(state?.rawValue)::text IS NULL OR state = \(state?.rawValue))
            ORDER BY created_at DESC, seq DESC LIMIT \(limit)
            """
        ).map(Self.job(from:))
    }

    public func lease(features: [String], owner: String, now: Double, policies: [String: JobPolicy]) async throws
        -> Job?
    {
        guard !features.isEmpty else { return nil }
        return try await transaction { tx in
            // Expired leases first, then due queued jobs, each oldest first, one row at a time: a row another worker
            // is leasing right now is skipped (not waited for), and only the row taken stays locked, so concurrent
            // workers take different jobs and none finds the queue empty while it is not. A candidate the state
            // machine ends instead (past its deadline, out of attempts) is written and the next one tried.
            var tried: [String] = []
            for pass in 0..<2 {
                while tried.count < 64 {
                    let rows =
                        pass == 0
                        ? try await tx.rows(
                            """
                            SELECT * FROM jobs WHERE state = 'running' AND lease_expires_at <= \(now)
                            AND feature = ANY(\(features)) AND id <> ALL(\(tried))
                            ORDER BY lease_expires_at LIMIT 1 FOR UPDATE SKIP LOCKED
                            """)
                        : try await tx.rows(
                            """
                            SELECT * FROM jobs WHERE state = 'queued' AND available_at <= \(now)
                            AND feature = ANY(\(features)) AND id <> ALL(\(tried))
                            ORDER BY available_at LIMIT 1 FOR UPDATE SKIP LOCKED
                            """)
                    guard let candidate = try rows.first.map(Self.job(from:)) else { break }
                    tried.append(candidate.id)
                    let policy = policies[candidate.feature] ?? JobPolicy()
                    guard let next = JobStateMachine.lease(candidate, owner: owner, now: now, policy: policy) else {
                        continue
                    }
                    try await Self.update(next, tx)
                    if next.state == .running { return next }
                    if next.state.isFinal { try await tx.notify(.jobEnded(id: next.id)) }
                }
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
        try await transaction { tx in
            guard let job = try await Self.lockJob(id, tx) else { return nil }
            let completion = JobStateMachine.complete(job, result: result, now: now)
            if case .recorded(let done) = completion {
                try await Self.update(done, tx)
                try await tx.notify(.jobEnded(id: done.id))
            }
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
        try await transaction { tx in
            let overdue = try await tx.rows(
                """
                SELECT * FROM jobs WHERE state = 'queued' AND deadline_at <= \(now)
                ORDER BY deadline_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
                """
            ).map(Self.job(from:))
            var expired: [Job] = []
            for job in overdue {
                guard let next = JobStateMachine.expire(job, now: now) else { continue }
                try await Self.update(next, tx)
                try await tx.notify(.jobEnded(id: next.id))
                expired.append(next)
            }
            return expired
        }
    }

    public func cancel(id: String, now: Double) async throws -> Job? {
        try await transition(id) { JobStateMachine.cancel($0, now: now) }
    }

    public func queueFigures(feature: String) async throws -> (counts: [Job.State: Int], oldestQueuedAt: Double?) {
        try await transaction { tx in
            var counts: [Job.State: Int] = [:]
            for row in try await tx.rows(
                "SELECT state, COUNT(*) FROM jobs WHERE feature = \(feature) GROUP BY state")
            {
                let (state, count) = try row.decode((String, Int).self)
                if let state = Job.State(rawValue: state) { counts[state] = count }
            }
            let oldest = try await tx.rows(
                "SELECT MIN(created_at) FROM jobs WHERE feature = \(feature) AND state = 'queued'"
            ).first?.decode(Double?.self)
            return (counts, oldest ?? nil)
        }
    }

    public func deleteFinishedJobs(finishedBefore: Double, limit: Int) async throws -> Int {
        // One bounded statement; rows another sweeper is deleting right now are skipped, not waited for.
        try await rows(
            """
            WITH gone AS (
                DELETE FROM jobs WHERE id IN (
                    SELECT id FROM jobs
                    WHERE finished_at <= \(finishedBefore) AND state IN ('succeeded', 'failed', 'canceled', 'expired')
                    ORDER BY finished_at LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                RETURNING 1)
            SELECT COUNT(*) FROM gone
            """
        ).first?.decode(Int.self) ?? 0
    }

    /// Locks a job, applies `change`, writes the result; `nil` when the job is missing or `change` refuses. A job
    /// that goes back to the queue (released, or failed and retried) wakes listening workers; one that ends wakes
    /// whoever waits for it on any server.
    private func transition(_ id: String, _ change: @escaping @Sendable (Job) -> Job?, function: String = #function)
        async throws
        -> Job?
    {
        try await transaction(function) { tx in
            guard let job = try await Self.lockJob(id, tx), let next = change(job) else { return nil }
            try await Self.update(next, tx)
            if next.state == .queued { try await tx.notify(.jobsQueued(feature: next.feature)) }
            if next.state.isFinal && !job.state.isFinal { try await tx.notify(.jobEnded(id: next.id)) }
            return next
        }
    }

    // MARK: Rows

    /// The job holding `submitted`'s idempotency key for its feature.
    private static func idempotent(_ submitted: Job, _ tx: Transaction) async throws -> Job? {
        try await tx.rows(
            "SELECT * FROM jobs WHERE feature = \(submitted.feature) AND idempotency_key = \(submitted.idempotencyKey)"
        ).first.map(job(from:))
    }

    private static func lockJob(_ id: String, _ tx: Transaction) async throws -> Job? {
        try await tx.rows("SELECT * FROM jobs WHERE id = \(id) FOR UPDATE").first.map(job(from:))
    }

    private static func update(_ job: Job, _ tx: Transaction) async throws {
        try await tx.rows(
            """
            UPDATE jobs SET state = \(job.state.rawValue), rows_done = \(job.rowsDone),
                partial = \(job.partial.map { ByteBuffer(bytes: $0) }), result = \(job.result.map { ByteBuffer(bytes: $0) }),
                attempts = \(job.attempts), last_error = \(job.lastError), available_at = \(job.availableAt),
                lease_owner = \(job.leaseOwner), lease_expires_at = \(job.leaseExpiresAt), updated_at = \(job.updatedAt),
                started_at = \(job.startedAt), finished_at = \(job.finishedAt)
            WHERE id = \(job.id)
            """)
    }

    private static func job(from row: PostgresRow) throws -> Job {
        let column = row.makeRandomAccess()
        var job = Job(
            id: try column["id"].decode(String.self), feature: try column["feature"].decode(String.self),
            input: try column["input"].decode(ByteBuffer.self).bytes,
            rowsTotal: try column["rows_total"].decode(Int.self),
            maxAttempts: try column["max_attempts"].decode(Int.self),
            createdAt: try column["created_at"].decode(Double.self),
            deadlineAt: try column["deadline_at"].decode(Double?.self),
            idempotencyKey: try column["idempotency_key"].decode(String?.self),
            requestHash: try column["request_hash"].decode(String?.self),
            webhookURL: try column["webhook_url"].decode(String?.self), owner: try column["owner"].decode(String.self))
        job.state = Job.State(rawValue: try column["state"].decode(String.self)) ?? .failed
        job.rowsDone = try column["rows_done"].decode(Int.self)
        job.partial = try column["partial"].decode(ByteBuffer?.self)?.bytes
        job.result = try column["result"].decode(ByteBuffer?.self)?.bytes
        job.attempts = try column["attempts"].decode(Int.self)
        job.lastError = try column["last_error"].decode(String?.self)
        job.availableAt = try column["available_at"].decode(Double.self)
        job.leaseOwner = try column["lease_owner"].decode(String?.self)
        job.leaseExpiresAt = try column["lease_expires_at"].decode(Double?.self)
        job.updatedAt = try column["updated_at"].decode(Double.self)
        job.startedAt = try column["started_at"].decode(Double?.self)
        job.finishedAt = try column["finished_at"].decode(Double?.self)
        return job
    }
}
