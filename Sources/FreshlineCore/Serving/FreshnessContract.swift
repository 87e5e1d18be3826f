/// The oldest answer a caller accepts: the feature's `max_staleness`, overridden per request.
public struct FreshnessContract: Sendable, Equatable {
    /// The maximum acceptable age; `nil` accepts any age.
    public var maxStaleness: Duration?

    /// Makes a contract.
    public init(maxStaleness: Duration?) { self.maxStaleness = maxStaleness }

    /// The effective contract: the request's override if it has one, else the feature's default.
    public static func effective(feature: Duration?, request: Duration?) -> FreshnessContract {
        FreshnessContract(maxStaleness: request ?? feature)
    }

    /// Whether an answer of `age` satisfies the contract.
    public func accepts(age: Duration) -> Bool {
        guard let maxStaleness else { return true }
        return age <= maxStaleness
    }
}
