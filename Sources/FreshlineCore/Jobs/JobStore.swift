/// Why the job store refused a submission: a code with what it concerns; new codes can be added without breaking
/// callers.
public struct JobStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let description: String
        private init(_ name: String) { description = name }
        /// The `Idempotency-Key` was used before with a different body (Stripe's rule): `jobID` is the first job.
        public static let idempotencyConflict = Code("idempotency_conflict")
        /// The job's owner already has `limit` unfinished (queued or running) jobs.
        public static let tooManyJobs = Code("too_many_jobs")
    }

    public var code: Code
    /// The existing job (`idempotencyConflict`).
    public var jobID: String?
    /// The owner's limit of unfinished jobs (`tooManyJobs`).
    public var limit: Int?
    public let description: String

    public init(_ code: Code, _ description: String, jobID: String? = nil, limit: Int? = nil) {
        self.code = code
        self.description = description
        self.jobID = jobID
        self.limit = limit
    }

    public static func idempotencyConflict(jobID: String) -> JobStoreError {
        JobStoreError(
            .idempotencyConflict, "this Idempotency-Key was used with a different request (job \(jobID))",
            jobID: jobID)
    }
    public static func tooManyJobs(limit: Int) -> JobStoreError {
        JobStoreError(
            .tooManyJobs,
            "this token already has \(limit) unfinished jobs (the limit); wait for some to finish or cancel them",
            limit: limit)
    }
}

/// Async jobs: a durable queue with leases, on SQLite and on PostgreSQL (where the lease query is
/// `FOR UPDATE SKIP LOCKED`), with the same behaviour tests. Every method is one transaction that applies `JobStateMachine` to the
/// state it read, so concurrent workers and processes agree on who holds a job and which result counts.
public protocol JobStore: Sendable {
    /// Inserts a queued job. With an idempotency key already used for the same feature: the same request hash
    /// returns the existing job (`created: false`), whatever the quota; a different one throws
    /// `JobStoreError.idempotencyConflict`. With `maxUnfinished`, a new job whose owner already has that many queued
    /// or running jobs is refused with `JobStoreError.tooManyJobs`; the count and the insert are one atomic step
    /// (also across processes sharing the store), so concurrent submissions never overshoot the limit.
    func submit(_ job: Job, maxUnfinished: Int?) async throws -> (job: Job, created: Bool)
    /// One job.
    func job(id: String) async throws -> Job?
    /// Jobs newest first, optionally of one feature and/or state.
    func jobs(feature: String?, state: Job.State?, limit: Int) async throws -> [Job]
    /// Leases the oldest available job of `features` (queued and due, or running with an expired lease). Jobs
    /// found past their deadline or out of attempts are recorded as expired or failed on the way.
    func lease(features: [String], owner: String, now: Double, policies: [String: JobPolicy]) async throws -> Job?
    /// Extends a lease; `nil` when `owner` lost the job (the worker should stop).
    func heartbeat(id: String, owner: String, now: Double, policy: JobPolicy) async throws -> Job?
    /// Records progress and partial results; `nil` when `owner` lost the job.
    func progress(id: String, owner: String, rowsDone: Int, partial: [UInt8], now: Double) async throws -> Job?
    /// Records the result unless the job already ended (first result wins).
    func complete(id: String, result: [UInt8], now: Double) async throws -> JobStateMachine.Completion?
    /// Records a failed attempt (requeued with backoff, or dead-lettered); `nil` when `owner` lost the job.
    func fail(id: String, owner: String, error: String, retryable: Bool, now: Double, policy: JobPolicy)
        async throws -> Job?
    /// Gives a lease back without charging the attempt (graceful shutdown).
    func release(id: String, owner: String, now: Double) async throws -> Job?
    /// Expires queued jobs past their deadline (at most `limit`) and returns them.
    func expireOverdue(now: Double, limit: Int) async throws -> [Job]
    /// Cancels a queued or running job; `nil` when it already ended or does not exist.
    func cancel(id: String, now: Double) async throws -> Job?
    /// Jobs per state, and the submission time of the oldest queued job, for one feature.
    func queueFigures(feature: String) async throws -> (counts: [Job.State: Int], oldestQueuedAt: Double?)
    /// Deletes up to `limit` finished jobs (succeeded, failed, canceled, expired) that finished at or before
    /// `finishedBefore`, with their inputs and results, oldest first; returns how many it deleted. Retention: the
    /// sweeper calls it in bounded batches, so a large backlog never holds a long lock.
    func deleteFinishedJobs(finishedBefore: Double, limit: Int) async throws -> Int
}

extension JobStore {
    /// Inserts a queued job with no quota (see `submit(_:maxUnfinished:)`).
    public func submit(_ job: Job) async throws -> (job: Job, created: Bool) {
        try await submit(job, maxUnfinished: nil)
    }
}
