/// Monthly cost per pattern in money people recognise: the capacity a pattern keeps on, what its work consumes, and
/// what it takes to operate (docs/advisor.md, "Axis 3").
///
/// - Every pattern that answers requests keeps serving instances on: at least `pricing.min_instances`, more when
///   the peak needs them (calls/s × peak-to-average × CPU per answer ÷ target utilisation, in whole instances).
///   CPU per answer is the serving process's (HTTP, JSON, scheduling: measured from process CPU over answers) plus
///   the model's time for a computed answer; a lookup costs the serving part only.
/// - Batch adds its runs (every row of a run, read or not, at the runs' measured CPU per row on spot capacity),
///   the snapshot's storage, and a fixed operational cost per batch feature (`pricing.batch_overhead_per_month`).
/// - Async adds its workers (always on, sized for the mean: the queue absorbs the peak) and four store writes a job.
/// - Hybrid is bounded above by real-time capacity for every call plus the batch terms.
/// - A model priced by tokens pays its provider per call (full price) or per batch row (the batch API's discount)
///   on top; its model time is not on this machine.
public enum CostModel {
    /// Hours in an average month.
    public static let hoursPerMonth = 730.0
    /// Store writes of one async job: submitted, leased, finished, delivered.
    public static let writesPerJob = 4.0
    /// Bytes per key of a snapshot whose size is not known yet (before its first run).
    public static let estimatedBytesPerKey = 64.0

    public struct Volume: Sendable, Equatable, Codable {
        public var callsPerDay: Double
        public var peakToAverage: Double
        /// Model time per answer computed at request time (batch 1), in seconds of CPU.
        public var realtimeSecondsPerPrediction: Double
        /// Model time per row at the batch runner's batch size (stands in when runs' CPU was not measured).
        public var batchSecondsPerPrediction: Double
        public var batchRowsPerRun: Double
        public var runsPerDay: Double
        /// Share of calls a batch snapshot would answer (the rest are computed in real time).
        public var coverage: Double
        /// For a feature priced by tokens (its model has `pricing.models` prices): the tokens and prices; `nil`
        /// prices engine time.
        public var tokens: TokenVolume?
        /// CPU seconds the serving process spends per answer besides the model (HTTP, JSON, scheduling, logging).
        public var servingSecondsPerAnswer: Double = 0
        /// Where that comes from, for the report.
        public var servingBasis = "not measured"
        /// Where the model time per answer comes from.
        public var modelBasis = "engine time"
        /// CPU seconds per row measured over batch runs; `nil`: the engine's time per row stands in.
        public var batchCPUSecondsPerRow: Double?
        /// Where the runs' CPU per row comes from.
        public var batchBasis = "engine time per row in batches"
        /// Bytes of one snapshot version; `nil`: estimated at `estimatedBytesPerKey` per row.
        public var snapshotBytes: Double?

        public init(
            callsPerDay: Double, peakToAverage: Double, realtimeSecondsPerPrediction: Double,
            batchSecondsPerPrediction: Double, batchRowsPerRun: Double, runsPerDay: Double, coverage: Double
        ) {
            self.callsPerDay = callsPerDay
            self.peakToAverage = peakToAverage
            self.realtimeSecondsPerPrediction = realtimeSecondsPerPrediction
            self.batchSecondsPerPrediction = batchSecondsPerPrediction
            self.batchRowsPerRun = batchRowsPerRun
            self.runsPerDay = runsPerDay
            self.coverage = coverage
        }
    }

