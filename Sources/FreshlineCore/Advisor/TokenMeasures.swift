/// Input and output tokens: one call's or row's, or a mean of many.
public struct TokenCounts: Sendable, Equatable, Codable {
    /// Input (prompt) tokens.
    public var input: Double
    /// Output (completion) tokens.
    public var output: Double

    public init(input: Double, output: Double) {
        self.input = input
        self.output = output
    }
}

/// An LLM feature's tokens per call, measured from the request log: the mean over the sampled answers that
/// reported usage (real-time and async answers of an upstream model), each weighted by its sampling rate's inverse.
public struct TokenMeasures: Sendable, Equatable, Codable {
    /// Mean tokens per answered call.
    public var perCall: TokenCounts
    /// Sampled answers that reported usage.
    public var answers: Int

    public init(perCall: TokenCounts, answers: Int) {
        self.perCall = perCall
        self.answers = answers
    }

    /// The mean over `samples` that carry both token counts; `nil` when none does.
    public static func measure(_ samples: [RequestLogSample]) -> TokenMeasures? {
        var weight = 0.0
        var input = 0.0
        var output = 0.0
        var answers = 0
        for s in samples {
            guard let i = s.inputTokens, let o = s.outputTokens else { continue }
            let w = 1 / max(s.sampleRate, 1e-9)
            weight += w
            input += w * Double(i)
            output += w * Double(o)
            answers += 1
        }
        guard answers > 0 else { return nil }
        return TokenMeasures(perCall: TokenCounts(input: input / weight, output: output / weight), answers: answers)
    }
}
