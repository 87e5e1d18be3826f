/// Monthly cost per pattern from volume and measured compute time, priced with the manifest's `pricing`.
///
/// - Real time is provisioned for the peak: cores = calls/s × peak-to-average × seconds per prediction at batch 1
///   ÷ target utilisation, on demand, every hour of the month.
/// - Batch computes every row of a run (read or not) at the runner's batch size on spot capacity, and answers the
///   keys it does not cover in real time.
/// - Async computes each call at batch 1 on demand; the queue absorbs the peak, so there is no headroom.
/// - Hybrid is bounded above by batch precompute of every key plus real-time composition of every call.
public enum CostModel {
    /// Hours in an average month.
    public static let hoursPerMonth = 730.0

    public struct Volume: Sendable, Equatable {
        public var callsPerDay: Double
        public var peakToAverage: Double
        public var realtimeSecondsPerPrediction: Double
        public var batchSecondsPerPrediction: Double
        public var batchRowsPerRun: Double
        public var runsPerDay: Double
        /// Share of calls a batch snapshot would answer (the rest are computed in real time).
        public var coverage: Double
        /// For a feature priced by tokens (its model has `pricing.models` prices): the tokens and prices; `nil`
        /// prices engine time.
        public var tokens: TokenVolume?

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

    /// The cost of every pattern, in the order realtime, async, batch, hybrid: by tokens when `v.tokens` is set,
    /// else by engine time.
    public static func costs(_ v: Volume, pricing: Pricing, settings: AdvisorSettings) -> [PatternCost] {
        if let tokens = v.tokens { return tokenCosts(v, tokens) }
        let price = pricing.coreHour
        let utilization = max(0.05, min(1, settings.targetUtilization))
        let realtimeCores =
            v.callsPerDay / 86_400 * max(1, v.peakToAverage) * v.realtimeSecondsPerPrediction / utilization
        let realtimeHours = realtimeCores * hoursPerMonth
        let asyncHours = v.callsPerDay * 30.4 * v.realtimeSecondsPerPrediction / 3_600
        let batchHours = v.batchRowsPerRun * v.runsPerDay * 30.4 * v.batchSecondsPerPrediction / 3_600
        let spot = 1 - max(0, min(1, pricing.spotDiscount))
        let missShare = max(0, 1 - v.coverage)
        let batchMonthly = batchHours * price * spot + missShare * realtimeHours * price
        let peak = format(max(1, v.peakToAverage))
        return [
            PatternCost(
                pattern: .realtime, monthly: realtimeHours * price, coreHoursPerMonth: realtimeHours,
                basis: "\(format(v.callsPerDay)) calls/day × \(peak) peak-to-average × "
                    + "\(formatSeconds(v.realtimeSecondsPerPrediction))/prediction at batch 1 ÷ "
                    + "\(format(utilization)) utilisation, on demand"),
            PatternCost(
                pattern: .async, monthly: asyncHours * price, coreHoursPerMonth: asyncHours,
                basis: "\(format(v.callsPerDay)) calls/day × \(formatSeconds(v.realtimeSecondsPerPrediction))"
                    + "/prediction, queue absorbs the peak, on demand"),
            PatternCost(
                pattern: .batch, monthly: batchMonthly, coreHoursPerMonth: batchHours + missShare * realtimeHours,
                basis: "\(format(v.batchRowsPerRun)) rows/run × \(format(v.runsPerDay)) runs/day × "
                    + "\(formatSeconds(v.batchSecondsPerPrediction))/prediction in batches, "
                    + "\(format(pricing.spotDiscount * 100))% spot discount; "
                    + "\(format(missShare * 100))% of calls missed and computed in real time"),
            PatternCost(
                pattern: .hybrid, monthly: batchHours * price * spot + realtimeHours * price,
                coreHoursPerMonth: batchHours + realtimeHours,
                basis: "upper bound: batch precompute of every key plus real-time composition of every call"),
        ]
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