    /// The cost of every pattern, in the order realtime, async, batch, hybrid, each as a sum of terms.
    public static func costs(_ v: Volume, pricing: Pricing, settings: AdvisorSettings) -> [PatternCost] {
        let p = Prices(pricing, settings: settings)
        let calls = finite(v.callsPerDay)
        let callsPerSecond = calls / 86_400
        let peak = max(1, finite(v.peakToAverage))
        let coverage = max(0, min(1, finite(v.coverage)))
        let miss = 1 - coverage
        let serving = finite(v.servingSecondsPerAnswer)
        let modelTime = v.tokens == nil ? finite(v.realtimeSecondsPerPrediction) : 0
        let answerCPU = serving + modelTime
        let cpuText =
            v.tokens == nil
            ? "\(formatSeconds(answerCPU)) CPU/answer (\(formatSeconds(serving)) serving, \(v.servingBasis); "
                + "\(formatSeconds(modelTime)) model, \(v.modelBasis))"
            : "\(formatSeconds(serving)) CPU/answer serving (\(v.servingBasis)); the model runs upstream"
        let peakText = "\(format(calls)) calls/day × \(format(peak)) peak-to-average"

        // Real time: instances for the peak, every call computed.
        let realtimeCapacity = p.instances(
            cores: callsPerSecond * peak * answerCPU / p.utilization, "real-time serving",
            need: "\(peakText) × \(cpuText) ÷ \(format(p.utilization)) utilisation")
        var realtime = [realtimeCapacity]
        // Batch: lookups for covered calls and real time for missed ones, on the serving tier that exists anyway
        // (priced by the core-hours they use, no floor of their own: the floor is a real-time model path's).
        let lookupCPU = coverage * serving + miss * answerCPU
        var batch = [
            p.coreHours(
                cores: callsPerSecond * peak * lookupCPU / p.utilization, "serving lookups",
                need: "\(peakText) × \(formatSeconds(lookupCPU)) CPU/answer (\(percent(coverage)) answered from the "
                    + "snapshot at \(formatSeconds(serving)), \(percent(miss)) missed and computed in real time) ÷ "
                    + "\(format(p.utilization)) utilisation")
        ]
        let rowsPerMonth = finite(v.batchRowsPerRun) * finite(v.runsPerDay) * daysPerMonth
        let rowsText =
            "\(format(v.batchRowsPerRun)) rows/run × \(format(v.runsPerDay)) runs/day × \(format(daysPerMonth)) days"
        var runTerms: [CostTerm] = []
        if v.tokens == nil {
            let perRow = finite(v.batchCPUSecondsPerRow ?? v.batchSecondsPerPrediction)
            let hours = rowsPerMonth * perRow / 3_600
            runTerms.append(
                CostTerm(
                    name: "batch runs", monthly: hours * p.coreHour * p.spot, coreHours: hours,
                    basis: "\(rowsText) × \(formatSeconds(perRow)) CPU/row (\(v.batchBasis)) = \(format(hours)) "
                        + "core-hours at \(money(p.coreHour))/core-hour, \(percent(1 - p.spot)) spot discount"))
        }
        let bytes = v.snapshotBytes ?? finite(v.batchRowsPerRun) * estimatedBytesPerKey
        let copies = 2 * Double(p.minInstances + 1)
        let gigabytes = bytes / 1e9 * copies
        runTerms.append(
            CostTerm(
                name: "snapshot storage", monthly: gigabytes * p.storage, coreHours: 0,
                basis: "\(formatBytes(bytes)) a version\(v.snapshotBytes == nil ? " (estimated at 64 B a key)" : "") × "
                    + "2 retained × \(Int(copies / 2)) copies (the store and each always-on instance) at "
                    + "\(money(p.storage))/GB-month"))
        runTerms.append(
            CostTerm(
                name: "pipeline operations", monthly: p.overhead, coreHours: 0,
                basis: "pricing.batch_overhead_per_month: schedules, failed runs, backfills, source changes"))
        // Async: intake at the peak, workers for the mean, store writes per job.
        let intakeCPU = 2 * serving
        var async = [
            p.coreHours(
                cores: callsPerSecond * peak * intakeCPU / p.utilization, "serving submissions and results",
                need: "\(peakText) × \(formatSeconds(intakeCPU)) CPU/job (submit and fetch) ÷ "
                    + "\(format(p.utilization)) utilisation"),
            p.instances(
                cores: callsPerSecond * answerCPU / p.utilization, "async workers", floor: p.asyncMinWorkers,
                floorName: "pricing.async_min_workers",
                need: "\(format(calls)) calls/day at the mean (the queue absorbs the peak) × \(cpuText) ÷ "
                    + "\(format(p.utilization)) utilisation"),
        ]
        let writes = calls * daysPerMonth * writesPerJob
        async.append(
            CostTerm(
                name: "store writes", monthly: writes / 1e6 * p.writePrice, coreHours: 0,
                basis: "\(format(calls)) jobs/day × \(format(daysPerMonth)) days × \(format(writesPerJob)) writes at "
                    + "\(money(p.writePrice))/1M writes"))
        var hybrid = [realtimeCapacity] + runTerms
        if let t = v.tokens {
            let callPrice = t.price.cost(t.perCall)
            let rowPrice = t.price.cost(t.perRow, batch: true)
            let callTokens = CostTerm(
                name: "tokens", monthly: calls * daysPerMonth * callPrice, coreHours: 0,
                basis: "priced by tokens (\(t.model)): \(format(calls)) calls/day × \(format(daysPerMonth)) days × "
                    + "\(money(callPrice))/call (\(tokensText(t.perCall)) per call, \(measuredText(t)), at "
                    + "\(priceText(t.price))), full price")
            let rowSource =
                t.perBatchRow != nil ? "recorded by batch runs" : "the request log's mean per call standing in"
            let runTokens = CostTerm(
                name: "batch tokens", monthly: rowsPerMonth * rowPrice, coreHours: 0,
                basis: "priced by tokens (\(t.model)): \(rowsText) × \(money(rowPrice))/row (\(tokensText(t.perRow)) "
                    + "per row, \(rowSource), through the provider's batch API at "
                    + "\(percent(max(0, min(1, t.price.batchDiscount)))) off)")
            var missed = callTokens
            missed.name = "missed-call tokens"
            missed.monthly *= miss
            missed.basis = "\(percent(miss)) of calls missed and called in real time at full price"
            realtime.append(callTokens)
            async.append(callTokens)
            batch.append(contentsOf: [runTokens, missed])
            hybrid.append(contentsOf: [runTokens, callTokens])
        }
        batch += runTerms
        return [
            PatternCost(pattern: .realtime, terms: realtime),
            PatternCost(pattern: .async, terms: async),
            PatternCost(pattern: .batch, terms: batch),
            PatternCost(
                pattern: .hybrid, terms: hybrid,
                note: "upper bound: real-time capacity for every call plus the batch precompute of every key"),
        ]
    }

