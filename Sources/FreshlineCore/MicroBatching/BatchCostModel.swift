/// Estimates how long one model call takes for a batch of `n` rows, as `a·n + b`.
///
/// `a` is the marginal cost of a row and `b` the fixed cost of a call (dispatch, weight loads, thread
/// hand-off). The split matters to the batcher: `b` is what batching saves, so it decides whether
/// waiting for company pays, and `a·n + b` decides how many rows still meet a deadline.
///
/// The model starts from a *prior* (the runtime can measure one at warm-up, e.g. by timing a 1-row
/// and a full-size call) and then fits `a` and `b` by ordinary least squares over the last `window`
/// finished batches (a ring buffer, 50 by default), so it follows changes in the machine's load. This
/// is BentoML's approach.
///
/// A line through points that all share the same `n` (or nearly so) has an undetermined slope: a few
/// microseconds of timing noise between batches of 1 and 2 rows would set `a` to anything. So the
/// slope is only fitted once the window holds at least ``minimumSamplesForSlope`` batches whose row
/// counts have a variance of at least ``minimumRowVariance`` (a standard deviation of one row). Until
/// then the model keeps the prior's `a` and fits only `b` (the mean of `duration - a·n`), which makes
/// the estimate exact around the row counts actually seen, the ones that matter at that load.
///
/// Both coefficients are clamped to be non-negative. When the free fit would make one negative, the
/// model refits with that coefficient pinned at zero (a flat line through the mean, or a line through
/// the origin) rather than just clipping it, so the estimate stays close to the data.
public struct BatchCostModel: Sendable, Equatable {
    /// The cost of a batch: `perRow · n + perBatch`.
    public struct Coefficients: Sendable, Equatable {
        /// The marginal cost of one row (`a`).
        public var perRow: Duration
        /// The fixed cost of one call, whatever its size (`b`); what batching saves.
        public var perBatch: Duration

        /// Makes coefficients; negative values are treated as zero.
        public init(perRow: Duration, perBatch: Duration) {
            self.perRow = max(perRow, .zero)
            self.perBatch = max(perBatch, .zero)
        }

        /// `perRow · rows + perBatch` (rows below zero count as zero).
        public func estimate(rows: Int) -> Duration {
            perRow * max(rows, 0) + perBatch
        }
    }

    /// Where the current coefficients come from.
    public enum FitKind: Sendable, Equatable {
        /// No batch recorded yet: the prior as given.
        case prior
        /// Too little spread in the batch sizes to fit a slope: the prior's `a`, or less if the
        /// observed durations are shorter than `a·n` alone; `b` fitted.
        case interceptOnly
        /// Both `a` and `b` fitted by least squares.
        case full
    }

    /// The fewest recorded batches before the slope is fitted.
    public static let minimumSamplesForSlope = 3
    /// The least variance of the recorded row counts (in rows²) before the slope is fitted.
    public static let minimumRowVariance = 1.0

    /// The coefficients used before any batch is recorded; the source of `a` while the fit is degenerate.
    public let prior: Coefficients
    /// How many recent batches the fit uses.
    public let window: Int
    /// The coefficients in use now.
    public private(set) var coefficients: Coefficients
    /// Where ``coefficients`` come from.
    public private(set) var fitKind: FitKind = .prior

    private var sampleRows: [Int] = []
    private var sampleSeconds: [Double] = []
    /// Where the next sample goes once the ring is full.
    private var nextSlot = 0

    /// Makes a model that starts at `prior` and fits over the last `window` batches (at least 1).
    public init(prior: Coefficients, window: Int = 50) {
        self.prior = prior
        self.window = max(window, 1)
        self.coefficients = prior
        sampleRows.reserveCapacity(self.window)
        sampleSeconds.reserveCapacity(self.window)
    }

    /// How many batches the current fit uses (at most ``window``).
    public var sampleCount: Int { sampleRows.count }

    /// The estimated duration of a batch of `rows` rows.
    public func estimate(rows: Int) -> Duration {
        coefficients.estimate(rows: rows)
    }

    /// Records a finished batch and refits. Batches of fewer than one row are ignored; a negative
    /// duration counts as zero.
    public mutating func record(rows: Int, duration: Duration) {
        guard rows >= 1 else { return }
        let seconds = max(duration.seconds, 0)
        guard seconds.isFinite else { return }
        if sampleRows.count < window {
            sampleRows.append(rows)
            sampleSeconds.append(seconds)
        } else {
            sampleRows[nextSlot] = rows
            sampleSeconds[nextSlot] = seconds
            nextSlot = (nextSlot + 1) % window
        }
        refit()
    }

    private mutating func refit() {
        let count = sampleRows.count
        guard count > 0 else {
            coefficients = prior
            fitKind = .prior
            return
        }
        var sumX = 0.0
        var sumY = 0.0
        for i in 0..<count {
            sumX += Double(sampleRows[i])
            sumY += sampleSeconds[i]
        }
        let meanX = sumX / Double(count)
        let meanY = sumY / Double(count)
        // Centred sums for the free fit, raw sums for the fit through the origin.
        var sxx = 0.0
        var sxy = 0.0
        var rawXX = 0.0
        var rawXY = 0.0
        for i in 0..<count {
            let x = Double(sampleRows[i])
            let y = sampleSeconds[i]
            sxx += (x - meanX) * (x - meanX)
            sxy += (x - meanX) * (y - meanY)
            rawXX += x * x
            rawXY += x * y
        }

        var a: Double
        var b: Double
        if count >= Self.minimumSamplesForSlope, sxx / Double(count) >= Self.minimumRowVariance {
            a = sxy / sxx
            b = meanY - a * meanX
            if a < 0 {
                // Bigger batches were not slower: the best line with a = 0 is the mean.
                a = 0
                b = meanY
            } else if b < 0 {
                // The best line with b = 0 goes through the origin.
                b = 0
                a = rawXY / rawXX
            }
            fitKind = .full
        } else {
            a = prior.perRow.seconds
            b = meanY - a * meanX
            if b < 0 {
                // The prior's `a` alone overshoots what was measured: scale it down to match instead.
                b = 0
                a = meanY / meanX
            }
            fitKind = .interceptOnly
        }
        coefficients = Coefficients(perRow: Self.duration(seconds: a), perBatch: Self.duration(seconds: b))
    }

    private static func duration(seconds: Double) -> Duration {
        guard seconds.isFinite, seconds > 0 else { return .zero }
        return .nanoseconds(Int64((min(seconds, 1e9) * 1e9).rounded()))
    }
}
