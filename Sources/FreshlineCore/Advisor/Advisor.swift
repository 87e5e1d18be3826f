/// Everything the advisor knows about one feature when it measures: the declaration, the request-log samples
/// of the window, and what the runtime measured (compute time per prediction, latency percentiles per source,
/// the published snapshot's keys).
public struct AdvisorInput: Sendable {
    public var feature: FeatureSpec
    /// Request-log samples of the window, oldest first.
    public var samples: [RequestLogSample]
    /// The end of the window.
    public var now: Double
    /// Engine time per prediction at batch 1 and at the batch runner's batch size.
    public var compute: ComputeCost
    /// Latency percentiles per source (from HDR histograms).
    public var latency: [SourceLatency]
    /// Hashes of the keys a batch would cover: the published snapshot's, or the declared entity set's.
    public var snapshotKeyHashes: Set<String>?
    /// What those keys are, for the evidence (`the published snapshot`, `the entity set accounts.csv`).
    public var keySetLabel = "the published snapshot"
    /// Rows the feature's batch run computes (its entity source), when it has one.
    public var batchRowsPerRun: Double?
    /// The batch schedule's interval, when the feature has one.
    public var refreshIntervalSeconds: Double?
    /// How the feature's answers are compared.
    public var decision: DecisionSpec
    /// Features that compose inputs from this one's snapshot.
    public var consumers: [String] = []
    /// Answers from retained snapshot versions (a sample of keys per version), compared like traffic answers:
    /// what the feature would have answered from a snapshot of each age.
    public var snapshotAnswers: [ShadowAnswer] = []
    /// Tokens per call measured from the request log (answers of an upstream LLM that reported usage); `nil` when
    /// nothing was measured.
    public var tokens: TokenMeasures?
    /// Tokens per row recorded by the feature's batch runs; `nil` when none were recorded (the mean per call from
    /// the request log stands in).
    public var tokensPerBatchRow: TokenCounts?
    /// Serving CPU per answer and batch CPU per row from the process-usage ledger; `nil` when there is no ledger
    /// (the report says serving overhead was not measured).
    public var usage: ServingUsage?
    /// Bytes of the published snapshot version, when it has a file.
    public var snapshotBytes: Double?
    /// The feature's load tests in the window (`LoadTestStore`), shown on the latency axis apart from production.
    public var loadTests: [LoadTestResult] = []
    /// Traffic of a feature served elsewhere, read from an observability stack: when present, its figures replace
    /// the request log's for calls, peak and failure rates (`ObservedTraffic.swift`).
    public var observed: ObservedTraffic?
    /// The cardinality axis declared for a feature served elsewhere that has no request log to measure it from.
    public var declaredCardinality: CardinalityAxis?

    public init(
        feature: FeatureSpec, samples: [RequestLogSample], now: Double, compute: ComputeCost,
        latency: [SourceLatency], snapshotKeyHashes: Set<String>? = nil, batchRowsPerRun: Double? = nil,
        refreshIntervalSeconds: Double? = nil, decision: DecisionSpec = DecisionSpec()
    ) {
        self.feature = feature
        self.samples = samples
        self.now = now
        self.compute = compute
        self.latency = latency
        self.snapshotKeyHashes = snapshotKeyHashes
        self.batchRowsPerRun = batchRowsPerRun
        self.refreshIntervalSeconds = refreshIntervalSeconds
        self.decision = decision
    }
}

/// One answer for one key, for shadow comparison: when it was computed, its decision and its inputs' hashes.
public struct ShadowAnswer: Sendable, Equatable {
    public var keyHash: String
    public var computedAt: Double
    public var decision: DecisionValue
    public var inputHashes: [String: UInt64]

    public init(keyHash: String, computedAt: Double, decision: DecisionValue, inputHashes: [String: UInt64] = [:]) {
        self.keyHash = keyHash
        self.computedAt = computedAt
        self.decision = decision
        self.inputHashes = inputHashes
    }
}

/// Compute time per prediction, measured by the engine.
public struct ComputeCost: Sendable, Equatable, Codable {
    public var realtimeSecondsPerPrediction: Double
    public var batchSecondsPerPrediction: Double
    public var batchSize: Int
    /// How it was measured.
    public var basis: String
    /// The model runs on another server: there is no engine time here (the times are 0), and a feature without
    /// real-time answers has no batch-1 time to stand in for its latency.
    public var upstream = false