    /// The smallest multiple of today's calls at which rule 3's cost branch would hold (at least
    /// `min_calls_per_day`, real time ≥ `min_cost_ratio` × batch and ≥ `min_monthly_saving` more), searched up to
    /// 10⁶×; `nil` when it does not hold within that (the batch terms grow with volume as fast as real time's).
    public static func batchPaysAt(_ v: Volume, pricing: Pricing, settings: AdvisorSettings) -> Double? {
        func holds(_ m: Double) -> Bool {
            var scaled = v
            scaled.callsPerDay = v.callsPerDay * m
            return batchPays(
                costs(scaled, pricing: pricing, settings: settings), callsPerDay: scaled.callsPerDay,
                settings: settings)
        }
        guard v.callsPerDay > 0 else { return nil }
        var high = 1.0
        while !holds(high) {
            high *= 2
            if high > 1e6 { return nil }
        }
        var low = high / 2
        if high == 1 { return 1 }
        for _ in 0..<40 where high / low > 1.001 {
            let mid = (low * high).squareRoot()
            if holds(mid) { high = mid } else { low = mid }
        }
        return high
    }

    /// Rule 3's cost test: busy enough, and batch cheaper by both the ratio and the saving.
    public static func batchPays(_ costs: [PatternCost], callsPerDay: Double, settings: AdvisorSettings) -> Bool {
        let realtime = costs.first { $0.pattern == .realtime }?.monthly ?? 0
        let batch = costs.first { $0.pattern == .batch }?.monthly ?? 0
        return callsPerDay >= settings.minCallsPerDay && realtime >= settings.minCostRatio * batch
            && realtime - batch >= settings.minMonthlySaving
    }

    /// The prices and floors, range-checked.
    struct Prices {
        var coreHour: Double
        var instanceHour: Double
        var instanceCores: Double
        var minInstances: Int
        var asyncMinWorkers: Int
        var utilization: Double
        var spot: Double
        var storage: Double
        var overhead: Double
        var writePrice: Double

        init(_ pricing: Pricing, settings: AdvisorSettings) {
            coreHour = max(0, finite(pricing.coreHour))
            instanceHour = max(0, finite(pricing.instanceHourPrice))
            instanceCores = max(0.125, finite(pricing.instanceCores))
            minInstances = max(0, pricing.minInstances)
            asyncMinWorkers = max(0, pricing.asyncMinWorkers)
            utilization = max(0.05, min(1, finite(settings.targetUtilization)))
            spot = 1 - max(0, min(1, finite(pricing.spotDiscount)))
            storage = max(0, finite(pricing.storageGBMonth))
            overhead = max(0, finite(pricing.batchOverheadPerMonth))
            writePrice = max(0, finite(pricing.storeWritePerMillion))
        }

        /// `cores` all month on the shared serving tier, on demand.
        func coreHours(cores: Double, _ name: String, need: String) -> CostTerm {
            let hours = finite(cores) * hoursPerMonth
            return CostTerm(
                name: name, monthly: hours * coreHour, coreHours: hours,
                basis: "\(format(finite(cores))) cores on the serving tier at \(money(coreHour))/core-hour (\(need))")
        }

