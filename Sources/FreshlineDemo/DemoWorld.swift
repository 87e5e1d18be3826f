internal import Foundation
internal import FreshlineEngine

/// The worked example's synthetic SaaS world (docs/demo.md): users with category preferences and a risk
/// history, accounts with usage, and the traffic of three AI features — card transactions for the fraud check,
/// shopping sessions for the live recommendation, dashboard reads of the account report. The generative story is
/// the one `scripts/make_demo_models.py` trained the models on; both draw from the same distributions.
public struct DemoWorld: Sendable {
    public static let categories = 16
    public static let itemCount = 3_000

    public struct User: Sendable {
        public var id: String
        public var index: Int
        public var favourites: (Int, Int)
        public var risky: Bool
        /// tenure_days, chargebacks_90d, disputes_90d, avg_ticket, countries_30d, failed_logins_7d
        public var features: [Double]
    }

    public struct Account: Sendable {
        public var id: String
        /// seats, active_ratio_7d, active_ratio_30d, tickets_30d, nps, days_since_login, plan_tier, mrr_log
        public var features: [Double]
        public var churning: Bool
    }

    public let users: [User]
    public let accounts: [Account]

    /// Draws a world of `users` users and `accounts` accounts.
    public init(seed: UInt64, users userCount: Int = 2_000, accounts accountCount: Int = 5_000) {
        var r = DemoRandom(seed: seed)
        users = (0..<userCount).map { i in
            let first = r.int(DemoWorld.categories)
            let second = (first + 1 + r.int(DemoWorld.categories - 1)) % DemoWorld.categories
            let risky = r.uniform() < 0.10
            let features = [
                risky ? r.uniform(1, 1_200) : r.uniform(30, 2_000),
                Double(r.poisson(risky ? 0.8 : 0.08)),
                Double(r.poisson(risky ? 0.6 : 0.1)),
                exp(3.5 + 0.6 * r.normal()) * (risky ? 1.3 : 1.0),
                Double(1 + r.poisson(risky ? 0.9 : 0.3)),
                Double(r.poisson(risky ? 2.0 : 0.7)),
            ]
            return User(id: "u\(i)", index: i, favourites: (first, second), risky: risky, features: features)
        }
        accounts = (0..<accountCount).map { i in
            let churning = r.uniform() < 0.20
            let seats = min(500, 1 + (exp(1.5 + r.normal())).rounded(.down))
            let active7 = churning ? r.uniform(0, 0.7) : r.uniform(0.25, 1)
            let tier = Double(r.int(3))
            let features = [
                seats, active7, min(1, max(0, active7 + 0.15 * r.normal())), Double(r.poisson(churning ? 4 : 2)),
                churning ? r.uniform(-50, 50) : r.uniform(-10, 80), churning ? r.uniform(1, 30) : r.uniform(0, 12),
                tier, log(seats * (20 + 30 * tier)),
            ]
            return Account(id: "acct-\(i)", features: features, churning: churning)
        }
    }

    /// `users.csv`: the entity source of the user-risk and candidate batch features.
    public func usersCSV() -> String {
        var text =
            "user_id,user_index,tenure_days,chargebacks_90d,disputes_90d,avg_ticket,countries_30d,"
            + "failed_logins_7d\n"
        for u in users {
            text += "\(u.id),\(u.index)," + u.features.map { Self.number($0) }.joined(separator: ",") + "\n"
        }
        return text
    }

    /// `accounts.csv`: what the nightly report would enumerate (the advisor's batch what-if).
    public func accountsCSV() -> String {
        var text =
            "account_id,seats,active_ratio_7d,active_ratio_30d,tickets_30d,nps,days_since_login,plan_tier,"
            + "mrr_log\n"
        for a in accounts { text += a.id + "," + a.features.map { Self.number($0) }.joined(separator: ",") + "\n" }
        return text
    }

    static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e9 ? String(Int(v)) : String(format: "%.4f", v)
    }
}

/// One stream of demo traffic: its own random generator and, for sessions, each user's current intent.
public struct DemoTraffic: Sendable {
    var random: DemoRandom
    var intents: [Int: Int] = [:]
    var transactions = 0
    let stream: Int

    public init(seed: UInt64, stream: Int) {
        random = DemoRandom(seed: seed &+ UInt64(stream) &* 0x9e37_79b9)
        self.stream = stream
    }

    /// A card transaction: a new id, the paying user, seven fields; fraudulent more often for risky users.
    public mutating func transaction(_ world: DemoWorld) -> (id: String, user: String, tx: [Double], fraud: Bool) {
        transactions += 1
        let user = world.users[random.int(world.users.count)]
        let fraud = random.uniform() < (user.risky ? 0.15 : 0.01)
        let amount = 3.5 + random.normal() + (fraud ? 0.8 : 0)
        let hour = Double(fraud && random.uniform() < 0.4 ? random.int(6) : random.int(24))
        let distance = fraud ? random.uniform(2, 7) : random.uniform(0, 5)
        let merchant = fraud ? random.uniform(0.2, 1) : random.uniform(0, 0.8)
        let velocity = Double(random.poisson(fraud ? 3 : 1))
        let device: Double = random.uniform() < (fraud ? 0.5 : 0.15) ? 1 : 0
        let tx = [amount, sin(hour * .pi / 12), cos(hour * .pi / 12), distance, merchant, velocity, device]
        return ("tx-\(stream)-\(transactions)", user.id, tx, fraud)
    }

    /// A shopping session for a user: the categories of the last five clicks, half from the user's favourites,
    /// half from the current intent. With probability `drift` the intent changes before this request; with
    /// `drift` 0 the session is the same on every request (the user's standing profile).
    public mutating func session(_ world: DemoWorld, user: Int, drift: Double) -> [Double] {
        let u = world.users[user]
        var s = [Double](repeating: 0, count: DemoWorld.categories)
        if drift <= 0 {
            s[u.favourites.0] = 0.6
            s[u.favourites.1] = 0.4
            return s
        }
        if intents[user] == nil || random.uniform() < drift { intents[user] = random.int(DemoWorld.categories) }
        for _ in 0..<5 {
            let c: Int
            if random.uniform() < 0.5 {
                let p = random.uniform()
                c = p < 0.6 ? u.favourites.0 : p < 0.9 ? u.favourites.1 : random.int(DemoWorld.categories)
            } else {
                c = intents[user]!
            }
            s[c] += 0.2
        }
        return s
    }

    /// A user drawn at random.
    public mutating func user(_ world: DemoWorld) -> Int { random.int(world.users.count) }

    /// An account drawn with a long tail (big customers open their dashboards more).
    public mutating func account(_ world: DemoWorld) -> DemoWorld.Account {
        let u = random.uniform()
        return world.accounts[min(world.accounts.count - 1, Int(u * u * Double(world.accounts.count)))]
    }
}

/// The engine's SplitMix64 with the draws the world needs.
struct DemoRandom: Sendable {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { generator.next() }

    /// Uniform in [0, 1).
    mutating func uniform() -> Double { Double(next() >> 11) / Double(UInt64(1) << 53) }
    mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * uniform() }
    /// Uniform in 0..<n.
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
    /// Standard normal (Box–Muller).
    mutating func normal() -> Double {
        let u = max(uniform(), 1e-300)
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * uniform())
    }
    /// Poisson (Knuth; small means).
    mutating func poisson(_ mean: Double) -> Int {
        let limit = exp(-mean)
        var k = 0
        var p = uniform()
        while p > limit {
            k += 1
            p *= uniform()
        }
        return k
    }
}
