/// Decides whether a finished batch's duration may teach the batch cost model. The model's per-batch term is a mean
/// over recent batches, so one batch that took seconds because its thread was descheduled (a busy machine, a page
/// fault storm) would lift every estimate past the features' deadlines, and the batcher would shed requests until
/// that batch left the window. A duration far above the estimate (more than `factor` times it, and more than
/// `floor`) is kept out — unless such batches keep coming (`streak` in a row): then the model is slower now, and
/// from the `streak`-th on they count.
public struct StallFilter: Sendable, Equatable {
    public let factor: Double
    public let floor: Duration
    public let streak: Int
    private var stallsInARow = 0

    public init(factor: Double = 20, floor: Duration = .milliseconds(5), streak: Int = 3) {
        self.factor = max(factor, 1)
        self.floor = max(floor, .zero)
        self.streak = max(streak, 1)
    }

    /// Whether a batch that took `duration`, when the cost model expected `expected`, should be recorded.
    public mutating func admits(duration: Duration, expected: Duration) -> Bool {
        let stalled = duration > floor && duration.seconds > expected.seconds * factor
        guard stalled else {
            stallsInARow = 0
            return true
        }
        stallsInARow += 1
        return stallsInARow >= streak
    }
}
