internal import Foundation

extension Model {
    /// The result of timing repeated runs of one batch.
    public struct Measurement: Sendable {
        /// Rows per call.
        public var batchSize: Int
        /// Calls timed.
        public var calls: Int
        /// Median nanoseconds per call over the timed rounds.
        public var perCallNanoseconds: Double
        /// `perCallNanoseconds / batchSize`.
        public var perRowNanoseconds: Double { perCallNanoseconds / Double(max(batchSize, 1)) }
    }

    /// Runs the model on `feeds` repeatedly for about `seconds` (after a short warm-up) on the calling thread,
    /// in rounds, and reports the median time per call. The advisor uses this for cost per prediction; the
    /// CLI's `model bench` prints it. `limit` bounds the whole measurement, warm-up included, for slow models: past
    /// it no new round starts once one is timed (a model slower than the limit is timed on its warm-up call).
    public func measure(feeds: [String: Tensor], seconds: Double, limit: Double = .infinity) throws -> Measurement {
        let batchSize = feeds.values.first?.shape.first ?? 1
        let clock = ContinuousClock()
        let begin = clock.now
        let cap = limit.isFinite && limit > 0 ? Duration.seconds(limit) : .seconds(1_000_000_000)
        // Warm-up, and a first estimate of the call time to size the rounds.
        var start = clock.now
        var warmupCalls = 0
        repeat {
            _ = try run(feeds)
            warmupCalls += 1
        } while clock.now - start < .milliseconds(100) && warmupCalls < 10_000 && clock.now - begin < cap
        let estimate = (clock.now - start) / warmupCalls
        if clock.now - begin >= cap {
            let (s, atto) = estimate.components
            return Measurement(
                batchSize: batchSize, calls: warmupCalls, perCallNanoseconds: Double(s) * 1e9 + Double(atto) / 1e9)
        }
        let perRound = max(1, Int(Duration.milliseconds(20) / max(estimate, .nanoseconds(1))))
        var rounds: [Double] = []
        var calls = 0
        start = clock.now
        while (clock.now - start < .milliseconds(Int64(seconds * 1000)) || rounds.count < 5)
            && !(rounds.count >= 1 && clock.now - begin >= cap)
        {
            let roundStart = clock.now
            for _ in 0..<perRound { _ = try run(feeds) }
            let elapsed = clock.now - roundStart
            rounds.append(Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9)
            calls += perRound
        }
        rounds.sort()
        return Measurement(
            batchSize: batchSize, calls: calls, perCallNanoseconds: rounds[rounds.count / 2] / Double(perRound))
    }

    /// Random inputs of the declared types with `batchSize` rows, for benchmarks: floats uniform in [-1, 1],
    /// integers in 0..<`integerRange` (valid ids for embedding tables), strings from a small vocabulary.
    /// Variable dimensions other than the first are 1.
    public func syntheticFeeds(batchSize: Int, integerRange: Int = 2, seed: UInt64 = 42) throws -> [String: Tensor] {
        var generator = SplitMix64(seed: seed)
        var feeds: [String: Tensor] = [:]
        for input in metadata.inputs {
            var shape = input.shape ?? [-1]
            if shape.isEmpty { shape = [] } else { shape[0] = batchSize }
            shape = shape.map { $0 < 0 ? 1 : $0 }
            let count = try Shape.elementCount(shape)
            let data: TensorData
            switch input.elementType {
            case .float: data = .float((0..<count).map { _ in Float.random(in: -1...1, using: &generator) })
            case .double: data = .double((0..<count).map { _ in Double.random(in: -1...1, using: &generator) })
            case .int64:
                data = .int64((0..<count).map { _ in Int64.random(in: 0..<Int64(integerRange), using: &generator) })
            case .int32:
                data = .int32((0..<count).map { _ in Int32.random(in: 0..<Int32(integerRange), using: &generator) })
            case .int8:
                data = .int8(
                    (0..<count).map { _ in Int8.random(in: 0..<Int8(clamping: integerRange), using: &generator) })
            case .uint8:
                data = .uint8(
                    (0..<count).map { _ in UInt8.random(in: 0..<UInt8(clamping: integerRange), using: &generator) })
            case .bool: data = .bool((0..<count).map { _ in Bool.random(using: &generator) })
            case .string: data = .string((0..<count).map { _ in ["a", "b", "c"].randomElement(using: &generator)! })
            }
            feeds[input.name] = try Tensor(shape: shape, data: data)
        }
        return feeds
    }
}

/// A small deterministic generator so that benchmark inputs are the same on every run.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