    public init(realtimeSecondsPerPrediction: Double, batchSecondsPerPrediction: Double, batchSize: Int, basis: String)
    {
        self.realtimeSecondsPerPrediction = realtimeSecondsPerPrediction
        self.batchSecondsPerPrediction = batchSecondsPerPrediction
        self.batchSize = batchSize
        self.basis = basis
    }

    /// An upstream model's: no engine time on this machine.
    public static func upstream(model: String, batchSize: Int) -> ComputeCost {
        var cost = ComputeCost(
            realtimeSecondsPerPrediction: 0, batchSecondsPerPrediction: 0, batchSize: batchSize,
            basis: "none on this machine (model '\(model)' runs upstream)")
        cost.upstream = true
        return cost
    }
}

/// The advisor: measures the five axes from a feature's traffic, then applies the seed's decision rules in
/// order — the first that matches wins.
public enum Advisor {
    /// Measures the axes, decides, and replays the default what-if scenarios (batch every 6 h and every 24 h).
    public static func advise(
        _ input: AdvisorInput, settings: AdvisorSettings, pricing: Pricing, whatIf: [WhatIfScenario]? = nil
    ) -> FeatureAdvice {
        let axes = measure(input, settings: settings, pricing: pricing)
        var verdict = decide(axes, settings: settings, current: input.feature.pattern)
        let composes = input.feature.compose.map { "\($0.input) ← \($0.feature).\($0.output)" }
        let served = input.samples.filter { $0.outcome != "bad_request" }.count
        if served < minimumSamples, input.observed?.hasTraffic != true {
            let feeding =
                input.consumers.isEmpty ? "" : "; its snapshot feeds \(input.consumers.joined(separator: ", "))"
            let what =
                served == 0
                ? "no sampled requests in the window"
                : "only \(served) sampled requests in the window (a verdict needs \(minimumSamples))"
            verdict = Verdict(
                rule: 0, recommended: input.feature.pattern,
                reason: "\(what): nothing to decide from, the pattern stays\(feeding)", wouldChange: [])
        } else if !composes.isEmpty {
            verdict.reason += "; it already takes \(composes.joined(separator: ", ")) precomputed from snapshots"
            if verdict.recommended == .realtime { verdict.recommended = .hybrid }
        }
        let scenarios =
            whatIf ?? [
                WhatIfScenario(pattern: .batch, everySeconds: 21_600),
                WhatIfScenario(pattern: .batch, everySeconds: 86_400),
            ]
        let replays =
            verdict.rule == 0
            ? []
            : scenarios.map { WhatIf.replay(input, axes: axes, scenario: $0, settings: settings, pricing: pricing) }
        var advice = FeatureAdvice(
            feature: input.feature.name, current: input.feature.pattern, axes: axes, verdict: verdict, whatIf: replays,
            origin: "live traffic")
        advice.composes = composes
        advice.feeds = input.consumers
        advice.findings = findings(input, axes: axes, settings: settings)
        return advice
    }

    /// What the report found besides the verdict: waiting for capacity (a problem more capacity solves, not a
    /// pattern), and a model change inside the window (its own finding, not decisions changing with age).
    static func findings(_ input: AdvisorInput, axes: FeatureAxes, settings: AdvisorSettings) -> [String] {
        var found: [String] = []
        let l = axes.latency
        let endToEnd = l.realtimeP99Seconds
        if l.modelP99Basis.hasPrefix("model time"), endToEnd > l.budgetSeconds, l.modelP99Seconds <= l.budgetSeconds {
            found.append(
                "capacity: the real-time p99 is \(CostModel.formatSeconds(endToEnd)) end to end for a model p99 of "
                    + "\(CostModel.formatSeconds(l.modelP99Seconds)): \(CostModel.formatSeconds(endToEnd - l.modelP99Seconds)) "
                    + "of waiting for compute at the peak. The model fits the \(CostModel.formatSeconds(l.budgetSeconds)) "
                    + "budget; more compute threads or instances (or max_queue_length to shed early) fix this, not a "
                    + "change of pattern")
        } else if l.refusedShare >= settings.failureShareLimit, !l.failsBudget {
            found.append(
                "capacity: \(CostModel.percent(l.refusedShare)) of requests timed out or were shed while the model's p99 "
                    + "(\(CostModel.formatSeconds(l.modelP99Seconds))) fits the \(CostModel.formatSeconds(l.budgetSeconds)) "
                    + "budget: the path lacks capacity at the peak")
        }
        found += versionFindings(input)
        return found
    }

