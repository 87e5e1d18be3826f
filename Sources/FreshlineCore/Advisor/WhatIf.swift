/// A pattern and schedule to replay the request log under.
public struct WhatIfScenario: Sendable, Equatable, Codable {
    public var pattern: ServingPattern
    /// The batch interval (batch and hybrid).
    public var everySeconds: Double?

    public init(pattern: ServingPattern, everySeconds: Double? = nil) {
        self.pattern = pattern
        self.everySeconds = everySeconds
    }

    /// `batch every 6h`, `realtime`.
    public var label: String {
        everySeconds.map { "\(pattern.rawValue) every \(CostModel.formatAge($0))" } ?? pattern.rawValue
    }

    /// Parses `realtime`, `async`, `batch:6h`, `hybrid:24h` (a batch or hybrid without an interval runs daily).
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let first = parts.first, let pattern = ServingPattern(rawValue: first) else { return nil }
        var every: Double?
        if parts.count == 2 {
            guard let d = DurationText.parse(parts[1]), d > .zero else { return nil }
            every = d.seconds
        } else if pattern == .batch || pattern == .hybrid {
            every = 86_400
        }
        self.init(pattern: pattern, everySeconds: every)
    }
}

/// What the recorded traffic would have seen under a scenario.
public struct WhatIfResult: Sendable, Equatable, Codable {
    public var scenario: WhatIfScenario
    public var label: String
    /// Requests the projection stands for (weighted samples after the first interval).
    public var requests: Double
    /// Share answered from the snapshot.
    public var hitRate: Double?
    public var servedAgeP50: Double?
    public var servedAgeP95: Double?
    public var servedAgeMax: Double?
    /// Projected share of decisions that differ from a fresh answer (from the measured decision-change curve).
    public var decisionChangeRate: Double?
    public var latencyP50: Double?
    public var latencyP99: Double?
    public var monthlyCost: Double
    public var notes: [String]
}

