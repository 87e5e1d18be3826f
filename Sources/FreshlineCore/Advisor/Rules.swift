/// The seed's decision rules, applied in order; the first that matches wins.
///
/// 1. Unbounded input → real time if the model's p99 is under the limit (~500 ms), else async.
/// 2. Staleness changes decisions → real time; hybrid when some inputs are stable per key (precompute those).
/// 3. Too slow (p99 over the budget on a user-blocking path) or too costly at this volume → batch.
/// 4. Otherwise real time; revisit at scale.
extension Advisor {
    /// The verdict for measured (or declared) axes.
    /// The verdict for measured (or declared) axes; `current` is the feature's pattern today.
    public static func decide(_ axes: FeatureAxes, settings: AdvisorSettings, current: ServingPattern = .realtime)
        -> Verdict
    {
        var verdict = apply(axes, settings: settings, skipping: [], current: current)
        verdict.wouldChange = wouldChange(verdict, axes: axes, settings: settings, current: current)
        verdict.notMeasured = notMeasured(axes)
        return verdict
    }

    /// What the rules could not measure, and what stood in for it.
    static func notMeasured(_ axes: FeatureAxes) -> [String] {
        var result: [String] = []
        let f = axes.freshness
        switch f.basis {
        case "none":
            result.append(
                "how long decisions hold (rule 2, rule 3's schedule): too few answer pairs and no max_staleness")
        case "declared": result.append("how long decisions hold: not measured, the declared max_staleness stands in")
        default: break
        }
        if axes.cardinality.predictableShare == nil {
            result.append("which keys were known in advance (rule 1): no keyed traffic to compare")
        }
        let l = axes.latency
        if !l.modelP99Basis.hasPrefix("model time") {
            result.append("the model's p99 (rules 1 and 3): \(l.modelP99Basis)")
        }
        let k = axes.cost
        if k.tokens == nil, let realtime = k.costs.first(where: { $0.pattern == .realtime }),
            realtime.basis.contains("not measured")
        {
            result.append("serving CPU per answer (rule 3's costs): no process-usage ledger in the window")
        }
        return result
    }

