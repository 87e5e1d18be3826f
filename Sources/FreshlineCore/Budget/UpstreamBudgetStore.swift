/// What a server asks of an upstream's shared rate-limit budget: a slice of its calls and tokens.
public struct BudgetSliceRequest: Sendable, Equatable {
    /// The upstream model's manifest name: one shared budget per name.
    public var upstream: String
    /// The budget (`limits.requests_per_minute`, `limits.tokens_per_minute`; `nil`: that side is unlimited). Each
    /// side is a bucket holding one minute's allowance, refilled continuously.
    public var requestsPerMinute: Int?
    public var tokensPerMinute: Int?
    /// Calls and tokens wanted.
    public var requests: Double
    public var tokens: Double
    /// The share of each bucket the slice may not take (the batch reserve; 0 for real-time and async callers).
    public var reserve: Double

    public init(
        upstream: String, requestsPerMinute: Int?, tokensPerMinute: Int?, requests: Double, tokens: Double,
        reserve: Double = 0
    ) {
        self.upstream = upstream
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.requests = requests
        self.tokens = tokens
        self.reserve = reserve
    }
}

/// What the shared budget granted: all of a slice, or nothing.
public struct BudgetSlice: Sendable, Equatable {
    /// Whether the slice was granted (both sides taken from the buckets).
    public var granted: Bool
    /// When not granted: how long until the buckets hold the slice, at their refill rate.
    public var retryAfter: Duration

    public init(granted: Bool, retryAfter: Duration = .zero) {
        self.granted = granted
        self.retryAfter = retryAfter
    }
}

/// Rate-limit budgets shared by the servers of a cluster (PostgreSQL): one pair of token buckets per upstream, in
/// the store, read and updated in one atomic statement on the store's clock, so that every server takes from the
/// same allowance. Servers take slices of it (see `FreshlineUpstream`'s shared limiter) rather than asking per call.
public protocol UpstreamBudgetStore: Sendable {
    /// Takes `request`'s slice from the upstream's buckets if both hold it above the reserve (all or nothing).
    func takeBudget(_ request: BudgetSliceRequest) async throws -> BudgetSlice
}
