/// The arithmetic of an upstream's shared budget as a store keeps it: the levels of its two buckets (calls, tokens)
/// at `updatedAt` (seconds, the store's clock). Each bucket holds one minute's allowance and refills continuously at
/// a sixtieth of it per second, as the in-process budget's buckets do. Pure: the store reads the row, applies
/// `take` with its own clock, and writes the row back in the same transaction.
public struct SharedBudgetBuckets: Sendable, Equatable {
    public var requests: Double
    public var tokens: Double
    public var updatedAt: Double

    public init(requests: Double, tokens: Double, updatedAt: Double) {
        self.requests = requests
        self.tokens = tokens
        self.updatedAt = updatedAt
    }

    /// Full buckets for `request`'s limits at `now` (a budget seen for the first time).
    public static func full(_ request: BudgetSliceRequest, now: Double) -> SharedBudgetBuckets {
        SharedBudgetBuckets(
            requests: Double(request.requestsPerMinute ?? 0), tokens: Double(request.tokensPerMinute ?? 0),
            updatedAt: now)
    }

    /// Refills to `now`, then takes `request`'s slice when both buckets hold it above the reserve (a side without a
    /// limit always does). A slice larger than what a bucket can ever hold above its reserve is clamped to that, so
    /// it waits for a full bucket instead of forever.
    public mutating func take(_ request: BudgetSliceRequest, now: Double) -> BudgetSlice {
        refill(request, now: now)
        var wait = 0.0
        var sides: [(level: Double, want: Double)] = []
        for (limit, level, want) in [
            (request.requestsPerMinute, requests, request.requests), (request.tokensPerMinute, tokens, request.tokens),
        ] {
            guard let limit else {
                sides.append((level, 0))
                continue
            }
            let capacity = Double(max(1, limit))
            let reserve = capacity * min(max(request.reserve, 0), 1)
            let clamped = min(max(0, want), capacity - reserve)
            let target = clamped + reserve
            if level < target { wait = max(wait, (target - level) / (capacity / 60)) }
            sides.append((level, clamped))
        }
        guard wait == 0 else { return BudgetSlice(granted: false, retryAfter: .seconds(wait)) }
        requests = sides[0].level - sides[0].want
        tokens = sides[1].level - sides[1].want
        return BudgetSlice(granted: true)
    }

    private mutating func refill(_ request: BudgetSliceRequest, now: Double) {
        guard now > updatedAt else { return }
        let elapsed = now - updatedAt
        if let limit = request.requestsPerMinute {
            let capacity = Double(max(1, limit))
            requests = min(capacity, requests + elapsed * capacity / 60)
        }
        if let limit = request.tokensPerMinute {
            let capacity = Double(max(1, limit))
            tokens = min(capacity, tokens + elapsed * capacity / 60)
        }
        updatedAt = now
    }
}
