/// Monthly cost per pattern of a feature whose model is priced per token (an LLM upstream with `pricing.models`
/// prices): what the provider charges for the tokens each pattern sends, not engine time.
///
/// - Real time and async pay the full price for every call: calls × mean tokens per call.
/// - Batch sends every row of a run (read or not) through the provider's batch API at `1 − batch_discount` of the
///   price, and answers the calls the snapshot misses in real time at the full price.
/// - Hybrid is bounded above by the batch precompute of every key plus every call in real time at the full price.
extension CostModel {
    /// Days in an average month (the engine-time model's 30.4).
    public static let daysPerMonth = 30.4

    /// What a feature priced by tokens sends, and the prices.
    public struct TokenVolume: Sendable, Equatable, Codable {
        /// The manifest's model name whose prices apply.
        public var model: String
        public var price: TokenPrice
        /// Tokens per call measured from the request log; `nil` when no answer in the window reported usage.
        public var measured: TokenMeasures?
        /// Tokens per row recorded by batch runs; `nil` when none were recorded (the mean per call stands in).
        public var perBatchRow: TokenCounts?

        public init(model: String, price: TokenPrice, measured: TokenMeasures?, perBatchRow: TokenCounts? = nil) {
            self.model = model
            self.price = price
            self.measured = measured
            self.perBatchRow = perBatchRow
        }

        /// Mean tokens per call (none when nothing was measured).
        public var perCall: TokenCounts { measured?.perCall ?? TokenCounts(input: 0, output: 0) }
        /// Tokens per batch row: recorded by batch runs, else the mean per call.
        public var perRow: TokenCounts { perBatchRow ?? perCall }
    }

    /// The cost of every pattern by tokens, in the order realtime, async, batch, hybrid.
    static func tokenCosts(_ v: Volume, _ t: TokenVolume) -> [PatternCost] {
        let callPrice = t.price.cost(t.perCall)
        let rowPrice = t.price.cost(t.perRow, batch: true)
        let callsPerMonth = v.callsPerDay * daysPerMonth
        let rowsPerMonth = v.batchRowsPerRun * v.runsPerDay * daysPerMonth
        let realtime = callsPerMonth * callPrice
        let runs = rowsPerMonth * rowPrice
        let missShare = max(0, 1 - v.coverage)
        let callTerm =
            "\(format(v.callsPerDay)) calls/day × \(format(daysPerMonth)) days × \(money(callPrice))/call "
            + "(\(tokensText(t.perCall)) per call, \(measuredText(t)), at \(priceText(t.price)))"
        let discount = percent(max(0, min(1, t.price.batchDiscount)))
        let rowSource =
            t.perBatchRow != nil ? "recorded by batch runs" : "the request log's mean per call standing in"
        let runTerm =
            "\(format(v.batchRowsPerRun)) rows/run × \(format(v.runsPerDay)) runs/day × \(format(daysPerMonth)) days "
            + "× \(money(rowPrice))/row (\(tokensText(t.perRow)) per row, \(rowSource), through the provider's "
            + "batch API at \(discount) off)"
        return [
            PatternCost(
                pattern: .realtime, monthly: realtime, coreHoursPerMonth: 0,
                basis: "priced by tokens (\(t.model)): \(callTerm), full price"),
            PatternCost(
                pattern: .async, monthly: realtime, coreHoursPerMonth: 0,
                basis: "priced by tokens (\(t.model)): \(callTerm), full price (a job calls the model like a "
                    + "request; the queue absorbs the peak)"),
            PatternCost(
                pattern: .batch, monthly: runs + missShare * realtime, coreHoursPerMonth: 0,
                basis: "priced by tokens (\(t.model)): \(runTerm); plus \(percent(missShare)) of calls missed and "
                    + "called in real time at full price (\(money(missShare * realtime))/month)"),
            PatternCost(
                pattern: .hybrid, monthly: runs + realtime, coreHoursPerMonth: 0,
                basis: "priced by tokens (\(t.model)), upper bound: batch precompute of every key "
                    + "(\(money(runs))/month: \(runTerm)) plus every call in real time at full price "
                    + "(\(money(realtime))/month)"),
        ]
    }

    /// `812 input + 143 output tokens`.
    public static func tokensText(_ t: TokenCounts) -> String {
        "\(format(t.input)) input + \(format(t.output)) output tokens"
    }

    /// `2.50 input / 10.00 output per 1M tokens`.
    public static func priceText(_ p: TokenPrice) -> String {
        "\(money(p.inputPerMillion)) input / \(money(p.outputPerMillion)) output per 1M tokens"
    }

    /// Where the tokens per call come from.
    static func measuredText(_ t: TokenVolume) -> String {
        guard let m = t.measured else { return "no answer in the window reported token usage" }
        return "mean of \(m.answers) sampled answers that reported usage"
    }
}
