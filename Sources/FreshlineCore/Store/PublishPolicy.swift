/// When a finished run may replace the feature's published snapshot. The store applies it in the transaction that
/// completes the run's last range (so however many workers shared the run, exactly one decision is made, over the
/// run's final totals): a run it refuses ends `failed` with the reason, its snapshot is abandoned, and the previous
/// snapshot keeps serving.
public struct PublishPolicy: Sendable, Equatable {
    /// The largest share of the run's rows that may fail (0…1): `batch.max_failed_share`.
    public var maxFailedShare: Double
    /// Whether a run that publishes no keys may replace a snapshot that has some: `batch.allow_empty`.
    public var allowEmpty: Bool

    /// The manifest's default share, 1%: a few bad rows in a large source (a malformed cell, a key left empty) still
    /// publish, while a systematic fault (a wrong column mapping, a changed source layout) fails nearly every row
    /// and is refused.
    public static let defaultMaxFailedShare = 0.01

    /// Makes a policy; `maxFailedShare` is clamped to 0…1.
    public init(maxFailedShare: Double = PublishPolicy.defaultMaxFailedShare, allowEmpty: Bool = false) {
        self.maxFailedShare = min(1, max(0, maxFailedShare))
        self.allowEmpty = allowEmpty
    }

    /// Publishes whatever a run wrote (every row may fail, an empty run replaces anything).
    public static let unguarded = PublishPolicy(maxFailedShare: 1, allowEmpty: true)

    /// Why `run` must not publish, or `nil` when it may. `keyCount` is the distinct keys its snapshot would hold,
    /// `previous` the snapshot it would replace, `firstFailure` its first failed row in source order.
    ///
    /// The failed share is taken over the rows the run used or refused (`rowsWritten + rowsFailed`), not over every
    /// row it read: a backfill over a key subset skips the other rows, and they are not its rows.
    public func refusal(run: BatchRun, keyCount: Int, previous: SnapshotInfo?, firstFailure: RowFailure?) -> String? {
        let considered = run.rowsWritten + run.rowsFailed
        // Division, not multiplication: `failed / considered` and the manifest's decimal round to the same double
        // when they are the same fraction, so a run exactly at the limit publishes.
        if run.rowsFailed > 0, Double(run.rowsFailed) / Double(max(1, considered)) > maxFailedShare {
            let share = Self.percent(Double(run.rowsFailed) / Double(max(1, considered)))
            var reason = "\(run.rowsFailed) of \(considered) rows failed (\(share)), over the limit "
            reason += "batch.max_failed_share \(Self.number(maxFailedShare)) (\(Self.percent(maxFailedShare)))"
            if let firstFailure { reason += "; first failure: \(firstFailure.location): \(firstFailure.reason)" }
            reason += "; nothing published, \(Self.keeping(previous))"
            return reason
        }
        if keyCount == 0, !allowEmpty, let previous, previous.keyCount > 0 {
            var reason = "the run has no keys to publish (\(run.rowsDone) source rows read) and would replace "
            reason += "snapshot v\(previous.version) with \(previous.keyCount) keys; set batch.allow_empty: true to "
            reason += "publish an empty snapshot; nothing published, \(Self.keeping(previous))"
            return reason
        }
        return nil
    }

    private static func keeping(_ previous: SnapshotInfo?) -> String {
        previous.map { "snapshot v\($0.version) keeps serving" } ?? "the feature has no snapshot yet"
    }

    private static func percent(_ share: Double) -> String {
        let value = (share * 1000).rounded() / 10
        return (value == value.rounded() ? String(Int(value)) : String(value)) + "%"
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