    /// Model versions that answered inside the window, and how many decisions the change of version made (the same
    /// key's last answer of the old version against its first of the new).
    static func versionFindings(_ input: AdvisorInput) -> [String] {
        var firstSeen: [String: Double] = [:]
        var byKey: [String: [(at: Double, version: String, decision: DecisionValue)]] = [:]
        for s in input.samples where s.outcome == "ok" {
            guard let v = s.modelVersion else { continue }
            let at = s.computedAt ?? s.at
            firstSeen[v] = min(firstSeen[v] ?? at, at)
            if let key = s.keyHash, let d = s.decision { byKey[key, default: []].append((at, v, d)) }
        }
        guard firstSeen.count >= 2 else { return [] }
        let versions = firstSeen.sorted { $0.value < $1.value }.map(\.key)
        var result: [String] = []
        for (old, new) in zip(versions, versions.dropFirst()) {
            var pairs = 0
            var changed = 0.0
            for (_, answers) in byKey {
                let sorted = answers.sorted { $0.at < $1.at }
                guard let before = sorted.last(where: { $0.version == old }),
                    let after = sorted.first(where: { $0.version == new && $0.at >= before.at })
                else { continue }
                pairs += 1
                changed +=
                    after.decision.change(
                        from: before.decision, topK: input.decision.topK, tolerance: input.decision.tolerance, scale: 0
                    ).change
            }
            let short = { (v: String) in String(v.prefix(12)) }
            let effect =
                pairs > 0
                ? "it changed \(CostModel.percent(changed / Double(pairs))) of decisions (\(pairs) keys answered by both)"
                : "no key was answered by both versions"
            result.append(
                "model change: version \(short(new)) replaced \(short(old)) inside the window; \(effect). Freshness "
                    + "compares answers of the same version only")
        }
        return result
    }

    /// Sampled requests a verdict needs; fewer give "not enough traffic" (rule 0).
    public static let minimumSamples = 20

    /// The five axes from the samples.
    public static func measure(_ input: AdvisorInput, settings: AdvisorSettings, pricing: Pricing) -> FeatureAxes {
        // Requests refused as the caller's mistake are not demand: they count on the failure axis only.
        let samples = input.samples.filter { $0.outcome != "bad_request" }
        let window = windowText(samples, now: input.now)
        let referenceAge = input.refreshIntervalSeconds ?? settings.referenceAgeSeconds
        let freshness = measureFreshness(
            samples, snapshotAnswers: input.snapshotAnswers, declared: input.feature.maxStaleness.map(\.seconds),
            referenceAge: referenceAge,
            decision: input.decision, settings: settings, window: window)
        // Requests refused before their body was read carry no key: nothing to say about which keys are asked.
        let read = samples.filter { $0.keyHash != nil || ($0.outcome != "shed" && $0.outcome != "timeout") }
        var cardinality =
            input.declaredCardinality
            ?? measureCardinality(
                read, snapshotKeys: input.snapshotKeyHashes, settings: settings, window: window,
                keySetLabel: input.keySetLabel)
        if input.declaredCardinality == nil {
            cardinality.keySetKnown = input.snapshotKeyHashes != nil
            if read.isEmpty, !samples.isEmpty {
                cardinality.predictableBasis = "not measured: every request was refused before its key was read"
            }
        }
        var volumeCardinality = cardinality
        if input.declaredCardinality == nil {
            volumeCardinality.requests = samples.reduce(0) { $0 + 1 / max($1.sampleRate, 1e-9) }
        }
        let cost = measureCost(
            samples, cardinality: volumeCardinality, input: input, settings: settings, pricing: pricing, window: window,
            batchInterval: batchInterval(freshness, input: input, settings: settings))
        var latency = measureLatency(input, settings: settings)
        latency.attach(loadTests: input.loadTests)
        var failure = measureFailure(input.samples, feature: input.feature, window: window)
        if let observed = input.observed { failure = observed.failure(failure) }
        return FeatureAxes(
            freshness: freshness, cardinality: cardinality, cost: cost, latency: latency, failure: failure)
    }

    /// The schedule a batch would need: the feature's own, else the oldest age at which decisions were seen to
    /// hold (at least the reference age, at most a day), else the reference age.
    static func batchInterval(_ f: FreshnessAxis, input: AdvisorInput, settings: AdvisorSettings) -> Double {
        if let interval = input.refreshIntervalSeconds { return interval }
        let reference = f.referenceAgeSeconds
        guard let holds = f.holdsForSeconds, holds >= reference else { return reference }
        return min(86_400, holds)
    }

    // MARK: - Axis 1: decision freshness

