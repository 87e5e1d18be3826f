import Testing

@testable import FreshlineCore

// MARK: - Fixtures

/// A fixed start time (seconds since 1970). Whole seconds added to it stay exact in a `Double`.
private let t0 = 1_800_000_000.0

private let workerA = "host-a:101/0"
private let workerB = "host-b:202/1"
private let workerC = "host-c:303/2"

/// Base 1 s, cap 300 s, lease 30 s.
private let policy = JobPolicy(
    maxAttempts: 3, backoffBase: .seconds(1), backoffMax: .seconds(300), visibilityTimeout: .seconds(30),
    deadline: .seconds(3600)
)

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A queued job created at `t0`.
private func makeJob(maxAttempts: Int = 3, rowsTotal: Int = 10, deadlineAt: Double? = nil) -> Job {
    Job(
        id: "job_00ff", feature: "churn_score", input: bytes("[]"), rowsTotal: rowsTotal, maxAttempts: maxAttempts,
        createdAt: t0, deadlineAt: deadlineAt
    )
}

/// A job leased to `owner` at `now` (its first attempt, unless `job` says otherwise).
private func leased(
    _ job: Job = makeJob(), owner: String = workerA, now: Double = t0,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) throws -> Job {
    try #require(JobStateMachine.lease(job, owner: owner, now: now, policy: policy), sourceLocation: sourceLocation)
}

/// The job of a `.recorded` completion, else nil.
private func recordedJob(_ completion: JobStateMachine.Completion) -> Job? {
    if case .recorded(let job) = completion { job } else { nil }
}

/// The job of an `.alreadyFinished` completion, else nil.
private func alreadyFinishedJob(_ completion: JobStateMachine.Completion) -> Job? {
    if case .alreadyFinished(let job) = completion { job } else { nil }
}

// MARK: - Tests

@Suite struct JobStateMachineTests {
    // MARK: Lease

    @Test func leasingAQueuedJobStartsAnAttempt() throws {
        let job = try leased(now: t0 + 5)
        #expect(job.state == .running)
        #expect(job.attempts == 1)
        #expect(job.leaseOwner == workerA)
        #expect(job.leaseExpiresAt == t0 + 5 + 30)
        #expect(job.startedAt == t0 + 5)
        #expect(job.updatedAt == t0 + 5)
        #expect(job.finishedAt == nil)
        #expect(job.lastError == nil)
    }

