import FreshlineCore
import FreshlinePostgres
import Synchronization
import Testing

/// The job, webhook and request-log behaviour every store has, run against SQLite and PostgreSQL alike; and, on
/// PostgreSQL only, what several processes sharing one database rely on.
@Suite("Store behaviour")
struct StoreBehaviourTests {
    static let t0 = 1_750_000_000.0
    static let policy = JobPolicy(
        maxAttempts: 3, backoffBase: .seconds(2), backoffMax: .seconds(60), visibilityTimeout: .seconds(30),
        deadline: .seconds(3600))

    /// A queued job of one row, as the jobs API submits it.
    static func job(
        _ id: String, feature: String = "churn", at: Double = t0, maxAttempts: Int = 3, deadline: Double? = nil,
        key: String? = nil, hash: String? = nil
    ) -> Job {
        Job(
            id: id, feature: feature, input: Array(#"[{"key":"acct-\#(id)","inputs":{"plan":"pro"}}]"#.utf8),
            rowsTotal: 1, maxAttempts: maxAttempts, createdAt: at, deadlineAt: deadline, idempotencyKey: key,
            requestHash: hash, webhookURL: key == nil ? nil : "https://hooks.example.com/freshline")
    }

    // MARK: Jobs

    @Test(
        "submit stores the job; an idempotency key returns the first job for the same body, conflicts otherwise",
        arguments: StoreKind.allCases)
    func submitAndIdempotency(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let first = Self.job("job_1", key: "order-42", hash: "h1")
            let (created, isNew) = try await store.submit(first)
            #expect(isNew && created == first)
            #expect(try await store.job(id: "job_1") == first)

            let (again, againIsNew) = try await store.submit(
                Self.job("job_2", at: Self.t0 + 1, key: "order-42", hash: "h1"))
            #expect(!againIsNew && again == first)
            await #expect(throws: JobStoreError.idempotencyConflict(jobID: "job_1")) {
                try await store.submit(Self.job("job_3", at: Self.t0 + 2, key: "order-42", hash: "h2"))
            }
            // The key is per feature; jobs without a key never collide.
            #expect(try await store.submit(Self.job("job_4", feature: "fraud", key: "order-42", hash: "h2")).created)
            #expect(try await store.submit(Self.job("job_5", at: Self.t0 + 3)).created)
            #expect(try await store.job(id: "job_2") == nil)
            #expect(try await store.jobs(feature: "churn", state: nil, limit: 10).map(\.id) == ["job_5", "job_1"])
            #expect(try await store.jobs(feature: nil, state: .queued, limit: 2).map(\.id) == ["job_5", "job_4"])
            #expect(try await store.jobs(feature: "fraud", state: .running, limit: 10).isEmpty)
        }
    }

    @Test("lease takes due jobs of the given features oldest first, each once", arguments: StoreKind.allCases)
    func leaseOrderAndExclusivity(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            for (id, at) in [("job_b", Self.t0 + 2), ("job_a", Self.t0), ("job_c", Self.t0 + 4)] {
                _ = try await store.submit(Self.job(id, at: at))
            }
            _ = try await store.submit(Self.job("job_other", feature: "fraud", at: Self.t0 - 10))
            _ = try await store.submit(Self.job("job_later", at: Self.t0 + 100))
            let now = Self.t0 + 10
            var leased: [String] = []
            while let job = try await store.lease(
                features: ["churn"], owner: "host:1/w\(leased.count)", now: now, policies: ["churn": Self.policy])
            {
                #expect(job.state == .running && job.attempts == 1 && job.startedAt == now)
                #expect(job.leaseOwner == "host:1/w\(leased.count)" && job.leaseExpiresAt == now + 30)
                #expect(try await store.job(id: job.id) == job)
                leased.append(job.id)
            }
            #expect(leased == ["job_a", "job_b", "job_c"])
            #expect(try await store.lease(features: [], owner: "w", now: now, policies: [:]) == nil)
            #expect(try await store.lease(features: ["fraud"], owner: "w", now: now, policies: [:])?.id == "job_other")
        }
    }

    @Test("heartbeat and progress by the lease holder only", arguments: StoreKind.allCases)
    func heartbeatAndProgress(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            _ = try await store.submit(Self.job("job_1"))
            let leased = try #require(
                try await store.lease(features: ["churn"], owner: "w1", now: Self.t0, policies: ["churn": Self.policy]))
            #expect(try await store.heartbeat(id: leased.id, owner: "w2", now: Self.t0 + 5, policy: Self.policy) == nil)
            #expect(
                try await store.progress(id: leased.id, owner: "w2", rowsDone: 1, partial: [1], now: Self.t0 + 5) == nil
            )
            let beat = try #require(
                try await store.heartbeat(id: leased.id, owner: "w1", now: Self.t0 + 5, policy: Self.policy))
            #expect(beat.leaseExpiresAt == Self.t0 + 35 && beat.updatedAt == Self.t0 + 5)
            let partial = Array(#"[{"label":1}]"#.utf8)
            let progressed = try #require(
                try await store.progress(id: leased.id, owner: "w1", rowsDone: 1, partial: partial, now: Self.t0 + 6))
            #expect(progressed.rowsDone == 1 && progressed.partial == partial)
            #expect(try await store.job(id: leased.id) == progressed)
            #expect(try await store.heartbeat(id: "job_missing", owner: "w1", now: Self.t0, policy: Self.policy) == nil)
        }
    }

    @Test("complete records the first result; later completions change nothing", arguments: StoreKind.allCases)
    func completeFirstResultWins(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            _ = try await store.submit(Self.job("job_1"))
            _ = try await store.lease(features: ["churn"], owner: "w1", now: Self.t0, policies: ["churn": Self.policy])
            let first = Array(#"{"results":[{"label":1}]}"#.utf8)
            guard case .recorded(let done) = try await store.complete(id: "job_1", result: first, now: Self.t0 + 3)
            else {
                Issue.record("the first completion was not recorded")
                return
            }
            #expect(done.state == .succeeded && done.result == first && done.finishedAt == Self.t0 + 3)
            #expect(done.leaseOwner == nil && done.rowsDone == 1 && done.partial == nil)
            #expect(try await store.job(id: "job_1") == done)
            #expect(
                try await store.complete(id: "job_1", result: Array("other".utf8), now: Self.t0 + 4)
                    == .alreadyFinished(done))
            #expect(try await store.complete(id: "job_missing", result: first, now: Self.t0) == nil)
        }
    }

    @Test(
        "a retryable failure requeues with backoff; the last attempt's failure dead-letters",
        arguments: StoreKind.allCases)
    func failRetryAndDeadLetter(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let policies = ["churn": Self.policy]
            _ = try await store.submit(Self.job("job_1", maxAttempts: 2))
            _ = try await store.lease(features: ["churn"], owner: "w1", now: Self.t0, policies: policies)
            #expect(
                try await store.fail(
                    id: "job_1", owner: "w2", error: "boom", retryable: true, now: Self.t0 + 1, policy: Self.policy)
                    == nil)
            let requeued = try #require(
                try await store.fail(
                    id: "job_1", owner: "w1", error: "model timed out", retryable: true, now: Self.t0 + 1,
                    policy: Self.policy))
            #expect(requeued.state == .queued && requeued.attempts == 1 && requeued.lastError == "model timed out")
            #expect(requeued.availableAt == Self.t0 + 3 && requeued.leaseOwner == nil)
            #expect(
                try await store.lease(features: ["churn"], owner: "w1", now: Self.t0 + 2, policies: policies) == nil)
            let second = try #require(
                try await store.lease(features: ["churn"], owner: "w1", now: Self.t0 + 3, policies: policies))
            #expect(second.attempts == 2)
            let dead = try #require(
                try await store.fail(
                    id: "job_1", owner: "w1", error: "model timed out again", retryable: true, now: Self.t0 + 4,
                    policy: Self.policy))
            #expect(
                dead.state == .failed && dead.lastError == "model timed out again" && dead.finishedAt == Self.t0 + 4)
            #expect(try await store.job(id: "job_1") == dead)

            _ = try await store.submit(Self.job("job_2", at: Self.t0 + 5))
            _ = try await store.lease(features: ["churn"], owner: "w1", now: Self.t0 + 5, policies: policies)
            let bad = try await store.fail(
                id: "job_2", owner: "w1", error: "bad input", retryable: false, now: Self.t0 + 6, policy: Self.policy)
            #expect(bad?.state == .failed && bad?.attempts == 1)
        }
    }

    @Test(
        "an expired lease is leased again with the attempt counted; an exhausted job is dead-lettered",
        arguments: StoreKind.allCases)
    func expiredLease(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let policies = ["churn": Self.policy]
            _ = try await store.submit(Self.job("job_1"))
            _ = try await store.lease(features: ["churn"], owner: "w1", now: Self.t0, policies: policies)
            #expect(
                try await store.lease(features: ["churn"], owner: "w2", now: Self.t0 + 29, policies: policies) == nil)
            let taken = try #require(
                try await store.lease(features: ["churn"], owner: "w2", now: Self.t0 + 30, policies: policies))
            #expect(taken.leaseOwner == "w2" && taken.attempts == 2 && taken.startedAt == Self.t0)
            #expect(taken.lastError == "the worker's lease expired (w1)")
            #expect(try await store.heartbeat(id: "job_1", owner: "w1", now: Self.t0 + 31, policy: Self.policy) == nil)

            // w2's lease has run out too: job_1 is leased a third time.
            let third = try await store.lease(features: ["churn"], owner: "w3", now: Self.t0 + 200, policies: policies)
            #expect(third?.id == "job_1" && third?.attempts == 3)

            // A job whose lease ran out with no attempt left is dead-lettered by the next lease, not leased.
            _ = try await store.submit(Self.job("job_2", feature: "fraud", at: Self.t0 + 100, maxAttempts: 1))
            _ = try await store.lease(features: ["fraud"], owner: "w1", now: Self.t0 + 100, policies: [:])
            #expect(try await store.lease(features: ["fraud"], owner: "w3", now: Self.t0 + 200, policies: [:]) == nil)
            let exhausted = try #require(try await store.job(id: "job_2"))
            #expect(exhausted.state == .failed && exhausted.finishedAt == Self.t0 + 200)
            #expect(exhausted.lastError == "the worker's lease expired (w1)" && exhausted.leaseOwner == nil)
        }
    }

    @Test("release gives the job back without charging the attempt", arguments: StoreKind.allCases)
    func release(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            _ = try await store.submit(Self.job("job_1"))
            _ = try await store.lease(features: ["churn"], owner: "w1", now: Self.t0, policies: [:])
            #expect(try await store.release(id: "job_1", owner: "w2", now: Self.t0 + 1) == nil)
            let released = try #require(try await store.release(id: "job_1", owner: "w1", now: Self.t0 + 1))
            #expect(released.state == .queued && released.attempts == 0 && released.availableAt == Self.t0 + 1)
            #expect(released.leaseOwner == nil && released.leaseExpiresAt == nil)
            let again = try await store.lease(features: ["churn"], owner: "w2", now: Self.t0 + 1, policies: [:])
            #expect(again?.attempts == 1 && again?.leaseOwner == "w2")
        }
    }

    @Test(
        "expireOverdue expires queued jobs past their deadline, once; a lease past it expires the job",
        arguments: StoreKind.allCases)
    func expireOverdue(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            _ = try await store.submit(Self.job("job_1", deadline: Self.t0 + 5))
            _ = try await store.submit(Self.job("job_2", deadline: Self.t0 + 50))
            _ = try await store.submit(Self.job("job_3", deadline: Self.t0 + 8))
            let expired = try await store.expireOverdue(now: Self.t0 + 10, limit: 10)
            #expect(expired.map(\.id) == ["job_1", "job_3"])
            #expect(expired.allSatisfy { $0.state == .expired && $0.finishedAt == Self.t0 + 10 })
            #expect(try await store.job(id: "job_1")?.state == .expired)
            #expect(try await store.expireOverdue(now: Self.t0 + 10, limit: 10).isEmpty)
            #expect(try await store.lease(features: ["churn"], owner: "w1", now: Self.t0 + 60, policies: [:]) == nil)
            #expect(try await store.job(id: "job_2")?.state == .expired)
        }
    }

    @Test("cancel ends a queued or running job, once", arguments: StoreKind.allCases)
    func cancel(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            _ = try await store.submit(Self.job("job_1"))
            _ = try await store.submit(Self.job("job_2", at: Self.t0 + 1))
            _ = try await store.lease(features: ["churn"], owner: "w1", now: Self.t0 + 1, policies: [:])
            let canceledQueued = try await store.cancel(id: "job_2", now: Self.t0 + 2)
            #expect(canceledQueued?.state == .canceled && canceledQueued?.lastError == "canceled by the caller")
            let canceledRunning = try await store.cancel(id: "job_1", now: Self.t0 + 2)
            #expect(canceledRunning?.state == .canceled && canceledRunning?.leaseOwner == nil)
            #expect(try await store.heartbeat(id: "job_1", owner: "w1", now: Self.t0 + 3, policy: Self.policy) == nil)
            #expect(try await store.cancel(id: "job_1", now: Self.t0 + 3) == nil)
            #expect(try await store.cancel(id: "job_missing", now: Self.t0 + 3) == nil)
        }
    }

    @Test("queueFigures counts jobs per state and finds the oldest queued one", arguments: StoreKind.allCases)
    func queueFigures(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let empty = try await store.queueFigures(feature: "churn")
            #expect(empty.counts.isEmpty && empty.oldestQueuedAt == nil)
            for index in 0..<4 { _ = try await store.submit(Self.job("job_\(index)", at: Self.t0 + Double(index))) }
            _ = try await store.submit(Self.job("job_fraud", feature: "fraud", at: Self.t0 - 100))
            _ = try await store.lease(features: ["churn"], owner: "w1", now: Self.t0 + 10, policies: [:])
            _ = try await store.cancel(id: "job_3", now: Self.t0 + 10)
            let figures = try await store.queueFigures(feature: "churn")
            #expect(figures.counts == [.queued: 2, .running: 1, .canceled: 1])
            #expect(figures.oldestQueuedAt == Self.t0 + 1)
        }
    }

    // MARK: Webhooks

    @Test(
        "claiming due deliveries moves their next attempt; attempts are logged per delivery",
        arguments: StoreKind.allCases)
    func webhookDeliveries(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let first = WebhookDelivery(
                id: "whd_1", jobID: "job_1", eventID: "evt_1", eventType: "job.succeeded",
                url: "https://hooks.example.com/a", createdAt: Self.t0)
            let second = WebhookDelivery(
                id: "whd_2", jobID: "job_1", eventID: "evt_1", eventType: "job.succeeded",
                url: "https://hooks.example.com/b", createdAt: Self.t0 + 1)
            let later = WebhookDelivery(
                id: "whd_3", jobID: "job_2", eventID: "evt_2", eventType: "job.failed",
                url: "https://hooks.example.com/a", createdAt: Self.t0 + 100)
            for delivery in [second, later, first] { try await store.enqueue(delivery) }

            // Oldest first; a claimed delivery is not due again until the claim runs out.
            #expect(try await store.claimDueDeliveries(now: Self.t0 + 5, limit: 1, claimSeconds: 60) == [first])
            #expect(try await store.claimDueDeliveries(now: Self.t0 + 5, limit: 10, claimSeconds: 60) == [second])
            #expect(try await store.claimDueDeliveries(now: Self.t0 + 64, limit: 10, claimSeconds: 60).isEmpty)
            let reclaimed = try await store.claimDueDeliveries(now: Self.t0 + 65, limit: 10, claimSeconds: 60)
            #expect(Set(reclaimed.map(\.id)) == ["whd_1", "whd_2"])
            #expect(reclaimed.allSatisfy { $0.nextAttemptAt == Self.t0 + 65 })

            var delivered = first
            delivered.state = .delivered
            delivered.attempts = 1
            delivered.deliveredAt = Self.t0 + 66
            delivered.lastStatus = 200
            try await store.record(
                delivered,
                attempt: WebhookAttempt(deliveryID: "whd_1", attempt: 1, at: Self.t0 + 66, status: 200, error: nil))
            var retrying = second
            retrying.attempts = 1
            retrying.nextAttemptAt = Self.t0 + 70
            retrying.lastError = "connection refused"
            try await store.record(
                retrying,
                attempt: WebhookAttempt(
                    deliveryID: "whd_2", attempt: 1, at: Self.t0 + 66, status: nil, error: "connection refused"))
            retrying.attempts = 2
            retrying.state = .failed
            retrying.lastStatus = 500
            retrying.lastError = nil
            try await store.record(
                retrying,
                attempt: WebhookAttempt(deliveryID: "whd_2", attempt: 2, at: Self.t0 + 70, status: 500, error: nil))

            let log = try await store.deliveries(jobID: "job_1")
            #expect(log.map(\.delivery) == [delivered, retrying])
            #expect(log.first?.attempts.map(\.status) == [200])
            #expect(
                log.last?.attempts == [
                    WebhookAttempt(
                        deliveryID: "whd_2", attempt: 1, at: Self.t0 + 66, status: nil, error: "connection refused"),
                    WebhookAttempt(deliveryID: "whd_2", attempt: 2, at: Self.t0 + 70, status: 500, error: nil),
                ])
            #expect(try await store.deliveries(jobID: "job_missing").isEmpty)
            // Delivered and failed deliveries are never claimed again.
            #expect(
                try await store.claimDueDeliveries(now: Self.t0 + 1000, limit: 10, claimSeconds: 60).map(\.id) == [
                    "whd_3"
                ])
        }
    }

    // MARK: Request log

    @Test(
        "samples come back oldest first, the latest `limit` of the window, every field intact",
        arguments: StoreKind.allCases)
    func requestLog(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let full = RequestLogSample(
                feature: "churn", keyHash: "9f86d081884c7d65", hasRequestInputs: true, source: .fallback,
                outcome: "ok", latencySeconds: 0.00125, ageSeconds: 3600.5, at: Self.t0 + 0.25, sampleRate: 0.125,
                computedAt: Self.t0 - 3600.25, decision: .ranking(["sku-1", "sku-2", "ø"]),
                inputHashes: ["plan": 0xdead_beef_0000_0001, "text": UInt64.max])
            let bare = RequestLogSample(
                feature: "churn", keyHash: nil, hasRequestInputs: false, source: nil, outcome: "bad_request",
                latencySeconds: 0, ageSeconds: 0, at: Self.t0 + 1)
            let scored = RequestLogSample(
                feature: "churn", keyHash: "00", hasRequestInputs: false, source: .batch, outcome: "ok",
                latencySeconds: 0.5, ageSeconds: 10, at: Self.t0 + 2, computedAt: Self.t0 - 10,
                decision: .score([0.25, -1.5]))
            let labelled = RequestLogSample(
                feature: "churn", keyHash: "01", hasRequestInputs: false, source: .realtime, outcome: "ok",
                latencySeconds: 0.5, ageSeconds: 0, at: Self.t0 + 3, computedAt: Self.t0 + 3, decision: .label("yes"))
            let other = RequestLogSample(
                feature: "fraud", keyHash: "02", hasRequestInputs: false, source: .async, outcome: "timeout",
                latencySeconds: 2, ageSeconds: 0, at: Self.t0 + 1)
            try await store.append([labelled, other, full, bare, scored])
            try await store.append([])

            #expect(
                try await store.samples(feature: "churn", since: Self.t0, until: Self.t0 + 10, limit: 10)
                    == [full, bare, scored, labelled])
            #expect(
                try await store.samples(feature: "churn", since: Self.t0, until: Self.t0 + 10, limit: 2)
                    == [scored, labelled])
            // The window is [since, until).
            #expect(
                try await store.samples(feature: "churn", since: Self.t0 + 1, until: Self.t0 + 3, limit: 10)
                    == [bare, scored])
            #expect(try await store.samples(feature: "fraud", since: 0, until: .infinity, limit: 10) == [other])

            var many: [RequestLogSample] = []
            for index in 0..<1000 {
                var sample = bare
                sample.feature = "bulk"
                sample.at = Self.t0 + 10 + Double(index)
                many.append(sample)
            }
            try await store.append(many)
            #expect(try await store.samples(feature: "bulk", since: 0, until: .infinity, limit: 5000).count == 1000)

            #expect(try await store.deleteSamples(before: Self.t0 + 2) == 3)
            #expect(try await store.deleteSamples(before: Self.t0 + 2) == 0)
            #expect(
                try await store.samples(feature: "churn", since: 0, until: .infinity, limit: 10) == [scored, labelled])
        }
    }

    @Test(
        "token counts come back as recorded, and rows whose answer reported none keep none",
        arguments: StoreKind.allCases)
    func requestLogTokens(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let realtime = RequestLogSample(
                feature: "summary", keyHash: "0a", hasRequestInputs: true, source: .realtime, outcome: "ok",
                latencySeconds: 0.8, ageSeconds: 0, at: Self.t0, computedAt: Self.t0, decision: .label("ok"),
                inputTokens: 812, outputTokens: 143)
            // An async answer: a large prompt (beyond 32 bits would not fit an LLM's context, but the column is
            // 64-bit), and an answer with no output tokens (an embedding).
            let async = RequestLogSample(
                feature: "summary", keyHash: "0b", hasRequestInputs: true, source: .async, outcome: "ok",
                latencySeconds: 12, ageSeconds: 0, at: Self.t0 + 1, inputTokens: 3_000_000_000, outputTokens: 0)
            let snapshot = RequestLogSample(
                feature: "summary", keyHash: "0c", hasRequestInputs: false, source: .batch, outcome: "ok",
                latencySeconds: 0.001, ageSeconds: 60, at: Self.t0 + 2)
            let failed = RequestLogSample(
                feature: "summary", keyHash: nil, hasRequestInputs: true, source: nil, outcome: "timeout",
                latencySeconds: 1, ageSeconds: 0, at: Self.t0 + 3)
            try await store.append([realtime, async, snapshot, failed])
            let read = try await store.samples(feature: "summary", since: 0, until: .infinity, limit: 10)
            #expect(read == [realtime, async, snapshot, failed])
            #expect(read.map(\.inputTokens) == [812, 3_000_000_000, nil, nil])
            #expect(read.map(\.outputTokens) == [143, 0, nil, nil])
            #expect(TokenMeasures.measure(read)?.answers == 2)
            // The schema refuses negative counts; the append is one transaction, so nothing of it is kept.
            var negative = realtime
            negative.at = Self.t0 + 4
            negative.outputTokens = -1
            await #expect(throws: (any Error).self) { try await store.append([snapshot, negative]) }
            #expect(try await store.samples(feature: "summary", since: 0, until: .infinity, limit: 10) == read)
        }
    }

    // MARK: PostgreSQL: several processes on one database

    @Test("two stores on one database: 8 concurrent leasers lease each of 200 jobs exactly once")
    func concurrentLeases() async throws {
        try await StoreFixture.with(.postgres) { fixture in
            let stores: [any JobStore] = [fixture.store, try fixture.secondStore()]
            for index in 0..<200 {
                _ = try await stores[index % 2].submit(Self.job("job_\(index)", at: Self.t0 + Double(index % 7)))
            }
            let leased = try await withThrowingTaskGroup(of: [String].self) { group in
                for worker in 0..<8 {
                    let store = stores[worker % 2]
                    group.addTask {
                        var mine: [String] = []
                        while let job = try await store.lease(
                            features: ["churn"], owner: "host:\(worker % 2)/w\(worker)", now: Self.t0 + 10,
                            policies: ["churn": Self.policy])
                        {
                            mine.append(job.id)
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: []) { $0.append(contentsOf: $1) }
            }
            #expect(leased.count == 200)
            #expect(Set(leased) == Set((0..<200).map { "job_\($0)" }))
            let figures = try await stores[0].queueFigures(feature: "churn")
            #expect(figures.counts == [.running: 200])
        }
    }

    @Test("two stores submitting one idempotency key at once create one job")
    func concurrentIdempotentSubmits() async throws {
        try await StoreFixture.with(.postgres) { fixture in
            let stores: [any JobStore] = [fixture.store, try fixture.secondStore()]
            for round in 0..<20 {
                let results = try await withThrowingTaskGroup(of: (job: Job, created: Bool).self) { group in
                    for index in 0..<4 {
                        let store = stores[index % 2]
                        group.addTask {
                            try await store.submit(
                                Self.job("job_\(round)_\(index)", key: "key-\(round)", hash: "same-body"))
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results.filter(\.created).count == 1)
                #expect(Set(results.map(\.job.id)).count == 1)
            }
            #expect(try await stores[1].jobs(feature: "churn", state: nil, limit: 100).count == 20)
        }
    }

    @Test("listen hears a job submitted through another store within a second")
    func listenAcrossStores() async throws {
        try await StoreFixture.with(.postgres) { fixture in
            let listener = try #require(fixture.postgres)
            let other = try fixture.secondStore()
            let heard = Heard()
            let listening = Task { try await listener.listen { event in heard.events.withLock { $0.append(event) } } }
            defer { listening.cancel() }

            // Until the listener is known to be listening, keep submitting warm-up jobs of another feature.
            var warmups = 0
            while !heard.events.withLock({ $0.contains(.jobsQueued(feature: "warmup")) }) {
                try #require(warmups < 100, "the listener heard nothing in 10 s")
                _ = try await other.submit(Self.job("job_warmup_\(warmups)", feature: "warmup"))
                warmups += 1
                try await Task.sleep(for: .milliseconds(100))
            }
            let submitted = ContinuousClock.now
            _ = try await other.submit(Self.job("job_1", feature: "churn"))
            while !heard.events.withLock({ $0.contains(.jobsQueued(feature: "churn")) }) {
                try #require(ContinuousClock.now - submitted < .seconds(1), "no jobsQueued(churn) within 1 s")
                try await Task.sleep(for: .milliseconds(10))
            }
            listening.cancel()
            _ = await listening.result
        }
    }
}

/// Events a listener heard.
private final class Heard: Sendable {
    let events = Mutex<[StoreEvent]>([])
}