    /// Shadow comparison over the request log: for every key, each answer is compared with the answer computed
    /// for the same key at least `A` earlier (and less than the next age), for every age `A` of the ladder.
    static func measureFreshness(
        _ samples: [RequestLogSample], snapshotAnswers: [ShadowAnswer] = [], declared: Double?, referenceAge: Double,
        decision: DecisionSpec,
        settings: AdvisorSettings, window: String
    ) -> FreshnessAxis {
        let ages = settings.ages.filter { $0 > 0 }.sorted()
        var byKey: [String: [(at: Double, decision: DecisionValue, inputs: [String: UInt64])]] = [:]
        // Model answers only: a configured default or a fallback says nothing about how the model's answer ages.
        // Like with like: answers of different model versions are kept apart (a version's change of decisions is
        // its own finding, not an effect of age); answers whose version was not recorded form one group.
        for s in samples where s.outcome == "ok" && s.source != .default && s.source != .fallback {
            guard let key = s.keyHash, let d = s.decision else { continue }
            let group = s.modelVersion.map { "\(key)@\($0)" } ?? key
            byKey[group, default: []].append((s.computedAt ?? s.at, d, s.inputHashes))
        }
        for a in snapshotAnswers { byKey[a.keyHash, default: []].append((a.computedAt, a.decision, a.inputHashes)) }
        // Scores are compared relative to the larger of the old value and half the typical magnitude, so that
        // outputs near zero do not look volatile.
        var norms: [Double] = []
        for answers in byKey.values {
            for a in answers.prefix(4) {
                if case .score(let v) = a.decision { norms.append(v.reduce(0) { $0 + $1 * $1 }.squareRoot()) }
            }
        }
        norms.sort()
        let scale = norms.isEmpty ? 0 : norms[norms.count / 2] / 2
        var change = [Double](repeating: 0, count: ages.count)
        var relative = [Double](repeating: 0, count: ages.count)
        var relativeCount = [Int](repeating: 0, count: ages.count)
        var pairs = [Int](repeating: 0, count: ages.count)
        var unchanged: [String: (same: Int, total: Int)] = [:]
        // One answer per key per slot of half the youngest age, so that hot keys keep answers at every age.
        let slot = max(1, (ages.first ?? 60) / 2)
        for (_, raw) in byKey {
            var answers: [(at: Double, decision: DecisionValue, inputs: [String: UInt64])] = []
            var lastSlot = -Double.infinity
            for a in raw.sorted(by: { $0.at < $1.at }) {
                let s = (a.at / slot).rounded(.down)
                if s == lastSlot { answers[answers.count - 1] = a } else { answers.append(a) }
                lastSlot = s
            }
            if answers.count > 4_096 { answers.removeFirst(answers.count - 4_096) }
            guard answers.count >= 2 else { continue }
            let times = answers.map(\.at)
            for j in 1..<answers.count {
                let now = answers[j]
                for (b, age) in ages.enumerated() {
                    // The latest earlier answer at least `age` old (binary search over the sorted times).
                    var low = 0
                    var high = j
                    while low < high {
                        let mid = (low + high) / 2
                        if now.at - times[mid] >= age { low = mid + 1 } else { high = mid }
                    }
                    let i = low - 1
                    guard i >= 0 else { break }
                    let gap = now.at - answers[i].at
                    let upper = b + 1 < ages.count ? ages[b + 1] : age * 2
                    guard gap < upper else { continue }
                    let c = now.decision.change(
                        from: answers[i].decision, topK: decision.topK, tolerance: decision.tolerance, scale: scale)
                    pairs[b] += 1
                    change[b] += c.change
                    if let r = c.relativeError {
                        relative[b] += r
                        relativeCount[b] += 1
                    }
                    if age <= referenceAge {
                        for (name, hash) in now.inputs {
                            guard let old = answers[i].inputs[name] else { continue }
                            unchanged[name, default: (0, 0)].same += old == hash ? 1 : 0
                            unchanged[name, default: (0, 0)].total += 1
                        }
                    }
                }
            }
        }
        let points = ages.indices.compactMap { b -> FreshnessPoint? in
            guard pairs[b] >= max(1, settings.minPairs) else { return nil }
            return FreshnessPoint(
                ageSeconds: ages[b], pairs: pairs[b], changeRate: change[b] / Double(pairs[b]),
                meanRelativeError: relativeCount[b] > 0 ? relative[b] / Double(relativeCount[b]) : nil)
        }
        let limit = settings.decisionChangeLimit
        var measured: Bool?
        if points.contains(where: { $0.ageSeconds <= referenceAge && $0.changeRate >= limit }) {
            measured = true
        } else if points.contains(where: { $0.ageSeconds >= referenceAge && $0.changeRate < limit }) {
            measured = false
        }
        var holds: Double?
        for p in points {
            guard p.changeRate < limit else { break }
            holds = p.ageSeconds
        }
        let stability = unchanged.filter { $0.value.total >= max(1, settings.minPairs) }
            .map {
                InputStability(
                    input: $0.key, unchangedShare: Double($0.value.same) / Double($0.value.total), pairs: $0.value.total
                )
            }
            .sorted { $0.input < $1.input }
        let ref = CostModel.formatAge(referenceAge)
        let declaredSensitive = declared.map { $0 < referenceAge }
        var note: String?
        let sensitive: Bool
        let basis: String
        if let measured {
            sensitive = measured
            basis = "measured"
            let at =
                measured
                ? points.first { $0.ageSeconds <= referenceAge && $0.changeRate >= limit }!
                : points.first { $0.ageSeconds >= referenceAge && $0.changeRate < limit }!
            let observed =
                "\(CostModel.percent(at.changeRate)) of decisions changed at \(CostModel.formatAge(at.ageSeconds)) (\(at.pairs) pairs)"
            if measured, declaredSensitive != true {
                let d =
                    declared.map { "declared max_staleness \(CostModel.formatAge($0))" } ?? "no max_staleness declared"
                note = "\(d), but \(observed): the measurement wins"
            } else if !measured, declaredSensitive == true, let declared {
                note =
                    "declared max_staleness \(CostModel.formatAge(declared)) is stricter than needed — \(observed): the measurement wins"
            }
        } else if let declaredSensitive {
            sensitive = declaredSensitive
            basis = "declared"
            note =
                "not enough answer pairs at or beyond \(ref) to measure (≥ \(settings.minPairs) per age): the declared max_staleness decides"
        } else {
            sensitive = false
            basis = "none"
            note = "not enough answer pairs at or beyond \(ref) to measure, and no max_staleness declared"
        }
        let compared = pairs.reduce(0, +)
        return FreshnessAxis(
            points: points, referenceAgeSeconds: referenceAge, declaredMaxStalenessSeconds: declared,
            sensitive: sensitive, basis: basis, holdsForSeconds: holds, inputStability: stability, note: note,
            evidence: "\(window); \(compared) answer pairs over \(byKey.count) sampled keys, each answer compared with "
                + "the same key's answer computed one age earlier by the same model version"
                + (snapshotAnswers.isEmpty
                    ? "" : " (traffic and \(snapshotAnswers.count) answers from retained snapshots)")
                + " (\(decisionText(decision)))")
    }

