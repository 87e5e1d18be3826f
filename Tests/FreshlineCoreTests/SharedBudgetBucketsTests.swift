import FreshlineCore
import Testing

@Suite("Shared budget buckets")
struct SharedBudgetBucketsTests {
    static func slice(requests: Double, tokens: Double, reserve: Double = 0) -> BudgetSliceRequest {
        BudgetSliceRequest(
            upstream: "llm", requestsPerMinute: 60, tokensPerMinute: 600, requests: requests, tokens: tokens,
            reserve: reserve)
    }

    @Test("slices are taken all or nothing while both buckets hold them; a refusal says when they will")
    func takeAndRefuse() {
        var buckets = SharedBudgetBuckets.full(Self.slice(requests: 0, tokens: 0), now: 100)
        #expect(buckets.requests == 60 && buckets.tokens == 600)
        #expect(buckets.take(Self.slice(requests: 50, tokens: 100), now: 100).granted)
        // 10 calls left, 500 tokens: 20 calls do not fit; 10 more take 10 s at 1 call per second.
        let refused = buckets.take(Self.slice(requests: 20, tokens: 10), now: 100)
        #expect(!refused.granted && refused.retryAfter == .seconds(10))
        #expect(buckets.requests == 10 && buckets.tokens == 500, "a refusal takes nothing")
        #expect(buckets.take(Self.slice(requests: 20, tokens: 10), now: 110).granted)
        #expect(buckets.requests == 0 && buckets.tokens == 590)
    }

    @Test("a batch slice leaves the reserve; a slice larger than a bucket waits for a full one; no limit, no check")
    func reserveClampAndUnlimited() {
        var buckets = SharedBudgetBuckets.full(Self.slice(requests: 0, tokens: 0), now: 0)
        #expect(buckets.take(Self.slice(requests: 40, tokens: 0, reserve: 0.2), now: 0).granted)
        #expect(!buckets.take(Self.slice(requests: 9, tokens: 0, reserve: 0.2), now: 0).granted)
        #expect(buckets.take(Self.slice(requests: 8, tokens: 0, reserve: 0.2), now: 0).granted)
        #expect(buckets.take(Self.slice(requests: 12, tokens: 0), now: 0).granted, "real time takes the reserve")
        var empty = SharedBudgetBuckets(requests: 0, tokens: 600, updatedAt: 0)
        let huge = empty.take(Self.slice(requests: 1000, tokens: 0), now: 0)
        #expect(!huge.granted && huge.retryAfter == .seconds(60))
        var unlimited = SharedBudgetBuckets(requests: 0, tokens: 0, updatedAt: 0)
        let any = BudgetSliceRequest(
            upstream: "llm", requestsPerMinute: nil, tokensPerMinute: 600, requests: 1_000_000, tokens: 1)
        #expect(!unlimited.take(any, now: 0).granted, "the token bucket is empty")
        #expect(unlimited.take(any, now: 60).granted, "the request side has no limit")
    }
}
