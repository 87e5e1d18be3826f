/// What a feature whose model is priced per token (an LLM upstream with `pricing.models` prices) sends: the
/// provider's charge for the tokens is a term of every pattern's cost (`CostModel.costs`).
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