    /// The first matching rule, not considering `skipping`.
    static func apply(
        _ axes: FeatureAxes, settings: AdvisorSettings, skipping: Set<Int>, current: ServingPattern = .realtime
    ) -> Verdict {
        let c = axes.cardinality
        let f = axes.freshness
        let l = axes.latency
        let k = axes.cost
        let p99 = CostModel.formatSeconds(l.modelP99Seconds)
        let limit = CostModel.formatSeconds(settings.realtimeP99Limit)
        if !skipping.contains(1), c.unbounded {
            let known =
                c.predictableShare.map { "only \(CostModel.percent($0)) of requested keys were known in advance" }
                ?? "no key could be enumerated in advance"
            let fast = l.modelP99Seconds < settings.realtimeP99Limit
            return Verdict(
                rule: 1, recommended: fast ? .realtime : .async,
                reason: "unbounded input: \(CostModel.percent(c.requestInputsShare)) of requests carry their own "
                    + "inputs and \(known); the model's p99 is \(p99) (\(fast ? "under" : "over") \(limit); "
                    + "\(l.modelP99Basis)), so "
                    + (fast ? "real time" : "async with a webhook or polling"),
                wouldChange: [])
        }
        if !skipping.contains(2), f.sensitive {
            let evidence = freshnessEvidence(f, settings: settings)
            if current == .batch && c.requestInputsShare < 0.05 {
                // Callers send only keys: real time has nothing to compute from. Refresh more often instead.
                let every = f.holdsForSeconds.map { "every \(CostModel.formatAge($0))" } ?? "more often"
                return Verdict(
                    rule: 2, recommended: .batch,
                    reason: "staleness changes decisions (\(evidence)), but callers send only keys, so real time "
                        + "has nothing to compute from: run the batch \(every), or have callers send the inputs and "
                        + "serve it in real time",
                    wouldChange: [])
            }
            let stable = f.inputStability.filter { $0.unchangedShare >= settings.stableInputShare }.map(\.input)
            let changing = f.inputStability.filter { $0.unchangedShare < settings.stableInputShare }.map(\.input)
            if !stable.isEmpty, !changing.isEmpty {
                return Verdict(
                    rule: 2, recommended: .hybrid,
                    reason: "staleness changes decisions (\(evidence)), but only through "
                        + "\(changing.joined(separator: ", ")); \(stable.joined(separator: ", ")) stayed the same per "
                        + "key in ≥ \(CostModel.percent(settings.stableInputShare)) of pairs: precompute those in "
                        + "batch and compose them with the request-time signals in real time",
                    wouldChange: [], precompute: stable, requestTime: changing)
            }
            return Verdict(
                rule: 2, recommended: .realtime, reason: "staleness changes decisions: \(evidence)", wouldChange: [])
        }
        if !skipping.contains(3), l.overBudget {
            // Too slow: whether or not answers exist to pair (a path that refuses everything has none).
            // Unmeasured (every request refused before its key was read): a declared entity set says the keys are
            // enumerable; without one, nothing does.
            let known = c.predictableShare ?? (c.keySetKnown ? 1 : 0)
            let enumerable = known >= settings.predictableShare
            let why =
                l.failsBudget
                ? "\(CostModel.percent(l.refusedShare)) of requests timed out or were shed: the model's p99 "
                    + "\(p99) (\(l.modelP99Basis)) does not fit the \(CostModel.formatSeconds(l.budgetSeconds)) budget"
                : "the model's p99 \(p99) (\(l.modelP99Basis)) exceeds the "
                    + "\(CostModel.formatSeconds(l.budgetSeconds)) budget on a user-blocking path"
            if !enumerable {
                return Verdict(
                    rule: 3, recommended: .async,
                    reason: "too slow for real time: \(why); only \(CostModel.percent(known)) of requested keys were "
                        + "known in advance, so a batch cannot precompute them: async with a webhook or polling",
                    wouldChange: [])
            }
            let hold =
                f.basis == "none"
                ? "how long decisions hold was not measured: set the schedule from max_staleness"
                : "decisions hold for \(holdText(f))"
            return Verdict(
                rule: 3, recommended: .batch,
                reason: "too slow for real time: \(why); "
                    + (c.predictableShare == nil
                        ? "the keys are enumerable (\(c.predictableBasis); the entity set is declared)"
                        : "\(CostModel.percent(known)) of requested keys were known in advance")
                    + ", so a snapshot can serve them; \(hold) (batch every "
                    + "\(CostModel.formatAge(86_400 / max(k.runsPerDay, 1e-9))))",
                wouldChange: [])
        }
        if !skipping.contains(3) && f.basis != "none" {
            let schedule = "batch every \(CostModel.formatAge(86_400 / max(k.runsPerDay, 1e-9)))"
            let realtimeCost = k.monthly(.realtime) ?? 0
            let batchCost = k.monthly(.batch) ?? 0
            if CostModel.batchPays(k.costs, callsPerDay: k.callsPerDay, settings: settings) {
                return Verdict(
                    rule: 3, recommended: .batch,
                    reason: "too costly at this volume: \(CostModel.format(k.callsPerDay)) calls/day "
                        + "(≥ \(CostModel.format(settings.minCallsPerDay))); real time costs "
                        + "\(CostModel.money(realtimeCost))/month against \(CostModel.money(batchCost)) for batch "
                        + "(\(ratioText(realtimeCost, batchCost)), \(schedule)): batch saves "
                        + "\(CostModel.money(realtimeCost - batchCost))/month (≥ \(CostModel.money(settings.minMonthlySaving))); "
                        + "decisions hold for \(holdText(f))",
                    wouldChange: [])
            }
        }
        if f.basis == "none" {
            return Verdict(
                rule: 4, recommended: .realtime,
                reason: "bounded input, but how long decisions hold was not measured (too few answer pairs) and no "
                    + "max_staleness is declared: batch is not recommended without that evidence; real time is "
                    + "simplest (\(CostModel.format(k.callsPerDay)) calls/day, p99 \(p99))",
                wouldChange: [])
        }
        let realtimeCost = k.monthly(.realtime) ?? 0
        let batchCost = k.monthly(.batch) ?? 0
        let saving =
            k.batchSaving > 0
            ? "batch would save \(CostModel.money(k.batchSaving))/month (\(ratioText(realtimeCost, batchCost)))"
            : "batch would cost \(CostModel.money(-k.batchSaving))/month more (\(CostModel.money(batchCost)) against "
                + "\(CostModel.money(realtimeCost)))"
        return Verdict(
            rule: 4, recommended: .realtime,
            reason: "bounded input, decisions hold for \(holdText(f)), \(CostModel.format(k.callsPerDay)) calls/day; "
                + "\(saving), not worth a pipeline (rule 3 needs ≥ \(CostModel.format(settings.minCallsPerDay)) "
                + "calls/day, \(CostModel.format(settings.minCostRatio))× and \(CostModel.money(settings.minMonthlySaving))"
                + "/month saved); the model's p99 \(p99) is within the \(CostModel.formatSeconds(l.budgetSeconds)) "
                + "budget: real time is simplest; revisit at scale",
            wouldChange: [])
    }

