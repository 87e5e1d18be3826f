extension FeatureMap.Entry {
    /// Advice for a feature served elsewhere: the same five axes and rules as for a served feature, over the
    /// answers of its requests file (`samples`, with their latency percentiles `latency`), the stack's traffic
    /// figures (`observed`) and the map's declarations. `origin` of the result says where the numbers came from.
    /// `whatIf` replays the requests (default: batch every 6 h and 24 h); without requests there is no replay.
    public func advise(
        mapPath: String, samples: [RequestLogSample], latency: [SourceLatency], observed: ObservedTraffic?,
        requestsOrigin: String?, now: Double, settings: AdvisorSettings, pricing: Pricing,
        whatIf: [WhatIfScenario]? = nil
    ) -> FeatureAdvice {
        let input = advisorInput(
            mapPath: mapPath, samples: samples, latency: latency, observed: observed, now: now)
        // A replay needs the answers of a request log.
        var advice = Advisor.advise(input, settings: settings, pricing: pricing, whatIf: samples.isEmpty ? [] : whatIf)
        advice.axes.failure.declared = failureMode ?? "not declared (\(origin(mapPath)))"
        if samples.isEmpty {
            advice.axes.freshness.evidence =
                "no requests file to compare answers: "
                + (maxStalenessSeconds.map { "the declared max_staleness \(CostModel.formatAge($0))" }
                    ?? "no max_staleness declared") + " (\(origin(mapPath)))"
        }
        advice.origin = ([observed?.source, requestsOrigin].compactMap { $0 } + ["declarations \(origin(mapPath))"])
            .joined(separator: "; ")
        return advice
    }

    /// The advisor's input: a `FeatureSpec` from the declarations, compute time declared (or the stack's CPU per
    /// answer), the stack's latency percentiles in place of the requests file's real-time ones.
    func advisorInput(
        mapPath: String, samples: [RequestLogSample], latency: [SourceLatency], observed: ObservedTraffic?,
        now: Double
    ) -> AdvisorInput {
        let location = SourceLocation(file: mapPath, line: line, keyPath: "features.\(name)")
        var feature = FeatureSpec(
            name: name, model: "(served elsewhere)", pattern: pattern,
            maxStaleness: maxStalenessSeconds.map { .milliseconds(Int64(($0 * 1000).rounded())) },
            latencyBudget: .milliseconds(Int64((latencyBudgetSeconds * 1000).rounded())), userBlocking: userBlocking,
            location: location)
        feature.decision = decision
        var sources = latency
        if let measured = observed?.latency {
            sources.removeAll { $0.source == measured.source }
            sources.append(measured)
            sources.sort { $0.source < $1.source }
        }
        var input = AdvisorInput(
            feature: feature, samples: samples, now: now, compute: compute(mapPath: mapPath, observed: observed),
            latency: sources, batchRowsPerRun: entities, refreshIntervalSeconds: refreshSeconds, decision: decision)
        input.observed = observed
        if samples.isEmpty { input.declaredCardinality = declaredCardinality(mapPath: mapPath, observed: observed) }
        return input
    }

    /// Compute time per prediction: declared, else the serving process's CPU per answer, else unknown (0).
    func compute(mapPath: String, observed: ObservedTraffic?) -> ComputeCost {
        if let ms = msPerPrediction {
            let batch = batchMsPerPrediction ?? ms / 5
            return ComputeCost(
                realtimeSecondsPerPrediction: ms / 1000, batchSecondsPerPrediction: batch / 1000, batchSize: 0,
                basis: "declared ms_per_prediction \(CostModel.format(ms)) ms (\(origin(mapPath))), "
                    + "\(CostModel.format(batch)) ms in batch"
                    + (batchMsPerPrediction == nil ? " (assumed a fifth of batch 1)" : ""))
        }
        if let cpu = observed?.cpuSecondsPerAnswer {
            return ComputeCost(
                realtimeSecondsPerPrediction: cpu, batchSecondsPerPrediction: cpu / 5, batchSize: 0,
                basis: "process CPU per answer \(CostModel.formatSeconds(cpu)) from \(observed!.source)"
                    + (observed!.queries["cpu"].map { " (\($0))" } ?? "")
                    + " (serving overhead included), a fifth of it in batch (assumed)")
        }
        return ComputeCost(
            realtimeSecondsPerPrediction: 0, batchSecondsPerPrediction: 0, batchSize: 0,
            basis: "not known: declare ms_per_prediction or cpu_seconds in \(origin(mapPath)) (costs are 0)")
    }

    /// Without a requests file: entities and unbounded input as declared; without entities, every call of a day is
    /// assumed a distinct key.
    func declaredCardinality(mapPath: String, observed: ObservedTraffic?) -> CardinalityAxis {
        let unbounded = unboundedInput ?? false
        let calls = observed?.callsPerDay ?? 0
        let keys = entities ?? calls
        return CardinalityAxis(
            requests: observed?.requests ?? 0, distinctKeys: keys, distinctKeysPerDay: keys,
            requestInputsShare: unbounded ? 1 : 0, predictableShare: unbounded ? 0 : 1,
            predictableBasis: "declared unbounded_input \(unbounded ? "yes" : "no") (\(origin(mapPath)))",
            unbounded: unbounded,
            evidence: "no requests file: "
                + (entities.map { "declared entities \(CostModel.format($0))" }
                    ?? "no entities declared, every call of a day taken as a distinct key") + " (\(origin(mapPath)))")
    }
}
