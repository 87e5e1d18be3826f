/// One load test (`freshline load FEATURE --replay`): the feature's recorded traffic shape replayed at `speed`×
/// against a server, open loop, for a bounded time. The advisor shows each run as its own row on the tail-latency
/// axis, never merged into the production percentiles, and derives the headroom from the runs (`LoadHeadroom`).
public struct LoadTestResult: Sendable, Equatable, Codable {
    /// The run's id (`load_…`), also sent to the server in `X-Freshline-Load-Test`.
    public var id: String
    public var feature: String
    /// When the first request was scheduled and when the last answer (or the bound) came, seconds since 1970.
    public var startedAt: Double
    public var endedAt: Double
    /// The replay speed: recorded arrival offsets divided by it.
    public var speed: Double
    /// The bound on the replay asked for (`--duration`), seconds.
    public var durationSeconds: Double
    /// Requests sent, and answered with a prediction (HTTP 200).
    public var sent: Int
    public var answered: Int
    /// Latency percentiles per answer source (`realtime`, `batch`, `fallback`, `default`), measured from each
    /// request's scheduled send time (open loop: no coordinated omission).
    public var sources: [SourceLatency]
    /// Requests the server refused as overloaded (503 `overloaded`, 429).
    public var shed: Int
    /// Answers from a fallback rung or the configured default.
    public var fallback: Int
    /// Requests that got no answer for another reason (other HTTP errors, timeouts, connection failures).
    public var errors: Int
    /// Requests per second actually sent.
    public var achievedRate: Double
    /// The server the run was sent to: its base URL (the `target_url` column).
    public var server: String
    /// Every outcome counted by name (`ok`, `overloaded`, `unknown_key`, `timeout`, `connection`, …).
    public var outcomes: [String: Int]

    public init(
        id: String, feature: String, startedAt: Double, endedAt: Double, speed: Double, durationSeconds: Double,
        sent: Int, answered: Int, sources: [SourceLatency], shed: Int, fallback: Int, errors: Int,
        achievedRate: Double, server: String, outcomes: [String: Int] = [:]
    ) {
        self.id = id
        self.feature = feature
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.speed = speed
        self.durationSeconds = durationSeconds
        self.sent = sent
        self.answered = answered
        self.sources = sources
        self.shed = shed
        self.fallback = fallback
        self.errors = errors
        self.achievedRate = achievedRate
        self.server = server
        self.outcomes = outcomes
    }

    /// The p99 the headroom is judged by: the real-time answers' when the run had any, else the slowest source's.
    public var servedP99: Double? {
        if let realtime = sources.first(where: { $0.source == PredictionSource.realtime.rawValue && $0.count > 0 }) {
            return realtime.p99
        }
        return sources.filter { $0.count > 0 }.map(\.p99).max()
    }

    /// `load test at 4× (2026-12-08)`: the row the reports show for the run.
    public var label: String {
        "load test at \(CostModel.format(speed))× (\(Timestamp.rfc3339(startedAt).prefix(10)))"
    }
}

/// The advisor's headroom finding: the highest replay speed whose p99 stayed within the latency budget with no
/// request shed, over the load tests of the window.
public struct LoadHeadroom: Sendable, Equatable, Codable {
    /// That speed; `nil` when no run passed.
    public var speed: Double?
    /// The runs judged.
    public var runs: Int
    /// The finding in a sentence, with the numbers.
    public var finding: String

    public init(speed: Double?, runs: Int, finding: String) {
        self.speed = speed
        self.runs = runs
        self.finding = finding
    }

    /// The finding over `tests` against `budgetSeconds`; `nil` without load tests. A run passes when its p99
    /// (`LoadTestResult.servedP99`) is within the budget, nothing was shed and something was answered.
    public static func judge(_ tests: [LoadTestResult], budgetSeconds: Double) -> LoadHeadroom? {
        guard !tests.isEmpty else { return nil }
        func passes(_ t: LoadTestResult) -> Bool {
            guard t.shed == 0, t.answered > 0, let p99 = t.servedP99 else { return false }
            return p99 <= budgetSeconds
        }
        let budget = CostModel.formatSeconds(budgetSeconds)
        let passing = tests.filter(passes)
        guard let best = passing.max(by: { $0.speed < $1.speed }) else {
            let slowest = tests.min { $0.speed < $1.speed }!
            let why =
                slowest.shed > 0
                ? "\(slowest.shed) requests shed"
                : slowest.servedP99.map { "p99 \(CostModel.formatSeconds($0))" } ?? "nothing answered"
            return LoadHeadroom(
                speed: nil, runs: tests.count,
                finding: "no load test stayed within the \(budget) budget without shedding (at "
                    + "\(CostModel.format(slowest.speed))×: \(why))")
        }
        var finding =
            "holds \(CostModel.format(best.speed))× the recorded traffic: p99 "
            + "\(CostModel.formatSeconds(best.servedP99 ?? 0)) within the \(budget) budget, none shed "
            + "(\(best.label), \(CostModel.format(best.achievedRate)) requests/s)"
        if let failing = tests.filter({ $0.speed > best.speed && !passes($0) }).min(by: { $0.speed < $1.speed }) {
            let why =
                failing.shed > 0
                ? "\(failing.shed) shed" : "p99 \(CostModel.formatSeconds(failing.servedP99 ?? 0))"
            finding += "; at \(CostModel.format(failing.speed))× it did not (\(why))"
        }
        return LoadHeadroom(speed: best.speed, runs: tests.count, finding: finding)
    }
}

extension LatencyAxis {
    /// Shows the load tests beside (never inside) the production percentiles, and judges the headroom.
    mutating func attach(loadTests: [LoadTestResult]) {
        self.loadTests = loadTests.sorted { $0.startedAt > $1.startedAt }
        loadHeadroom = LoadHeadroom.judge(loadTests, budgetSeconds: budgetSeconds)
    }
}