        /// Whole instances for `cores` at the peak, at least the floor.
        func instances(
            cores: Double, _ name: String, floor: Int? = nil, floorName: String = "pricing.min_instances",
            need: String
        ) -> CostTerm {
            let least = floor ?? minInstances
            let needed = finite(cores)
            let count = max(Double(least), min(1e9, (needed / instanceCores).rounded(.up)))
            let monthly = count * instanceHour * hoursPerMonth
            let reason =
                count > Double(least)
                ? "the peak needs \(format(needed)) cores"
                : "\(floorName) \(least); the load needs \(format(needed)) cores"
            return CostTerm(
                name: name, monthly: monthly, coreHours: count * instanceCores * hoursPerMonth,
                basis:
                    "\(format(count)) instance\(count == 1 ? "" : "s") of \(format(instanceCores)) cores always on at "
                    + "\(money(instanceHour))/hour (\(reason): \(need))")
        }
    }

    static func finite(_ x: Double) -> Double { x.isFinite ? max(0, x) : 0 }

    /// Bytes for sentences: `812 B`, `1.6 MB`, `3.2 GB`.
    public static func formatBytes(_ bytes: Double) -> String {
        if bytes >= 1e9 { return trim(bytes / 1e9) + " GB" }
        if bytes >= 1e6 { return trim(bytes / 1e6) + " MB" }
        if bytes >= 1e3 { return trim(bytes / 1e3) + " kB" }
        return trim(bytes) + " B"
    }

    /// A number for sentences: no more than three significant digits, thousands separated.
    public static func format(_ value: Double) -> String {
        guard value.isFinite else { return "∞" }
        let magnitude = abs(value)
        if magnitude >= 1e15 { return "\(value)" }
        if magnitude >= 1e12 { return trim(value / 1e12) + "T" }
        if magnitude >= 1_000_000_000 { return trim(value / 1_000_000_000) + "G" }
        if magnitude >= 1_000_000 { return trim(value / 1_000_000) + "M" }
        if magnitude >= 10_000 { return trim(value / 1_000) + "k" }
        if magnitude >= 100 { return String(Int(value.rounded())) }
        return trim(value)
    }

    /// Seconds for sentences: `2.3 µs`, `4.1 ms`, `1.2 s`.
    public static func formatSeconds(_ seconds: Double) -> String {
        if seconds < 1e-3 { return trim(seconds * 1e6) + " µs" }
        if seconds < 1 { return trim(seconds * 1e3) + " ms" }
        if seconds < 120 { return trim(seconds) + " s" }
        if seconds < 7_200 { return trim(seconds / 60) + " min" }
        if seconds < 172_800 { return trim(seconds / 3_600) + " h" }
        return trim(seconds / 86_400) + " d"
    }

    /// An age for sentences: `1m`, `6h`, `7d`.
    public static func formatAge(_ seconds: Double) -> String {
        if seconds >= 86_400, seconds.truncatingRemainder(dividingBy: 86_400) == 0 {
            return "\(Int(seconds / 86_400))d"
        }
        if seconds >= 3_600, seconds.truncatingRemainder(dividingBy: 3_600) == 0 { return "\(Int(seconds / 3_600))h" }
        if seconds >= 60, seconds.truncatingRemainder(dividingBy: 60) == 0 { return "\(Int(seconds / 60))m" }
        return formatSeconds(seconds)
    }

    /// A share as a percentage: `37%`, `0.4%`.
    public static func percent(_ share: Double) -> String {
        let p = share * 100
        if p != 0, abs(p) < 1 { return trim(p) + "%" }
        return String(Int(p.rounded())) + "%"
    }

    /// A money amount: `1240`, `12.40`, and two significant digits below a cent (`0.0031`, `0.00000044`).
    public static func money(_ amount: Double) -> String {
        guard amount.isFinite else { return "∞" }
        if amount >= 1e9 { return format(amount) }
        if amount >= 100 { return String(Int(amount.rounded())) }
        if amount >= 0.01 || amount <= 0 { return fixed(amount, 2) }
        var digits = 2
        var scaled = amount * 100
        while scaled < 10 && digits < 15 {
            scaled *= 10
            digits += 1
        }
        return fixed(amount, digits)
    }

    private static func trim(_ v: Double) -> String {
        let a = abs(v)
        let digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.01 ? 3 : 5
        var text = fixed(v, digits)
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text
    }

    /// `value` with `digits` decimals, without Foundation.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e15 else { return "\(value)" }
        let whole = Int64(scaled)
        let sign = value < 0 && whole != 0 ? "-" : ""
        guard digits > 0 else { return sign + String(whole) }
        let divisor = Int64(scale)
        var fraction = String(whole % divisor)
        fraction = String(repeating: "0", count: digits - fraction.count) + fraction
        return sign + String(whole / divisor) + "." + fraction
    }
}
