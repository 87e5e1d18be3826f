/// An async job: one submission of a feature's inputs (one row or many), run by a worker under a lease, with
/// attempts, backoff, a deadline, progress and partial results, and exactly one recorded result.
public struct Job: Sendable, Equatable {
    /// The lifecycle of a job.
    public enum State: String, Sendable, CaseIterable {
        /// Waiting for a worker (also after a failed attempt, until `availableAt`).
        case queued
        /// Leased by a worker until `leaseExpiresAt`.
        case running
        /// Finished with a result.
        case succeeded
        /// Dead-lettered: every attempt failed, or the failure cannot be retried; `lastError` says why.
        case failed
        /// Canceled by its caller.
        case canceled
        /// Its deadline passed before it could finish.
        case expired

        /// Whether the job can still change (queued or running).
        public var isFinal: Bool { self != .queued && self != .running }
    }

    /// `job_` + random hex.
    public var id: String
    public var feature: String
    /// Who submitted it: the caller's token name (`""` on an open API). Quotas count unfinished jobs per owner.
    public var owner: String
    public var state: State
    /// The submitted body's rows (serialized JSON array of `{key, inputs}` objects).
    public var input: [UInt8]
    /// Rows in the job (progress denominator).
    public var rowsTotal: Int
    /// Rows finished so far (progress numerator); their answers are in `partial`.
    public var rowsDone: Int
    /// Answers of the rows finished so far, in row order (serialized JSON array), while running.
    public var partial: [UInt8]?
    /// The result (serialized JSON), once succeeded.
    public var result: [UInt8]?
    /// Attempts started so far.
    public var attempts: Int
    /// The most attempts before the job is dead-lettered.
    public var maxAttempts: Int
    /// Why the last attempt failed.
    public var lastError: String?
    /// Not leased before this time (backoff after a failed attempt); seconds since 1970.
    public var availableAt: Double
    /// The worker holding the lease (`host:pid/worker`), while running.
    public var leaseOwner: String?
    /// The lease's end: a worker that has not heart-beaten by then loses the job to another.
    public var leaseExpiresAt: Double?
    /// Past this time the job expires instead of running.
    public var deadlineAt: Double?
    /// The caller's `Idempotency-Key`, and a hash of the body it came with.
    public var idempotencyKey: String?
    public var requestHash: String?
    /// Where to deliver the result (`POST` with a signed body), if anywhere.
    public var webhookURL: String?
    public var createdAt: Double
    public var updatedAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?

    /// Makes a queued job.
    public init(
        id: String, feature: String, input: [UInt8], rowsTotal: Int, maxAttempts: Int, createdAt: Double,
        deadlineAt: Double? = nil, idempotencyKey: String? = nil, requestHash: String? = nil,
        webhookURL: String? = nil, owner: String = ""
    ) {
        self.id = id
        self.feature = feature
        self.owner = owner
        state = .queued
        self.input = input
        self.rowsTotal = rowsTotal
        rowsDone = 0
        partial = nil
        result = nil
        attempts = 0
        self.maxAttempts = maxAttempts
        lastError = nil
        availableAt = createdAt
        leaseOwner = nil
        leaseExpiresAt = nil
        self.deadlineAt = deadlineAt
        self.idempotencyKey = idempotencyKey
        self.requestHash = requestHash
        self.webhookURL = webhookURL
        self.createdAt = createdAt
        updatedAt = createdAt
        startedAt = nil
        finishedAt = nil
    }
}

/// How a feature's jobs are retried and leased.
public struct JobPolicy: Sendable, Equatable {
    /// The most attempts before a job is dead-lettered (default 5).
    public var maxAttempts: Int
    /// The first retry's delay; each further retry doubles it (default 1 s).
    public var backoffBase: Duration
    /// The longest retry delay (default 5 min).
    public var backoffMax: Duration
    /// How long a lease lasts without a heartbeat (default 30 s).
    public var visibilityTimeout: Duration
    /// How long a job may take from submission before it expires (default 1 h).
    public var deadline: Duration

    /// A policy with the documented defaults.
    public init(
        maxAttempts: Int = 5, backoffBase: Duration = .seconds(1), backoffMax: Duration = .seconds(300),
        visibilityTimeout: Duration = .seconds(30), deadline: Duration = .seconds(3600)
    ) {
        self.maxAttempts = maxAttempts
        self.backoffBase = backoffBase
        self.backoffMax = backoffMax
        self.visibilityTimeout = visibilityTimeout
        self.deadline = deadline
    }

    /// The delay before retry number `attempt` (1 after the first failure): base · 2^(attempt−1), capped.
    public func backoff(afterAttempt attempt: Int) -> Duration {
        let exponent = min(max(0, attempt - 1), 30)
        let delay = backoffBase * (1 << exponent)
        return min(delay, backoffMax)
    }
}