    static func decisionText(_ d: DecisionSpec) -> String {
        let output = d.output.map { "output \($0)" } ?? "the decision output"
        switch d.kind {
        case .label?:
            return "\(output) as a label\(d.threshold.map { " at threshold \(CostModel.format($0))" } ?? ""): flips"
        case .ranking?: return "\(output) as a ranking: 1 − top-\(d.topK) overlap"
        case .score?: return "\(output) as a score: relative error above \(CostModel.percent(d.tolerance))"
        case nil: return output
        }
    }

    // MARK: - Axis 2: input cardinality and predictability

    static func measureCardinality(
        _ samples: [RequestLogSample], snapshotKeys: Set<String>?, settings: AdvisorSettings, window: String,
        keySetLabel: String = "the published snapshot"
    ) -> CardinalityAxis {
        let weight = samples.reduce(0) { $0 + 1 / max($1.sampleRate, 1e-9) }
        let withInputs = samples.reduce(0) { $0 + ($1.hasRequestInputs ? 1 / max($1.sampleRate, 1e-9) : 0) }
        let keyed = samples.filter { $0.keyHash != nil }
        let keyRate = keyed.isEmpty ? 1 : keyed.reduce(0) { $0 + $1.sampleRate } / Double(keyed.count)
        let distinct = Set(keyed.compactMap(\.keyHash))
        let distinctKeys = Double(distinct.count) / max(keyRate, 1e-9)
        var perDay = distinctKeys
        var perDayNeedsScaling = false
        if let last = samples.last?.at, let first = samples.first?.at, last - first >= 86_400 {
            let recent = Set(keyed.filter { $0.at >= last - 86_400 }.compactMap(\.keyHash))
            perDay = Double(recent.count) / max(keyRate, 1e-9)
        } else {
            perDayNeedsScaling = true
        }
        var predictable: Double?
        var basis: String
        if let snapshotKeys {
            basis = "requested keys found in \(keySetLabel)"
            if !keyed.isEmpty {
                predictable = Double(keyed.filter { snapshotKeys.contains($0.keyHash!) }.count) / Double(keyed.count)
            } else if !samples.isEmpty {
                predictable = 0
            }
        } else {
            basis =
                "requests in the window's second half whose key was requested in its first half (a batch over earlier keys)"
            if let first = samples.first?.at, let last = samples.last?.at, last > first {
                let middle = (first + last) / 2
                var known = Set<String>()
                var hits = 0.0
                var total = 0.0
                for s in samples {
                    if s.at < middle {
                        if let k = s.keyHash { known.insert(k) }
                        continue
                    }
                    let w = 1 / max(s.sampleRate, 1e-9)
                    total += w
                    if let k = s.keyHash, known.contains(k) { hits += w }
                }
                if total > 0 { predictable = hits / total }
            }
        }
        // Under a day of traffic: keys seen again do not grow with time, new keys do (linearly).
        if perDayNeedsScaling, let first = samples.first?.at, let last = samples.last?.at, last > first {
            let repeatShare = predictable ?? 0
            perDay = distinctKeys * (repeatShare + (1 - repeatShare) * max(1, 86_400 / (last - first)))
        }
        let inputsShare = weight > 0 ? withInputs / weight : 0
        // Unbounded needs evidence: keyless requests, or a measured share of keys known in advance.
        let knownShare: Double? = keyed.isEmpty ? 0 : predictable
        let unbounded =
            !samples.isEmpty && inputsShare >= settings.unboundedInputShare
            && (knownShare.map { $0 < settings.predictableShare } ?? false)
        if keyed.isEmpty && !samples.isEmpty { basis = "requests carry no entity key: nothing to enumerate" }
        return CardinalityAxis(
            requests: weight, distinctKeys: distinctKeys, distinctKeysPerDay: perDay, requestInputsShare: inputsShare,
            predictableShare: predictable, predictableBasis: basis, unbounded: unbounded,
            evidence: "\(window); \(samples.count) sampled requests (keyed requests sampled by key at "
                + "\(CostModel.percent(keyRate))), \(distinct.count) distinct sampled keys")
    }

