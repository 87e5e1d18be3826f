import FreshlineCore
import Logging
import Synchronization
import Testing

@testable import FreshlineUpstream

/// A TEST DOUBLE of the shared budget's store (no database): the buckets in memory under `SharedBudgetBuckets`, with
/// the leases it was asked for recorded, and an outage switch.
final class BudgetStoreDouble: UpstreamBudgetStore {
    private let state = Mutex<(buckets: SharedBudgetBuckets?, leases: [BudgetSliceRequest], down: Bool)>(
        (nil, [], false))
    private let start = ContinuousClock.now

    var leases: [BudgetSliceRequest] { state.withLock { $0.leases } }
    func setDown(_ down: Bool) { state.withLock { $0.down = down } }

    func takeBudget(_ request: BudgetSliceRequest) async throws -> BudgetSlice {
        try await Task.sleep(for: .milliseconds(2))
        let now = (ContinuousClock.now - start).seconds
        return try state.withLock { state in
            if state.down { throw BudgetStoreDown() }
            state.leases.append(request)
            var buckets = state.buckets ?? .full(request, now: now)
            let slice = buckets.take(request, now: now)
            state.buckets = buckets
            return slice
        }
    }
}

struct BudgetStoreDown: Error {}

@Suite("Shared budget slices (with a store test double)")
struct SharedBudgetSliceTests {
    static func budget(_ store: BudgetStoreDouble, requestsPerMinute: Int? = 600, tokensPerMinute: Int? = nil)
        -> SharedBudget
    {
        var logger = Logger(label: "freshline.test.shared-budget")
        logger.logLevel = .critical
        return SharedBudget(
            store: store, upstream: "llm", requestsPerMinute: requestsPerMinute, tokensPerMinute: tokensPerMinute,
            logger: logger)
    }

    @Test("concurrent callers share one lease: a slice of a second's allowance serves them without asking again")
    func oneLeaseAtATime() async throws {
        let store = BudgetStoreDouble()
        let budget = Self.budget(store)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    try await budget.acquire(priority: .realtime, tokens: 0, deadline: .now + .seconds(5), prefix: "t")
                }
            }
            try await group.waitForAll()
        }
        // 600 a minute: slices of 10 calls; ten callers at once take one slice.
        #expect(store.leases.count == 1, "\(store.leases)")
        #expect(store.leases.first?.requests == 10)
        #expect(store.leases.first?.reserve == 0)
        try await budget.acquire(priority: .batch, tokens: 0, deadline: .now + .seconds(5), prefix: "t")
        #expect(store.leases.count == 2)
        #expect(store.leases.last?.reserve == RateBudget.batchReserve)
    }

    @Test("tokens used above the estimate are leased on top of the next slice")
    func debt() async throws {
        let store = BudgetStoreDouble()
        let budget = Self.budget(store, requestsPerMinute: nil, tokensPerMinute: 6000)
        try await budget.acquire(priority: .async, tokens: 50, deadline: .now + .seconds(5), prefix: "t")
        #expect(store.leases.last?.tokens == 100)
        budget.settle(estimatedTokens: 50, actualTokens: 300)
        try await budget.acquire(priority: .async, tokens: 50, deadline: .now + .seconds(5), prefix: "t")
        // The slice had 50 left; the call used 250 more than estimated: a debt of 200, leased with the next 100.
        #expect(store.leases.count == 2)
        #expect(store.leases.last?.tokens == 300)
    }

    @Test("the store unreachable: one slice is spent without it, then calls are refused until it answers")
    func outage() async throws {
        let store = BudgetStoreDouble()
        let budget = Self.budget(store, requestsPerMinute: 60)
        store.setDown(true)
        // 60 a minute: a slice of one call, spent without a grant.
        try await budget.acquire(priority: .realtime, tokens: 0, deadline: .now + .seconds(5), prefix: "t")
        do {
            try await budget.acquire(priority: .realtime, tokens: 0, deadline: .now + .seconds(5), prefix: "t")
            Issue.record("a second call should be refused while the store is down")
        } catch {
            #expect(error.kind == .rateLimited)
            #expect(error.message.contains("cannot be read from the store"))
            #expect(error.retryAfter == SharedBudget.refillInterval)
        }
        store.setDown(false)
        try await budget.acquire(priority: .realtime, tokens: 0, deadline: .now + .seconds(5), prefix: "t")
        #expect(store.leases.count == 1)
    }
}
