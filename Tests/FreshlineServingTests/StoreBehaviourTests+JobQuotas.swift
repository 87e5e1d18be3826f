import FreshlineCore
import FreshlinePostgres
import Testing

/// Per-owner job quotas and retention (issue 18), on SQLite and PostgreSQL alike; on PostgreSQL, the quota under
/// concurrent submissions from two processes.
extension StoreBehaviourTests {
    /// A queued job of `owner`.
    static func job(_ id: String, owner: String, at: Double = t0, key: String? = nil, hash: String? = nil) -> Job {
        var made = Self.job(id, at: at, key: key, hash: hash)
        made.owner = owner
        return made
    }

    // MARK: Quota

    @Test(
        "a new job over its owner's unfinished-job quota is refused; other owners, replays and finished jobs are not counted",
        arguments: StoreKind.allCases)
    func quota(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            #expect(
                try await store.submit(Self.job("job_1", owner: "app", key: "k1", hash: "h1"), maxUnfinished: 2).created
            )
            #expect(try await store.submit(Self.job("job_2", owner: "app", at: Self.t0 + 1), maxUnfinished: 2).created)
            #expect(try await store.job(id: "job_1")?.owner == "app")

            await #expect(throws: JobStoreError.tooManyJobs(limit: 2)) {
                try await store.submit(Self.job("job_3", owner: "app", at: Self.t0 + 2), maxUnfinished: 2)
            }
            #expect(try await store.job(id: "job_3") == nil)
            // A replay of an existing job answers it; the quota is not consulted.
            let replay = try await store.submit(
                Self.job("job_1b", owner: "app", at: Self.t0 + 2, key: "k1", hash: "h1"), maxUnfinished: 2)
            #expect(!replay.created && replay.job.id == "job_1")
            // Another owner has its own count.
            #expect(try await store.submit(Self.job("job_4", owner: "ops", at: Self.t0 + 2), maxUnfinished: 2).created)

            // A running job still counts; a finished one frees its slot.
            let leased = try #require(
                try await store.lease(features: ["churn"], owner: "w1", now: Self.t0 + 3, policies: [:]))
            #expect(leased.id == "job_1")
            await #expect(throws: JobStoreError.tooManyJobs(limit: 2)) {
                try await store.submit(Self.job("job_5", owner: "app", at: Self.t0 + 4), maxUnfinished: 2)
            }
            _ = try await store.complete(id: "job_1", result: Array("{}".utf8), now: Self.t0 + 5)
            #expect(try await store.submit(Self.job("job_5", owner: "app", at: Self.t0 + 6), maxUnfinished: 2).created)
            await #expect(throws: JobStoreError.tooManyJobs(limit: 2)) {
                try await store.submit(Self.job("job_6", owner: "app", at: Self.t0 + 7), maxUnfinished: 2)
            }
            // Without a quota (a store caller that sets none) nothing is counted.
            #expect(try await store.submit(Self.job("job_7", owner: "app", at: Self.t0 + 8)).created)
            let unfinished =
                try await store.jobs(feature: "churn", state: .queued, limit: 100)
                + store.jobs(feature: "churn", state: .running, limit: 100)
            #expect(unfinished.filter { $0.owner == "app" }.map(\.id).sorted() == ["job_2", "job_5", "job_7"])
        }
    }

    // MARK: Retention

    @Test(
        "deleteFinishedJobs deletes finished jobs that ended before the cutoff, oldest first, a bounded batch at a time",
        arguments: StoreKind.allCases)
    func jobRetention(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            // Running since t0 (its lease runs to t0 + 30; never reclaimed below, since leases stop at t0 + 3).
            _ = try await store.submit(Self.job("job_running"))
            _ = try await store.lease(features: ["churn"], owner: "w1", now: Self.t0, policies: ["churn": Self.policy])
            _ = try await store.submit(Self.job("job_done", at: Self.t0 + 1))
            _ = try await store.lease(
                features: ["churn"], owner: "w1", now: Self.t0 + 1, policies: ["churn": Self.policy])
            _ = try await store.complete(id: "job_done", result: Array("{}".utf8), now: Self.t0 + 10)
            _ = try await store.submit(Self.job("job_canceled", at: Self.t0 + 2))
            _ = try await store.cancel(id: "job_canceled", now: Self.t0 + 20)
            _ = try await store.submit(Self.job("job_expired", at: Self.t0 + 3, deadline: Self.t0 + 25))
            #expect(try await store.expireOverdue(now: Self.t0 + 30, limit: 10).map(\.id) == ["job_expired"])
            _ = try await store.submit(Self.job("job_queued", at: Self.t0 + 4))
            _ = try await store.submit(Self.job("job_recent", at: Self.t0 + 5))
            _ = try await store.cancel(id: "job_recent", now: Self.t0 + 1000)

            let cutoff = Self.t0 + 100
            #expect(try await store.deleteFinishedJobs(finishedBefore: cutoff, limit: 2) == 2)
            #expect(try await store.job(id: "job_done") == nil)
            #expect(try await store.job(id: "job_canceled") == nil)
            #expect(try await store.job(id: "job_expired")?.state == .expired)
            #expect(try await store.deleteFinishedJobs(finishedBefore: cutoff, limit: 2) == 1)
            #expect(try await store.deleteFinishedJobs(finishedBefore: cutoff, limit: 2) == 0)

            let left = try await store.jobs(feature: nil, state: nil, limit: 100)
            #expect(Set(left.map(\.id)) == ["job_running", "job_queued", "job_recent"])
            #expect(try await store.job(id: "job_running")?.state == .running)
            #expect(try await store.job(id: "job_queued")?.state == .queued)
            // Later, the recent one goes too; unfinished jobs never do, however old.
            #expect(try await store.deleteFinishedJobs(finishedBefore: Self.t0 + 10_000, limit: 100) == 1)
            #expect(
                Set(try await store.jobs(feature: nil, state: nil, limit: 100).map(\.id)) == [
                    "job_running", "job_queued",
                ])
        }
    }

    @Test(
        "deleteDeliveries deletes finished deliveries created before the cutoff with their attempt logs; pending ones stay",
        arguments: StoreKind.allCases)
    func deliveryRetention(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            func delivery(_ id: String, at: Double) -> WebhookDelivery {
                WebhookDelivery(
                    id: id, jobID: "job_1", eventID: "evt_\(id)", eventType: "job.succeeded",
                    url: "https://hooks.example.com/a", createdAt: at)
            }
            func finish(_ delivery: WebhookDelivery, _ state: WebhookDelivery.State, at: Double) async throws {
                var done = delivery
                done.state = state
                done.attempts = 1
                done.lastStatus = state == .delivered ? 200 : 500
                try await store.record(
                    done,
                    attempt: WebhookAttempt(
                        deliveryID: delivery.id, attempt: 1, at: at, status: done.lastStatus, error: nil))
            }
            let delivered = delivery("whd_delivered", at: Self.t0)
            let failed = delivery("whd_failed", at: Self.t0 + 1)
            let pending = delivery("whd_pending", at: Self.t0 + 2)
            let recent = delivery("whd_recent", at: Self.t0 + 1000)
            for d in [delivered, failed, pending, recent] { try await store.enqueue(d) }
            try await finish(delivered, .delivered, at: Self.t0 + 5)
            try await finish(failed, .failed, at: Self.t0 + 6)
            try await finish(recent, .delivered, at: Self.t0 + 1001)

            #expect(try await store.deleteDeliveries(createdBefore: Self.t0 + 100, limit: 1) == 1)
            #expect(try await store.deleteDeliveries(createdBefore: Self.t0 + 100, limit: 10) == 1)
            #expect(try await store.deleteDeliveries(createdBefore: Self.t0 + 100, limit: 10) == 0)
            let log = try await store.deliveries(jobID: "job_1")
            #expect(log.map(\.delivery.id) == ["whd_pending", "whd_recent"])
            #expect(log.last?.attempts.count == 1)

            // The attempt log went with its delivery: a new delivery under the old id starts with none.
            try await store.enqueue(delivery("whd_delivered", at: Self.t0 + 2000))
            let reused = try await store.deliveries(jobID: "job_1").first { $0.delivery.id == "whd_delivered" }
            #expect(reused?.attempts == [])
        }
    }

    // MARK: PostgreSQL: several processes on one database

    @Test("two stores submitting for one owner at once never exceed its quota")
    func concurrentQuota() async throws {
        try await StoreFixture.with(.postgres) { fixture in
            let stores: [any JobStore] = [fixture.store, try fixture.secondStore()]
            let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<24 {
                    let store = stores[index % 2]
                    group.addTask {
                        do {
                            return try await store.submit(
                                Self.job("job_\(index)", owner: "app", at: Self.t0 + Double(index)), maxUnfinished: 5
                            ).created
                        } catch let error as JobStoreError where error == .tooManyJobs(limit: 5) {
                            return false
                        }
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 5)
            #expect(try await stores[1].jobs(feature: "churn", state: .queued, limit: 100).count == 5)
            // Another owner is not held up by the first one's full quota.
            #expect(try await stores[0].submit(Self.job("job_other", owner: "ops"), maxUnfinished: 5).created)
        }
    }
}