    @Test func startedAtIsSetOnlyByTheFirstLease() throws {
        let first = try leased(now: t0 + 1)
        let failed = try #require(
            JobStateMachine.fail(first, owner: workerA, error: "boom", retryable: true, now: t0 + 2, policy: policy)
        )
        let second = try leased(failed, owner: workerB, now: t0 + 10)
        #expect(second.attempts == 2)
        #expect(second.startedAt == t0 + 1)
    }

    @Test func aQueuedJobIsNotLeasableBeforeAvailableAt() throws {
        #expect(JobStateMachine.lease(makeJob(), owner: workerA, now: t0 - 1, policy: policy) == nil)

        let running = try leased(now: t0)
        let queued = try #require(
            JobStateMachine.fail(
                running, owner: workerA, error: "timeout", retryable: true, now: t0 + 3, policy: policy
            )
        )
        #expect(queued.availableAt == t0 + 4)
        #expect(JobStateMachine.lease(queued, owner: workerB, now: t0 + 3.5, policy: policy) == nil)
        let again = try leased(queued, owner: workerB, now: t0 + 4)
        #expect(again.leaseOwner == workerB)
        #expect(again.attempts == 2)
    }

    @Test func aRunningJobWithALiveLeaseIsNotLeasable() throws {
        let job = try leased(now: t0)
        #expect(JobStateMachine.lease(job, owner: workerB, now: t0, policy: policy) == nil)
        #expect(JobStateMachine.lease(job, owner: workerB, now: t0 + 29.9, policy: policy) == nil)
        #expect(JobStateMachine.lease(job, owner: workerA, now: t0 + 10, policy: policy) == nil)
    }

    @Test func aRunningJobWithAnExpiredLeaseIsLeasedToAnotherOwner() throws {
        let first = try leased(now: t0 + 1)
        let second = try leased(first, owner: workerB, now: t0 + 31)
        #expect(second.state == .running)
        #expect(second.attempts == 2)
        #expect(second.leaseOwner == workerB)
        #expect(second.leaseExpiresAt == t0 + 31 + 30)
        #expect(second.startedAt == t0 + 1)
        let lastError = try #require(second.lastError)
        #expect(lastError.contains("lease expired"))
        #expect(lastError.contains(workerA))

        let later = try leased(first, owner: workerC, now: t0 + 100)
        #expect(later.leaseOwner == workerC)
        #expect(later.leaseExpiresAt == t0 + 130)
    }

    @Test func leasingPastTheDeadlineExpiresTheJob() throws {
        let queued = makeJob(deadlineAt: t0 + 60)
        let expired = try leased(queued, now: t0 + 60)
        #expect(expired.state == .expired)
        #expect(expired.finishedAt == t0 + 60)
        #expect(expired.attempts == 0)
        #expect(expired.leaseOwner == nil)
        #expect(expired.leaseExpiresAt == nil)
        #expect(expired.lastError?.contains("deadline") == true)

        // A running job whose lease ran out after the deadline expires instead of being reclaimed.
        let running = try leased(queued, now: t0 + 50)
        let reclaimed = try leased(running, owner: workerB, now: t0 + 80)
        #expect(reclaimed.state == .expired)
        #expect(reclaimed.finishedAt == t0 + 80)
        #expect(reclaimed.attempts == 1)
        #expect(reclaimed.leaseOwner == nil)
        #expect(reclaimed.lastError?.contains("deadline") == true)
        #expect(JobStateMachine.lease(reclaimed, owner: workerC, now: t0 + 90, policy: policy) == nil)
    }

    @Test func reclaimingAJobThatUsedEveryAttemptDeadLettersIt() throws {
        let first = try leased(makeJob(maxAttempts: 2), owner: workerA, now: t0)
        let second = try leased(first, owner: workerB, now: t0 + 30)
        #expect(second.attempts == 2)
        let dead = try leased(second, owner: workerC, now: t0 + 60)
        #expect(dead.state == .failed)
        #expect(dead.attempts == 2)
        #expect(dead.finishedAt == t0 + 60)
        #expect(dead.leaseOwner == nil)
        #expect(dead.leaseExpiresAt == nil)
        let lastError = try #require(dead.lastError)
        #expect(lastError.contains("lease expired"))
        #expect(lastError.contains(workerB))
        #expect(JobStateMachine.lease(dead, owner: workerC, now: t0 + 120, policy: policy) == nil)
    }

    // MARK: Heartbeat

    @Test func aHeartbeatByTheOwnerExtendsTheLease() throws {
        let job = try leased(now: t0)
        let beaten = try #require(JobStateMachine.heartbeat(job, owner: workerA, now: t0 + 20, policy: policy))
        #expect(beaten.leaseExpiresAt == t0 + 50)
        #expect(beaten.updatedAt == t0 + 20)
        #expect(beaten.state == .running)
        #expect(beaten.attempts == 1)
        #expect(JobStateMachine.lease(beaten, owner: workerB, now: t0 + 40, policy: policy) == nil)
    }

    @Test func aHeartbeatByAnotherOwnerOrAfterExpiryIsRefused() throws {
        let job = try leased(now: t0)
        #expect(JobStateMachine.heartbeat(job, owner: workerB, now: t0 + 1, policy: policy) == nil)
        #expect(JobStateMachine.heartbeat(job, owner: workerA, now: t0 + 30, policy: policy) == nil)
        #expect(JobStateMachine.heartbeat(job, owner: workerA, now: t0 + 45, policy: policy) == nil)

        let reclaimed = try leased(job, owner: workerB, now: t0 + 45)
        #expect(JobStateMachine.heartbeat(reclaimed, owner: workerA, now: t0 + 46, policy: policy) == nil)
        #expect(JobStateMachine.heartbeat(makeJob(), owner: workerA, now: t0, policy: policy) == nil)
        let canceled = try #require(JobStateMachine.cancel(job, now: t0 + 1))
        #expect(JobStateMachine.heartbeat(canceled, owner: workerA, now: t0 + 2, policy: policy) == nil)
    }

    // MARK: Progress

    @Test func progressIsRecordedOnlyForTheOwner() throws {
        let job = try leased(now: t0)
        #expect(
            JobStateMachine.progress(job, owner: workerB, rowsDone: 3, partial: bytes("[1,2,3]"), now: t0 + 1) == nil
        )
        #expect(
            JobStateMachine.progress(makeJob(), owner: workerA, rowsDone: 3, partial: bytes("[1]"), now: t0) == nil
        )
        let moved = try #require(
            JobStateMachine.progress(job, owner: workerA, rowsDone: 3, partial: bytes("[1,2,3]"), now: t0 + 1)
        )
        #expect(moved.rowsDone == 3)
        #expect(moved.partial == bytes("[1,2,3]"))
        #expect(moved.updatedAt == t0 + 1)
    }

    @Test func progressNeverDecreasesAndIsCappedAtRowsTotal() throws {
        let job = try leased(now: t0)
        let four = try #require(
            JobStateMachine.progress(job, owner: workerA, rowsDone: 4, partial: bytes("[1,2,3,4]"), now: t0 + 1)
        )
        let back = try #require(
            JobStateMachine.progress(four, owner: workerA, rowsDone: 2, partial: bytes("[1,2]"), now: t0 + 2)
        )
        #expect(back.rowsDone == 4)
        let negative = try #require(
            JobStateMachine.progress(back, owner: workerA, rowsDone: -7, partial: bytes("[]"), now: t0 + 3)
        )
        #expect(negative.rowsDone == 4)
        let over = try #require(
            JobStateMachine.progress(negative, owner: workerA, rowsDone: 50, partial: bytes("[0]"), now: t0 + 4)
        )
        #expect(over.rowsDone == 10)
    }

    // MARK: Completion

    @Test func theFirstCompletionIsRecorded() throws {
        let job = try leased(now: t0)
        let partial = try #require(
            JobStateMachine.progress(job, owner: workerA, rowsDone: 4, partial: bytes("[1,2,3,4]"), now: t0 + 1)
        )
        let done = try #require(recordedJob(JobStateMachine.complete(partial, result: bytes("{\"a\":1}"), now: t0 + 2)))
        #expect(done.state == .succeeded)
        #expect(done.result == bytes("{\"a\":1}"))
        #expect(done.rowsDone == 10)
        #expect(done.partial == nil)
        #expect(done.finishedAt == t0 + 2)
        #expect(done.updatedAt == t0 + 2)
        #expect(done.leaseOwner == nil)
        #expect(done.leaseExpiresAt == nil)
        #expect(done.attempts == 1)
    }

    @Test func aSecondCompletionChangesNothing() throws {
        let job = try leased(now: t0)
        let done = try #require(recordedJob(JobStateMachine.complete(job, result: bytes("first"), now: t0 + 2)))
        let again = JobStateMachine.complete(done, result: bytes("second"), now: t0 + 3)
        #expect(again == .alreadyFinished(done))
        #expect(alreadyFinishedJob(again)?.result == bytes("first"))
        let same = JobStateMachine.complete(done, result: bytes("first"), now: t0 + 4)
        #expect(same == .alreadyFinished(done))
    }

    @Test func aWorkerWhoseLeaseWasReclaimedStillRecordsTheFirstResult() throws {
        let first = try leased(now: t0)
        let second = try leased(first, owner: workerB, now: t0 + 40)
        #expect(second.leaseOwner == workerB)

        // Worker A computed the answer after all; nobody has recorded one yet, so it wins.
        let byA = try #require(recordedJob(JobStateMachine.complete(second, result: bytes("from-a"), now: t0 + 41)))
        #expect(byA.state == .succeeded)
        #expect(byA.result == bytes("from-a"))
        #expect(byA.leaseOwner == nil)

        // Worker B finishes too: its result is dropped.
        let byB = JobStateMachine.complete(byA, result: bytes("from-b"), now: t0 + 42)
        #expect(byB == .alreadyFinished(byA))
        #expect(JobStateMachine.heartbeat(byA, owner: workerB, now: t0 + 42, policy: policy) == nil)
    }

    @Test func completingACanceledJobChangesNothing() throws {
        let job = try leased(now: t0)
        let canceled = try #require(JobStateMachine.cancel(job, now: t0 + 1))
        let completion = JobStateMachine.complete(canceled, result: bytes("late"), now: t0 + 2)
        #expect(completion == .alreadyFinished(canceled))
        #expect(alreadyFinishedJob(completion)?.state == .canceled)
        #expect(alreadyFinishedJob(completion)?.result == nil)
    }

    // MARK: Failure

    @Test func aRetryableFailureRequeuesAfterAnExponentialBackoff() throws {
        var job = makeJob(maxAttempts: 5)
        var now = t0
        for (attempt, delay) in [(1, 1.0), (2, 2.0), (3, 4.0)] {
            job = try leased(job, owner: workerA, now: now)
            #expect(job.attempts == attempt)
            let failedAt = now + 3
            job = try #require(
                JobStateMachine.fail(
                    job, owner: workerA, error: "attempt \(attempt) failed", retryable: true, now: failedAt,
                    policy: policy
                )
            )
            #expect(job.state == .queued)
            #expect(job.attempts == attempt)
            #expect(job.availableAt == failedAt + delay)
            #expect(job.leaseOwner == nil)
            #expect(job.leaseExpiresAt == nil)
            #expect(job.lastError == "attempt \(attempt) failed")
            #expect(job.updatedAt == failedAt)
            #expect(job.finishedAt == nil)
            now = job.availableAt
        }
    }

    @Test func aFailureOfTheLastAttemptDeadLettersTheJob() throws {
        var job = makeJob(maxAttempts: 2)
        job = try leased(job, now: t0)
        job = try #require(
            JobStateMachine.fail(job, owner: workerA, error: "first", retryable: true, now: t0 + 1, policy: policy)
        )
        job = try leased(job, owner: workerB, now: t0 + 2)
        #expect(job.attempts == 2)
        let dead = try #require(
            JobStateMachine.fail(job, owner: workerB, error: "second", retryable: true, now: t0 + 3, policy: policy)
        )
        #expect(dead.state == .failed)
        #expect(dead.lastError == "second")
        #expect(dead.finishedAt == t0 + 3)
        #expect(dead.leaseOwner == nil)
        #expect(dead.leaseExpiresAt == nil)
        #expect(JobStateMachine.lease(dead, owner: workerC, now: t0 + 100, policy: policy) == nil)
    }

    @Test func aNonRetryableFailureDeadLettersAtOnce() throws {
        let job = try leased(makeJob(maxAttempts: 5), now: t0)
        let dead = try #require(
            JobStateMachine.fail(job, owner: workerA, error: "bad input", retryable: false, now: t0 + 1, policy: policy)
        )
        #expect(dead.state == .failed)
        #expect(dead.attempts == 1)
        #expect(dead.lastError == "bad input")
        #expect(dead.finishedAt == t0 + 1)
        #expect(dead.leaseOwner == nil)
    }

    @Test func aFailureReportedByANonOwnerIsRefused() throws {
        let job = try leased(now: t0)
        #expect(
            JobStateMachine.fail(job, owner: workerB, error: "x", retryable: true, now: t0 + 1, policy: policy) == nil
        )
        #expect(
            JobStateMachine.fail(makeJob(), owner: workerA, error: "x", retryable: true, now: t0, policy: policy)
                == nil
        )
        let reclaimed = try leased(job, owner: workerB, now: t0 + 30)
        #expect(
            JobStateMachine.fail(reclaimed, owner: workerA, error: "x", retryable: false, now: t0 + 31, policy: policy)
                == nil
        )
    }

    // MARK: Release and cancellation

    @Test func releasingGivesTheAttemptBackAndQueuesAtOnce() throws {
        let job = try leased(now: t0)
        let released = try #require(JobStateMachine.release(job, owner: workerA, now: t0 + 5))
        #expect(released.state == .queued)
        #expect(released.attempts == 0)
        #expect(released.availableAt == t0 + 5)
        #expect(released.leaseOwner == nil)
        #expect(released.leaseExpiresAt == nil)
        #expect(released.finishedAt == nil)
        #expect(JobStateMachine.release(job, owner: workerB, now: t0 + 5) == nil)
        #expect(JobStateMachine.release(released, owner: workerA, now: t0 + 5) == nil)

        let again = try leased(released, owner: workerB, now: t0 + 5)
        #expect(again.attempts == 1)
        #expect(again.leaseOwner == workerB)
    }

    @Test func cancelingEndsAQueuedOrRunningJob() throws {
        let queued = try #require(JobStateMachine.cancel(makeJob(), now: t0 + 1))
        #expect(queued.state == .canceled)
        #expect(queued.finishedAt == t0 + 1)

        let running = try #require(JobStateMachine.cancel(try leased(now: t0), now: t0 + 2))
        #expect(running.state == .canceled)
        #expect(running.finishedAt == t0 + 2)
        #expect(running.leaseOwner == nil)
        #expect(running.leaseExpiresAt == nil)
        #expect(JobStateMachine.heartbeat(running, owner: workerA, now: t0 + 3, policy: policy) == nil)
    }

    @Test func cancelingAFinishedJobIsRefused() throws {
        let job = try leased(now: t0)
        let succeeded = try #require(recordedJob(JobStateMachine.complete(job, result: bytes("ok"), now: t0 + 1)))
        let failed = try #require(
            JobStateMachine.fail(job, owner: workerA, error: "bad", retryable: false, now: t0 + 1, policy: policy)
        )
        let canceled = try #require(JobStateMachine.cancel(job, now: t0 + 1))
        let expired = try leased(makeJob(deadlineAt: t0), now: t0)
        #expect(expired.state == .expired)
        for finished in [succeeded, failed, canceled, expired] {
            #expect(JobStateMachine.cancel(finished, now: t0 + 2) == nil, "state \(finished.state)")
        }
    }

    // MARK: Backoff

    @Test func backoffDoublesFromTheBase() {
        #expect(policy.backoff(afterAttempt: 1) == .seconds(1))
        #expect(policy.backoff(afterAttempt: 2) == .seconds(2))
        #expect(policy.backoff(afterAttempt: 3) == .seconds(4))
        #expect(policy.backoff(afterAttempt: 9) == .seconds(256))
        #expect(policy.backoff(afterAttempt: 0) == .seconds(1))
        #expect(policy.backoff(afterAttempt: -4) == .seconds(1))
        let halfSecond = JobPolicy(backoffBase: .milliseconds(500))
        #expect(halfSecond.backoff(afterAttempt: 3) == .seconds(2))
    }

    @Test func backoffIsCappedAndNeverOverflows() {
        #expect(policy.backoff(afterAttempt: 10) == .seconds(300))
        #expect(policy.backoff(afterAttempt: 64) == .seconds(300))
        #expect(policy.backoff(afterAttempt: 1000) == .seconds(300))
        #expect(policy.backoff(afterAttempt: Int.max) == .seconds(300))

        // With a cap nothing reaches, the delay still grows monotonically and stays finite and positive.
        let uncapped = JobPolicy(backoffBase: .seconds(1), backoffMax: .seconds(Int64.max))
        var previous = Duration.zero
        for attempt in [1, 2, 10, 30, 31, 32, 63, 64, 65, 100, 1000, Int.max] {
            let delay = uncapped.backoff(afterAttempt: attempt)
            #expect(delay > .zero, "attempt \(attempt)")
            #expect(delay >= previous, "attempt \(attempt)")
            #expect(delay <= uncapped.backoffMax, "attempt \(attempt)")
            previous = delay
        }
    }

    // MARK: Random sequences

    /// Many random sequences of operations on one job, by 2–3 workers, with an advancing clock; the invariants
    /// are checked after every step.
    @Test func randomOperationSequencesKeepTheInvariants() {
        let owners = [workerA, workerB, workerC]
        let clockSteps: [Double] = [0, 0.5, 1, 2, 5, 15, 29, 30, 31, 45, 120]
        var finalStatesSeen: Set<Job.State> = []
        var reclaims = 0
        var retries = 0
        var releases = 0

        seeds: for seed in UInt64(1)...400 {
            var rng = SeededGenerator(seed: seed)
            let ownerCount = Int.random(in: 2...3, using: &rng)
            let rowsTotal = Int.random(in: 0...20, using: &rng)
            let deadlineAt: Double? =
                Int.random(in: 0..<3, using: &rng) == 0 ? t0 + Double(Int.random(in: 30...900, using: &rng)) : nil
            let maxAttempts = Int.random(in: 1...4, using: &rng)
            var job = makeJob(maxAttempts: maxAttempts, rowsTotal: rowsTotal, deadlineAt: deadlineAt)
            var now = t0
            var firstResult: [UInt8]?
            var recordedCount = 0

            for step in 0..<120 {
                now += clockSteps[Int.random(in: 0..<clockSteps.count, using: &rng)]
                let owner = owners[Int.random(in: 0..<ownerCount, using: &rng)]
                let before = job
                let operation: String
                var problem: String?

                switch Int.random(in: 0..<100, using: &rng) {
                case 0..<30:
                    operation = "lease"
                    if let next = JobStateMachine.lease(job, owner: owner, now: now, policy: policy) {
                        job = next
                        if before.state == .running { reclaims += 1 }
                        if next.state == .running {
                            if next.attempts != before.attempts + 1 { problem = "lease did not count an attempt" }
                            if next.leaseOwner != owner || next.leaseExpiresAt != now + 30 {
                                problem = "lease has the wrong owner or expiry"
                            }
                        }
                    }
                case 30..<45:
                    operation = "heartbeat"
                    if let next = JobStateMachine.heartbeat(job, owner: owner, now: now, policy: policy) {
                        job = next
                        if before.leaseOwner != owner { problem = "a non-owner's heartbeat was accepted" }
                    }
                case 45..<60:
                    operation = "progress"
                    let rows = Int.random(in: -3...(rowsTotal + 5), using: &rng)
                    let partial = bytes("rows \(rows)")
                    let next = JobStateMachine.progress(job, owner: owner, rowsDone: rows, partial: partial, now: now)
                    if let next {
                        job = next
                        if before.leaseOwner != owner { problem = "a non-owner's progress was accepted" }
                    }
                case 60..<72:
                    operation = "complete"
                    switch JobStateMachine.complete(job, result: bytes("\(owner) at step \(step)"), now: now) {
                    case .recorded(let next):
                        job = next
                        recordedCount += 1
                        if before.state.isFinal { problem = "a finished job recorded a result" }
                    case .alreadyFinished(let same):
                        if same != before { problem = "alreadyFinished returned a different job" }
                        if !before.state.isFinal { problem = "an unfinished job reported alreadyFinished" }
                    }
                case 72..<87:
                    operation = "fail"
                    let retryable = Int.random(in: 0..<5, using: &rng) != 0
                    let next = JobStateMachine.fail(
                        job, owner: owner, error: "error at step \(step)", retryable: retryable, now: now,
                        policy: policy
                    )
                    if let next {
                        job = next
                        if before.leaseOwner != owner { problem = "a non-owner's failure was accepted" }
                        if next.state == .queued {
                            retries += 1
                            if !retryable { problem = "a non-retryable failure was requeued" }
                            if next.availableAt != now + policy.backoff(afterAttempt: next.attempts).seconds {
                                problem = "the backoff is wrong"
                            }
                        }
                    }
                case 87..<97:
                    operation = "release"
                    if let next = JobStateMachine.release(job, owner: owner, now: now) {
                        job = next
                        releases += 1
                        if next.attempts != before.attempts - 1 { problem = "release did not give the attempt back" }
                    }
                default:
                    operation = "cancel"
                    if let next = JobStateMachine.cancel(job, now: now) {
                        job = next
                        if before.state.isFinal { problem = "a finished job was canceled" }
                    }
                }

                if recordedCount > 1 { problem = "\(recordedCount) results were recorded" }
                problem = problem ?? invariantViolation(before: before, after: job, now: now, firstResult: firstResult)
                if let problem {
                    Issue.record("seed \(seed), step \(step), \(operation) by \(owner): \(problem)\n\(before)\n\(job)")
                    break seeds
                }
                firstResult = firstResult ?? job.result
                if job.state.isFinal { finalStatesSeen.insert(job.state) }
            }
        }

        // The simulation reached every ending and every path back to the queue.
        #expect(finalStatesSeen == [.succeeded, .failed, .canceled, .expired])
        #expect(reclaims > 0)
        #expect(retries > 0)
        #expect(releases > 0)
    }
}

