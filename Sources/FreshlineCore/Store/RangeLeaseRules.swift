/// The lease rules of a batch run's ranges, as pure functions from a range and a time to the range's next version.
/// Both stores apply them inside a transaction, on the range as they read it (SQLite under its single writer,
/// PostgreSQL on the row locked `FOR UPDATE SKIP LOCKED`), so every process agrees:
///
/// - **Lease.** A pending range, or a leased one whose lease ran out or whose owner is known to be gone (`kill -9`
///   on this host), is leased to a worker for `leaseSeconds`; a done range never is. Leasing a range that someone
///   held before is a take-over: the run counts it as a resume, and the range resumes from its checkpoint.
/// - **Holding.** Only the range's current owner, while it is leased, may write its chunks, renew its lease, record
///   its provider batch or complete it; anyone else learns the range was lost (`BatchStoreError.rangeLost`).
/// - **Renewal** extends the owner's lease; **release** gives the range back (pending) without losing its checkpoint;
///   **completion** marks it done.
///
/// Renewal and release are single conditional statements in both stores (`… WHERE owner = ? AND state =
/// 'leased'`): the same rule as `holds`, applied by the database in one step.
public enum RangeLeaseRules {
    /// Whether `range` may be leased at `now`.
    public static func isAvailable(_ range: RunRange, now: Double, isGone: (String) -> Bool) -> Bool {
        switch range.state {
        case .pending: true
        case .leased: range.owner.map { (range.leaseExpiresAt ?? 0) <= now || isGone($0) } ?? true
        case .done: false
        }
    }

    /// The range leased to `owner` until `now + leaseSeconds`, and whether that takes it over from an earlier holder;
    /// `nil` when it is not available.
    public static func lease(
        _ range: RunRange, owner: String, now: Double, leaseSeconds: Double, isGone: (String) -> Bool
    ) -> (range: RunRange, takenOver: Bool)? {
        guard isAvailable(range, now: now, isGone: isGone) else { return nil }
        let takenOver = range.state == .leased || range.leases > 0
        var leased = range
        leased.state = .leased
        leased.owner = owner
        leased.leaseExpiresAt = now + leaseSeconds
        leased.leases += 1
        return (leased, takenOver)
    }

    /// Whether `owner` holds `range` (a range the store no longer has is held by no one).
    public static func holds(_ range: RunRange?, owner: String) -> Bool {
        guard let range else { return false }
        return range.state == .leased && range.owner == owner
    }

    /// The range done at `at`, or `nil` when `owner` does not hold it.
    public static func complete(_ range: RunRange?, owner: String, at: Double) -> RunRange? {
        guard let range, holds(range, owner: owner) else { return nil }
        var done = range
        done.state = .done
        done.finishedAt = at
        done.leaseExpiresAt = nil
        return done
    }
}