    /// What would change the verdict, with the numbers.
    static func wouldChange(
        _ v: Verdict, axes: FeatureAxes, settings: AdvisorSettings, current: ServingPattern = .realtime
    ) -> [String] {
        let next = apply(axes, settings: settings, skipping: Set(1...max(1, v.rule)), current: current)
        let then = "rule \(next.rule) applies (\(next.recommended.rawValue))"
        let c = axes.cardinality
        let f = axes.freshness
        let k = axes.cost
        var result: [String] = []
        switch v.rule {
        case 1:
            result.append(
                "if ≥ \(CostModel.percent(settings.predictableShare)) of requested keys were known in advance (now "
                    + "\(c.predictableShare.map(CostModel.percent) ?? "none")), \(then)")
            if v.recommended == .realtime {
                result.append(
                    "if the model's p99 exceeded \(CostModel.formatSeconds(settings.realtimeP99Limit)) (now "
                        + "\(CostModel.formatSeconds(axes.latency.modelP99Seconds))), async")
            } else {
                result.append(
                    "if the model's p99 fell under \(CostModel.formatSeconds(settings.realtimeP99Limit)), real time")
            }
        case 2:
            let ref = CostModel.formatAge(f.referenceAgeSeconds)
            result.append(
                "if fewer than \(CostModel.percent(settings.decisionChangeLimit)) of decisions changed at \(ref), \(then)"
            )
        case 3:
            if axes.latency.overBudget {
                result.append("if the model's p99 fell within the budget, \(then)")
            } else {
                result.append(
                    "below \(CostModel.format(settings.minCallsPerDay)) calls/day (now \(CostModel.format(k.callsPerDay))), "
                        + "or with a saving under \(CostModel.money(settings.minMonthlySaving))/month (now "
                        + "\(CostModel.money(k.batchSaving))), \(then)")
            }
        default:
            if f.basis == "none" {
                result.append(
                    "with ≥ \(settings.minPairs) answer pairs at \(CostModel.formatAge(f.referenceAgeSeconds)) "
                        + "(or a declared max_staleness), rules 2 and 3 could decide")
                return result
            }
            // Costs step with whole instances: the volume at which rule 3's cost test holds, searched.
            if let calls = k.batchPaysAtCallsPerDay, k.callsPerDay > 0 {
                result.append(
                    "at \(CostModel.format(calls / k.callsPerDay))× volume (\(CostModel.format(calls)) calls/day), "
                        + "rule 3 applies (batch)")
            }
            if !f.sensitive {
                result.append(
                    "if decisions changed in ≥ \(CostModel.percent(settings.decisionChangeLimit)) of answers at "
                        + "\(CostModel.formatAge(f.referenceAgeSeconds)), rule 2 applies (real time)")
            }
        }
        return result
    }

    static func freshnessEvidence(_ f: FreshnessAxis, settings: AdvisorSettings) -> String {
        if f.basis == "measured" || f.basis == "sheet",
            let p = f.points.first(where: {
                $0.ageSeconds <= f.referenceAgeSeconds && $0.changeRate >= settings.decisionChangeLimit
            })
        {
            return "\(CostModel.percent(p.changeRate)) of decisions changed at \(CostModel.formatAge(p.ageSeconds)) "
                + "(\(p.pairs) pairs; limit \(CostModel.percent(settings.decisionChangeLimit)) at "
                + "\(CostModel.formatAge(f.referenceAgeSeconds)))"
        }
        if let declared = f.declaredMaxStalenessSeconds {
            return "declared max_staleness \(CostModel.formatAge(declared)) is under "
                + "\(CostModel.formatAge(f.referenceAgeSeconds)) (not measured)"
        }
        return "declared"
    }

    static func holdText(_ f: FreshnessAxis) -> String {
        if let holds = f.holdsForSeconds, let p = f.points.last(where: { $0.ageSeconds <= holds }) {
            return "≥ \(CostModel.formatAge(holds)) (\(CostModel.percent(p.changeRate)) changed, \(p.pairs) pairs)"
        }
        return f.basis == "declared" ? "the declared max_staleness" : "an unmeasured time"
    }

    static func ratioText(_ a: Double, _ b: Double) -> String {
        b > 0 ? "\(CostModel.format(a / b))×" : "batch is free at these prices"
    }
}