// MARK: - Simulation helpers

/// What is wrong with `after`, the job after one operation on `before` at `now`, or nil if nothing is.
private func invariantViolation(before: Job, after: Job, now: Double, firstResult: [UInt8]?) -> String? {
    if let firstResult, after.result != firstResult { return "the recorded result changed" }
    if before.state.isFinal && after != before { return "a finished job changed" }
    if (after.result != nil) != (after.state == .succeeded) { return "result and state disagree" }
    switch after.state {
    case .running:
        if after.leaseOwner == nil || after.leaseExpiresAt == nil { return "running without a lease" }
        if after.startedAt == nil { return "running without startedAt" }
    case .queued:
        if after.leaseOwner != nil || after.leaseExpiresAt != nil { return "queued with a lease" }
    case .succeeded, .failed, .canceled, .expired:
        if after.leaseOwner != nil || after.leaseExpiresAt != nil { return "finished with a lease" }
        if after.finishedAt == nil { return "finished without finishedAt" }
    }
    if after.attempts < 0 || after.attempts > after.maxAttempts { return "attempts out of range" }
    if after.rowsDone < 0 || after.rowsDone > after.rowsTotal { return "rowsDone out of range" }
    if after.rowsDone < before.rowsDone { return "rowsDone went down" }
    if after.updatedAt > now { return "updatedAt is in the future" }
    return nil
}

/// SplitMix64, seeded, so every simulated sequence can be replayed.
private struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

}

extension JobStateMachineTests {
    @Test func expireOnlyQueuedJobsPastTheirDeadline() {
        var job = Job(id: "j", feature: "f", input: [], rowsTotal: 1, maxAttempts: 3, createdAt: 0, deadlineAt: 10)
        #expect(JobStateMachine.expire(job, now: 9) == nil)
        let expired = JobStateMachine.expire(job, now: 10)
        #expect(expired?.state == .expired)
        #expect(expired?.finishedAt == 10)
        job.state = .succeeded
        #expect(JobStateMachine.expire(job, now: 100) == nil)
        let noDeadline = Job(id: "k", feature: "f", input: [], rowsTotal: 1, maxAttempts: 3, createdAt: 0)
        #expect(JobStateMachine.expire(noDeadline, now: 1e12) == nil)
    }
}
