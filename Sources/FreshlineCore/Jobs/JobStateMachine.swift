/// The lease and retry rules of async jobs, as pure functions from a job and a time to the job's next version.
/// Stores apply them inside a transaction (compare-and-set on the state they read), so every process agrees:
///
/// - **Lease.** A queued job whose `availableAt` has come, or a running job whose lease has expired (its worker
///   died or stalled), is leased to a worker for `visibilityTimeout`; each lease starts an attempt. A job past its
///   deadline expires instead; a reclaimed job that has used every attempt is dead-lettered.
/// - **Heartbeat.** Only the lease's owner extends it, and only while it still holds it.
/// - **Completion is idempotent.** Execution is at least once (a worker may crash after computing, and the job
///   runs again), but the first result recorded wins: a later completion — from the same worker or another that
///   leased the job after a lease expired — changes nothing and reports `.alreadyFinished`.
/// - **Failure.** A retryable failure requeues the job after `backoff(afterAttempt:)`, until `maxAttempts`; then,
///   or for a failure that cannot be retried (bad input), the job is dead-lettered with the error.
/// - **Cancellation** ends a queued or running job; a running worker learns it at its next heartbeat.
public enum JobStateMachine {
    /// Leases `job` to `owner`, or `nil` when it is not available now (see the rules above). A job past its
    /// deadline comes back `.expired` and an exhausted one `.failed`, for the store to record instead of leasing.
    public static func lease(_ job: Job, owner: String, now: Double, policy: JobPolicy) -> Job? {
        var job = job
        switch job.state {
        case .queued:
            guard job.availableAt <= now else { return nil }
        case .running:
            guard let expires = job.leaseExpiresAt, expires <= now else { return nil }
            job.lastError = "the worker's lease expired (\(job.leaseOwner ?? "unknown worker"))"
        default:
            return nil
        }
        if let deadline = job.deadlineAt, deadline <= now {
            return finish(job, .expired, now: now, error: "the deadline passed before the job finished")
        }
        if job.attempts >= job.maxAttempts {
            return finish(job, .failed, now: now, error: job.lastError ?? "every attempt failed")
        }
        job.state = .running
        job.attempts += 1
        job.leaseOwner = owner
        job.leaseExpiresAt = now + policy.visibilityTimeout.seconds
        job.startedAt = job.startedAt ?? now
        job.updatedAt = now
        return job
    }

    /// Extends the lease of `owner`; `nil` when it no longer holds the job (expired and re-leased, finished, or
    /// canceled — the worker should stop).
    public static func heartbeat(_ job: Job, owner: String, now: Double, policy: JobPolicy) -> Job? {
        guard job.state == .running, job.leaseOwner == owner, let expires = job.leaseExpiresAt, expires > now else {
            return nil
        }
        // Past its deadline a job is not extended: the lease runs out and the next lease records it expired.
        if let deadline = job.deadlineAt, deadline <= now { return nil }
        var job = job
        job.leaseExpiresAt = now + policy.visibilityTimeout.seconds
        job.updatedAt = now
        return job
    }

    /// Records rows finished so far by the lease holder (progress and partial results); `nil` when it no longer
    /// holds the job.
    public static func progress(_ job: Job, owner: String, rowsDone: Int, partial: [UInt8], now: Double) -> Job? {
        guard job.state == .running, job.leaseOwner == owner else { return nil }
        var job = job
        job.rowsDone = min(max(rowsDone, job.rowsDone), job.rowsTotal)
        job.partial = partial
        job.updatedAt = now
        return job
    }

    /// What a completion did.
    public enum Completion: Sendable, Equatable {
        /// This result is the job's result.
        case recorded(Job)
        /// The job already ended (a result was recorded first, or it was canceled, expired or dead-lettered).
        case alreadyFinished(Job)
    }

    /// Records `result` unless the job already ended: the first result wins, whoever computed it.
    public static func complete(_ job: Job, result: [UInt8], now: Double) -> Completion {
        guard !job.state.isFinal else { return .alreadyFinished(job) }
        var done = finish(job, .succeeded, now: now, error: nil)
        done.result = result
        done.rowsDone = done.rowsTotal
        done.partial = nil
        return .recorded(done)
    }

    /// Records a failed attempt by the lease holder: requeued after the backoff, or dead-lettered when it cannot
    /// be retried or has used every attempt. `nil` when `owner` no longer holds the job.
    public static func fail(
        _ job: Job, owner: String, error: String, retryable: Bool, now: Double, policy: JobPolicy
    ) -> Job? {
        guard job.state == .running, job.leaseOwner == owner else { return nil }
        if !retryable || job.attempts >= job.maxAttempts {
            return finish(job, .failed, now: now, error: error)
        }
        var job = job
        job.state = .queued
        job.lastError = error
        job.leaseOwner = nil
        job.leaseExpiresAt = nil
        job.availableAt = now + policy.backoff(afterAttempt: job.attempts).seconds
        job.updatedAt = now
        return job
    }

    /// Gives back a lease without counting it as a failure (graceful shutdown): the job is queued at once and the
    /// attempt is not charged. `nil` when `owner` no longer holds the job.
    public static func release(_ job: Job, owner: String, now: Double) -> Job? {
        guard job.state == .running, job.leaseOwner == owner else { return nil }
        var job = job
        job.state = .queued
        job.attempts = max(0, job.attempts - 1)
        job.leaseOwner = nil
        job.leaseExpiresAt = nil
        job.availableAt = now
        job.updatedAt = now
        return job
    }

    /// Expires a queued job whose deadline has passed (the sweeper's rule; a running job expires when its lease
    /// ends, at the next lease). `nil` when the job is not due to expire.
    public static func expire(_ job: Job, now: Double) -> Job? {
        guard job.state == .queued, let deadline = job.deadlineAt, deadline <= now else { return nil }
        return finish(job, .expired, now: now, error: "the deadline passed before the job finished")
    }

    /// Cancels a queued or running job; `nil` when it already ended.
    public static func cancel(_ job: Job, now: Double) -> Job? {
        guard !job.state.isFinal else { return nil }
        return finish(job, .canceled, now: now, error: "canceled by the caller")
    }

    private static func finish(_ job: Job, _ state: Job.State, now: Double, error: String?) -> Job {
        var job = job
        job.state = state
        if let error { job.lastError = error }
        job.leaseOwner = nil
        job.leaseExpiresAt = nil
        job.finishedAt = now
        job.updatedAt = now
        return job
    }
}