    // MARK: - Axis 3: cost × volume

    static func measureCost(
        _ samples: [RequestLogSample], cardinality: CardinalityAxis, input: AdvisorInput, settings: AdvisorSettings,
        pricing: Pricing, window: String, batchInterval: Double? = nil
    ) -> CostAxis {
        var callsPerDay = 0.0
        var peak = 1.0
        var bucket = 10.0
        if let first = samples.first?.at, let last = samples.last?.at, samples.count >= 2, last > first {
            // The span plus one mean interval, so that n evenly spaced samples stand for n intervals.
            let span = (last - first) * Double(samples.count) / Double(samples.count - 1)
            callsPerDay = cardinality.requests / span * 86_400
            bucket = [3_600.0, 300, 60, 10].first { span / $0 >= 12 } ?? 10
            let buckets = max(1, Int((span / bucket).rounded(.up)))
            var counts = [Double](repeating: 0, count: buckets)
            for s in samples {
                counts[min(buckets - 1, Int((s.at - first) / bucket))] += 1 / max(s.sampleRate, 1e-9)
            }
            let mean = cardinality.requests / Double(buckets)
            peak = buckets >= 2 && mean > 0 ? max(1, counts.max()! / mean) : 1
        }
        let o = input.observed
        callsPerDay = o?.callsPerDay ?? callsPerDay
        peak = o?.peakToAverage ?? peak
        bucket = o?.peakBucketSeconds ?? bucket
        let runsPerDay = 86_400 / (batchInterval ?? input.refreshIntervalSeconds ?? 86_400)
        let rows = max(1, input.batchRowsPerRun ?? cardinality.distinctKeysPerDay)
        let coverage = cardinality.predictableShare ?? 0
        let model = modelTimePerAnswer(samples, compute: input.compute)
        var volume = CostModel.Volume(
            callsPerDay: callsPerDay, peakToAverage: peak,
            realtimeSecondsPerPrediction: model.seconds,
            batchSecondsPerPrediction: input.compute.batchSecondsPerPrediction, batchRowsPerRun: rows,
            runsPerDay: runsPerDay, coverage: coverage)
        volume.modelBasis = model.basis
        volume.snapshotBytes = input.snapshotBytes
        if let usage = input.usage {
            volume.servingSecondsPerAnswer = usage.servingSecondsPerAnswer ?? 0
            volume.servingBasis = usage.servingBasis
            if let perRow = usage.batchCPUSecondsPerRow {
                volume.batchCPUSecondsPerRow = perRow
                volume.batchBasis = usage.batchBasis
            } else {
                volume.batchBasis = "engine time per row at batch \(input.compute.batchSize); \(usage.batchBasis)"
            }
        } else if input.observed != nil {
            volume.servingBasis = "not separated: the serving stack's figures stand for the whole request"
            volume.batchBasis = "engine time per row at batch \(input.compute.batchSize)"
        } else {
            volume.servingBasis = "not measured: no process-usage ledger"
            volume.batchBasis = "engine time per row at batch \(input.compute.batchSize)"
        }
        var priced = "compute: \(input.compute.basis)"
        if let price = pricing.models[input.feature.model] {
            volume.tokens = CostModel.TokenVolume(
                model: input.feature.model, price: price, measured: input.tokens, perBatchRow: input.tokensPerBatchRow)
            let measured =
                input.tokens.map {
                    "\(CostModel.tokensText($0.perCall)) per call, the mean of \($0.answers) sampled answers that "
                        + "reported usage"
                } ?? "no sampled answer reported token usage"
            priced =
                "priced by tokens: model \(input.feature.model) at \(CostModel.priceText(price)), "
                + "\(CostModel.percent(price.batchDiscount)) off through the batch API; \(measured)"
        }
        let rowsBasis = input.batchRowsPerRun != nil ? "the entity source's rows" : "distinct keys of a day"
        var axis = CostAxis(
            callsPerDay: callsPerDay, peakToAverage: peak, peakBucketSeconds: bucket,
            realtimeSecondsPerPrediction: input.compute.realtimeSecondsPerPrediction,
            batchSecondsPerPrediction: input.compute.batchSecondsPerPrediction, batchSize: input.compute.batchSize,
            batchRowsPerRun: rows, runsPerDay: runsPerDay,
            costs: CostModel.costs(volume, pricing: pricing, settings: settings),
            evidence: (o?.callsPerDay != nil
                ? o!.volumeEvidence
                : "\(window); calls from \(samples.count) samples weighted by their sampling rate; peak over "
                    + "\(CostModel.formatAge(bucket)) intervals") + "; \(priced); a batch run computes "
                + "\(rowsBasis), every \(CostModel.formatAge(86_400 / runsPerDay)) (the age its decisions were seen "
                + "to hold, or the schedule)")
        axis.tokens = volume.tokens
        axis.batchPaysAtCallsPerDay = CostModel.batchPaysAt(volume, pricing: pricing, settings: settings).map {
            $0 * callsPerDay
        }
        return axis
    }

