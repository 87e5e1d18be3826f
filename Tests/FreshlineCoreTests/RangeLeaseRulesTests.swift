import FreshlineCore
import Testing

/// The range lease rules both stores apply (`StoreBehaviourTests` checks the stores end to end).
@Suite struct RangeLeaseRulesTests {
    static func range(_ state: RunRange.State, owner: String? = nil, expires: Double? = nil, leases: Int = 0)
        -> RunRange
    {
        RunRange(
            runID: "r", index: 3, rowStart: 100, rowEnd: 200, state: state, owner: owner, leaseExpiresAt: expires,
            rowsDone: 40, leases: leases)
    }

    @Test func whoMayLeaseARange() {
        let alive: (String) -> Bool = { _ in false }
        let gone: (String) -> Bool = { $0 == "dead:1" }
        // (range, now, isGone, available, taken over)
        let cases: [(RunRange, Double, (String) -> Bool, Bool, Bool)] = [
            (Self.range(.pending), 10, alive, true, false),
            (Self.range(.pending, owner: "a:1", leases: 1), 10, alive, true, true),  // released: resumes
            (Self.range(.leased, owner: "a:1", expires: 11), 10, alive, false, false),  // held
            (Self.range(.leased, owner: "a:1", expires: 10), 10, alive, true, true),  // lease ran out
            (Self.range(.leased, owner: "dead:1", expires: 99), 10, gone, true, true),  // owner gone
            (Self.range(.leased, owner: nil, expires: 99), 10, alive, true, true),
            (Self.range(.done, owner: "a:1"), 10, alive, false, false),
        ]
        for (range, now, isGone, available, takenOver) in cases {
            #expect(RangeLeaseRules.isAvailable(range, now: now, isGone: isGone) == available, "\(range)")
            let leased = RangeLeaseRules.lease(range, owner: "b:2", now: now, leaseSeconds: 30, isGone: isGone)
            #expect((leased != nil) == available, "\(range)")
            guard let leased else { continue }
            #expect(leased.takenOver == takenOver, "\(range)")
            #expect(leased.range.state == .leased)
            #expect(leased.range.owner == "b:2")
            #expect(leased.range.leaseExpiresAt == now + 30)
            #expect(leased.range.leases == range.leases + 1)
            #expect(leased.range.rowsDone == range.rowsDone, "a lease keeps the checkpoint")
        }
    }

    @Test func onlyTheHolderCompletes() {
        let held = Self.range(.leased, owner: "a:1", expires: 50, leases: 1)
        #expect(RangeLeaseRules.holds(held, owner: "a:1"))
        #expect(!RangeLeaseRules.holds(held, owner: "b:2"))
        #expect(!RangeLeaseRules.holds(nil, owner: "a:1"))
        #expect(!RangeLeaseRules.holds(Self.range(.pending, owner: "a:1"), owner: "a:1"))
        #expect(!RangeLeaseRules.holds(Self.range(.done, owner: "a:1"), owner: "a:1"))
        let done = RangeLeaseRules.complete(held, owner: "a:1", at: 42)
        #expect(done?.state == .done)
        #expect(done?.finishedAt == 42)
        #expect(done?.leaseExpiresAt == nil)
        #expect(RangeLeaseRules.complete(held, owner: "b:2", at: 42) == nil)
        #expect(RangeLeaseRules.complete(done, owner: "a:1", at: 43) == nil, "completed once")
    }
}
