import Foundation
import FreshlineDemo
import Testing

/// The worked example's data set: deterministic, the documented sizes and shares, and traffic with the shapes
/// the advisor is expected to recognise.
@Suite("Demo world")
struct DemoWorldTests {
    @Test("the same seed draws the same world; the CSVs have the documented columns and sizes")
    func deterministic() {
        let a = DemoWorld(seed: 7)
        let b = DemoWorld(seed: 7)
        #expect(a.usersCSV() == b.usersCSV())
        #expect(a.accountsCSV() == b.accountsCSV())
        #expect(a.usersCSV() != DemoWorld(seed: 8).usersCSV())
        let users = a.usersCSV().split(separator: "\n")
        #expect(users.count == 2_001)
        #expect(
            users.first
                == "user_id,user_index,tenure_days,chargebacks_90d,disputes_90d,avg_ticket,countries_30d,failed_logins_7d"
        )
        #expect(a.accountsCSV().split(separator: "\n").count == 5_001)
        let riskyShare = Double(a.users.filter(\.risky).count) / Double(a.users.count)
        #expect(riskyShare > 0.07 && riskyShare < 0.13)
        let churnShare = Double(a.accounts.filter(\.churning).count) / Double(a.accounts.count)
        #expect(churnShare > 0.17 && churnShare < 0.23)
    }

    @Test("transactions are all new; sessions drift only when asked to")
    func trafficShapes() {
        let world = DemoWorld(seed: 7, users: 200, accounts: 100)
        var traffic = DemoTraffic(seed: 1, stream: 0)
        var ids = Set<String>()
        var frauds = 0
        for _ in 0..<5_000 {
            let t = traffic.transaction(world)
            ids.insert(t.id)
            frauds += t.fraud ? 1 : 0
            #expect(t.tx.count == 7)
        }
        #expect(ids.count == 5_000)
        #expect(frauds > 50 && frauds < 250)  // ≈ 2.4% (10% of users at 15%, the rest at 1%)
        let fixed = (0..<5).map { _ in traffic.session(world, user: 3, drift: 0) }
        #expect(Set(fixed.map { $0.description }).count == 1)
        let drifting = (0..<20).map { _ in traffic.session(world, user: 3, drift: 0.7) }
        #expect(Set(drifting.map { $0.description }).count > 5)
        #expect(drifting.allSatisfy { abs($0.reduce(0, +) - 1) < 1e-9 })
    }
}