    /// Model time per computed answer for the cost: the mean over the model calls behind the window's real-time
    /// answers (a call's time shared by its rows) when at least `minimumSamples` recorded it, else the engine's
    /// measurement.
    static func modelTimePerAnswer(_ samples: [RequestLogSample], compute: ComputeCost) -> (
        seconds: Double, basis: String
    ) {
        var total = 0.0
        var weight = 0.0
        var answers = 0
        for s in samples where s.outcome == "ok" && s.source == .realtime {
            guard let seconds = s.computeSeconds, seconds.isFinite, seconds >= 0 else { continue }
            let w = 1 / max(s.sampleRate, 1e-9)
            total += w * seconds / Double(max(1, s.computeRows ?? 1))
            weight += w
            answers += 1
        }
        if answers >= minimumSamples, weight > 0 {
            return (total / weight, "mean of the model calls behind \(answers) sampled real-time answers")
        }
        return (compute.realtimeSecondsPerPrediction, compute.basis)
    }

    // MARK: - Axis 4: tail latency

    static func measureLatency(_ input: AdvisorInput, settings: AdvisorSettings) -> LatencyAxis {
        let budget = input.feature.latencyBudget.seconds
        let realtime = input.latency.first { $0.source == PredictionSource.realtime.rawValue && $0.count > 0 }
        var p99 = realtime?.p99 ?? input.compute.realtimeSecondsPerPrediction
        var basis =
            input.observed?.latency != nil && realtime != nil
            ? input.observed!.latencyBasis
            : realtime.map {
                "measured end to end over \($0.count) real-time answers" + ($0.count < 100 ? " (few: a rough p99)" : "")
            }
                ?? "engine time at batch 1 (no real-time answers in the log)"
        // An upstream model has no engine time here: its async answers (submission to result, queueing included)
        // bound a real-time call's latency from above.
        if realtime == nil, input.compute.upstream {
            if let async = input.latency.first(where: { $0.source == PredictionSource.async.rawValue && $0.count > 0 })
            {
                p99 = async.p99
                basis =
                    "no real-time answers in the log: the p99 of \(async.count) async answers, submission to result "
                    + "(queueing included), bounds it from above"
            } else {
                basis = "not measured: no real-time or async answers in the log, and the model runs upstream"
            }
        }
        // The model's own time: the calls behind real-time answers, queueing excluded.
        let calls = input.samples.filter { $0.outcome == "ok" && $0.source == .realtime }.compactMap(\.computeSeconds)
            .filter { $0.isFinite && $0 >= 0 }.sorted()
        var modelP99: Double
        var modelBasis: String
        if calls.count >= minimumSamples {
            modelP99 = calls[min(calls.count - 1, Int((Double(calls.count) * 0.99).rounded(.up)) - 1)]
            modelBasis =
                "model time of the calls behind \(calls.count) sampled real-time answers (queueing excluded)"
        } else if realtime != nil {
            modelP99 = p99
            modelBasis = "end to end (queueing included, an upper bound): the log recorded no model times"
        } else if input.compute.upstream {
            modelP99 = p99
            modelBasis = basis
        } else {
            modelP99 = input.compute.realtimeSecondsPerPrediction
            modelBasis = "engine time at batch 1 (\(input.compute.basis)): no real-time answers in the log"
        }
        // Requests the real-time path refused: timed out or shed.
        var total = 0.0
        var refused = 0.0
        for s in input.samples where s.outcome != "bad_request" {
            let w = 1 / max(s.sampleRate, 1e-9)
            total += w
            if s.outcome == "timeout" || s.outcome == "shed" { refused += w }
        }
        let refusedShare = total > 0 ? refused / total : 0
        let blocking = input.feature.userBlocking
        let fails = refusedShare >= settings.failureShareLimit && modelP99 > budget
        if fails, realtime == nil {
            modelBasis += "; \(CostModel.percent(refusedShare)) of requests timed out or were shed, none answered"
        }
        var axis = LatencyAxis(
            sources: input.latency, budgetSeconds: budget, userBlocking: blocking, realtimeP99Seconds: p99,
            realtimeP99Basis: basis, overBudget: (blocking && modelP99 > budget) || fails,
            evidence: (input.observed?.latency != nil
                ? "real-time percentiles from the serving stack's histogram (\(input.observed!.source))"
                : "HDR histograms of the sampled requests per source") + "; budget is the feature's latency_budget"
                + (blocking ? " on a user-blocking path" : " (not user-blocking)"))
        axis.modelP99Seconds = modelP99
        axis.modelP99Basis = modelBasis
        axis.refusedShare = refusedShare
        axis.failsBudget = fails
        return axis
    }

