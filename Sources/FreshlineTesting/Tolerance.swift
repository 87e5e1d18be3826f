/// How close a computed number must be to a reference: `|actual − expected| ≤ absolute + relative·|expected|`.
/// NaN matches only NaN; infinities match only themselves.
public struct Tolerance: Sendable {
    /// The relative part, scaled by the expected magnitude.
    public var relative: Double
    /// The absolute part, for values near zero.
    public var absolute: Double

    /// Makes a tolerance.
    public init(relative: Double, absolute: Double) {
        self.relative = relative
        self.absolute = absolute
    }

    /// The parity bar against onnxruntime: 1e-5 relative to magnitude (and 1e-5 absolute below 1).
    public static let parity = Tolerance(relative: 1e-5, absolute: 1e-5)
    /// The ONNX backend test runner's default (rtol 1e-3, atol 1e-7).
    public static let onnxBackend = Tolerance(relative: 1e-3, absolute: 1e-7)

    /// Whether `actual` is close enough to `expected`.
    public func accepts(_ actual: Double, _ expected: Double) -> Bool {
        if expected.isNaN || actual.isNaN { return expected.isNaN && actual.isNaN }
        if expected.isInfinite || actual.isInfinite { return expected == actual }
        return abs(actual - expected) <= absolute + relative * abs(expected)
    }
}