/// Replays the recorded request log under another pattern and schedule.
public enum WhatIf {
    public static func replay(
        _ input: AdvisorInput, axes: FeatureAxes, scenario: WhatIfScenario, settings: AdvisorSettings,
        pricing: Pricing
    ) -> WhatIfResult {
        let samples = input.samples.filter { $0.outcome != "bad_request" }
        let cost = axes.cost
        let realtime = axes.latency.sources.first { $0.source == PredictionSource.realtime.rawValue }
        let lookup = axes.latency.sources.first { $0.source == PredictionSource.batch.rawValue }
        var notes: [String] = []
        func monthly(_ pattern: ServingPattern, runsPerDay: Double, coverage: Double) -> Double {
            var v = CostModel.Volume(
                callsPerDay: cost.callsPerDay, peakToAverage: cost.peakToAverage,
                realtimeSecondsPerPrediction: cost.realtimeSecondsPerPrediction,
                batchSecondsPerPrediction: cost.batchSecondsPerPrediction, batchRowsPerRun: cost.batchRowsPerRun,
                runsPerDay: runsPerDay, coverage: coverage)
            v.tokens = cost.tokens
            return CostModel.costs(v, pricing: pricing, settings: settings).first { $0.pattern == pattern }?.monthly
                ?? 0
        }
        guard let every = scenario.everySeconds, scenario.pattern == .batch || scenario.pattern == .hybrid else {
            let weight = samples.reduce(0) { $0 + 1 / max($1.sampleRate, 1e-9) }
            // Without real-time answers, what the latency axis stands in with: the engine's batch-1 time, or for an
            // upstream model priced by tokens, its async answers' p99.
            let standIn = cost.tokens == nil ? cost.realtimeSecondsPerPrediction : axes.latency.realtimeP99Seconds
            if realtime == nil {
                notes.append(
                    cost.tokens == nil
                        ? "no real-time latency measured; the engine's batch-1 time stands in"
                        : "no real-time latency measured; \(axes.latency.realtimeP99Basis)")
            }
            return WhatIfResult(
                scenario: scenario, label: scenario.label, requests: weight, hitRate: nil, servedAgeP50: 0,
                servedAgeP95: 0, servedAgeMax: 0, decisionChangeRate: 0,
                latencyP50: scenario.pattern == .async ? nil : realtime?.p50 ?? standIn,
                latencyP99: scenario.pattern == .async ? nil : realtime?.p99 ?? standIn,
                monthlyCost: monthly(scenario.pattern, runsPerDay: cost.runsPerDay, coverage: 0), notes: notes)
        }
        guard let first = samples.first?.at else {
            return WhatIfResult(
                scenario: scenario, label: scenario.label, requests: 0, hitRate: nil, servedAgeP50: nil,
                servedAgeP95: nil, servedAgeMax: nil, decisionChangeRate: nil, latencyP50: nil, latencyP99: nil,
                monthlyCost: monthly(.batch, runsPerDay: 86_400 / every, coverage: 0),
                notes: ["no traffic in the window"])
        }
        // Runs at first + k·every. Samples before the first run have nothing to be served from: they only teach
        // the key set (unless the published snapshot's keys are known).
        var seen = Set<String>()
        var ages: [Double] = []
        var hits = 0.0
        var total = 0.0
        var changed = 0.0
        var cursor = 0
        let sorted = samples  // `AdvisorInput.samples` are oldest first
        for s in sorted where s.at >= first + every {
            let lastRun = first + (((s.at - first) / every).rounded(.down)) * every
            while cursor < sorted.count && sorted[cursor].at < lastRun {
                if let k = sorted[cursor].keyHash { seen.insert(k) }
                cursor += 1
            }
            let w = 1 / max(s.sampleRate, 1e-9)
            total += w
            guard let key = s.keyHash else { continue }
            let known = input.snapshotKeyHashes?.contains(key) ?? seen.contains(key)
            guard known else { continue }
            hits += w
            let age = s.at - lastRun
            ages.append(age)
            changed += w * changeRate(at: age, axes.freshness.points)
        }
        let runsPerDay = 86_400 / every
        guard total > 0 else {
            notes.append(
                "the log spans \(CostModel.formatSeconds((sorted.last?.at ?? first) - first)); replaying a run every "
                    + "\(CostModel.formatAge(every)) needs more traffic than one interval")
            return WhatIfResult(
                scenario: scenario, label: scenario.label, requests: 0, hitRate: nil, servedAgeP50: nil,
                servedAgeP95: nil, servedAgeMax: nil, decisionChangeRate: nil, latencyP50: nil, latencyP99: nil,
                monthlyCost: monthly(.batch, runsPerDay: runsPerDay, coverage: axes.cardinality.predictableShare ?? 0),
                notes: notes)
        }
        ages.sort()
        let hitRate = hits / total
        func age(_ q: Double) -> Double? { ages.isEmpty ? nil : ages[min(ages.count - 1, Int(q * Double(ages.count)))] }
        if axes.freshness.points.isEmpty {
            notes.append("no decision-change curve measured: the projected change rate is unknown")
        } else if let oldest = axes.freshness.points.last?.ageSeconds, let max = ages.last, max > oldest * 2 {
            notes.append("served ages beyond \(CostModel.formatAge(oldest)) use the change rate measured there")
        }
        if lookup == nil, hitRate > 0 { notes.append("no lookup latency measured yet (no batch answers in the log)") }
        let missShare = 1 - hitRate
        let p50 = missShare > 0.5 ? realtime?.p50 : lookup?.p50
        let p99 = missShare > 0.01 ? realtime?.p99 : lookup?.p99
        if missShare > 0.01, realtime == nil {
            notes.append("no real-time latency measured for the \(CostModel.percent(missShare)) that would miss")
        }
        return WhatIfResult(
            scenario: scenario, label: scenario.label, requests: total, hitRate: hitRate, servedAgeP50: age(0.5),
            servedAgeP95: age(0.95), servedAgeMax: ages.last,
            decisionChangeRate: axes.freshness.points.isEmpty || hits == 0 ? nil : changed / hits,
            latencyP50: p50, latencyP99: p99,
            monthlyCost: monthly(scenario.pattern, runsPerDay: runsPerDay, coverage: hitRate), notes: notes)
    }

    /// The decision-change rate at `age`, interpolated on the measured curve (0 at age 0; the oldest measured
    /// rate beyond it).
    static func changeRate(at age: Double, _ points: [FreshnessPoint]) -> Double {
        guard let firstPoint = points.first else { return 0 }
        if age <= firstPoint.ageSeconds { return firstPoint.changeRate * age / firstPoint.ageSeconds }
        for (a, b) in zip(points, points.dropFirst()) where age <= b.ageSeconds {
            let t = (age - a.ageSeconds) / (b.ageSeconds - a.ageSeconds)
            return a.changeRate + t * (b.changeRate - a.changeRate)
        }
        return points.last!.changeRate
    }
}