    // MARK: - Axis 5: failure mode

    static func measureFailure(_ samples: [RequestLogSample], feature: FeatureSpec, window: String) -> FailureAxis {
        var declared: [String] = []
        switch feature.onFailure {
        case .error: declared.append("fail closed (error)")
        case .defaultValue: declared.append("default value")
        }
        if let batch = feature.batch {
            switch batch.onStale {
            case .fallback: declared.append("stale acceptable")
            case .realtime: declared.append("stale → recompute, then stale value")
            case .error: declared.append("stale refused")
            }
        }
        var total = 0.0
        var counts: [String: Double] = [:]
        for s in samples {
            let w = 1 / max(s.sampleRate, 1e-9)
            total += w
            counts[s.outcome, default: 0] += w
            if s.source == .fallback || s.source == .default { counts["fallback", default: 0] += w }
        }
        func rate(_ key: String) -> Double { total > 0 ? (counts[key] ?? 0) / total : 0 }
        var axis = FailureAxis(
            declared: declared.joined(separator: "; "), errorRate: rate("error"), timeoutRate: rate("timeout"),
            shedRate: rate("shed"), fallbackRate: rate("fallback"),
            evidence: "\(window); outcomes of \(samples.count) sampled requests (shed or timed-out requests that the "
                + "default answered count as fallback answers)")
        axis.rejectedRate = rate("bad_request")
        axis.missRate = rate("unknown_key") + rate("stale")
        return axis
    }

    static func windowText(_ samples: [RequestLogSample], now: Double) -> String {
        guard let first = samples.first?.at, let last = samples.last?.at else { return "no traffic in the window" }
        return
            "traffic over \(CostModel.formatSeconds(max(0, last - first))) ending \(CostModel.formatSeconds(max(0, now - last))) ago"
    }
}
