internal import Foundation

/// The score transform of the ai.onnx.ml classifiers and regressors (`post_transform`).
///
/// The arithmetic follows onnxruntime's `ml_common.h` exactly: every transform is computed in single precision
/// (even for double scores), PROBIT uses the same closed-form approximation of the inverse error function, and
/// SOFTMAX_ZERO leaves (near-)zero scores out of the normalisation.
enum PostTransform: Sendable, Equatable {
    case none
    case logistic
    case softmax
    case softmaxZero
    case probit

    /// Parses the string form of ai.onnx.ml opsets 1–3 (`"NONE"`, `"LOGISTIC"`, …).
    init(name: String, context: NodeContext) throws {
        switch name {
        case "NONE": self = .none
        case "LOGISTIC": self = .logistic
        case "SOFTMAX": self = .softmax
        case "SOFTMAX_ZERO": self = .softmaxZero
        case "PROBIT": self = .probit
        default:
            throw context.error(.invalidArgument, "unknown post_transform '\(name)'")
        }
    }

    /// Parses the integer form of ai.onnx.ml opset 5 (`TreeEnsemble`). The ONNX documentation lists 1 as SOFTMAX
    /// and 2 as LOGISTIC, but onnxruntime — the reference this engine matches — reads 1 as LOGISTIC and 2 as
    /// SOFTMAX (its own enum order), so this does too: 0 NONE, 1 LOGISTIC, 2 SOFTMAX, 3 SOFTMAX_ZERO, 4 PROBIT.
    init(code: Int, context: NodeContext) throws {
        switch code {
        case 0: self = .none
        case 1: self = .logistic
        case 2: self = .softmax
        case 3: self = .softmaxZero
        case 4: self = .probit
        default:
            throw context.error(.invalidArgument, "unknown post_transform \(code)")
        }
    }

    /// Reads the `post_transform` string attribute (default NONE).
    static func parse(_ context: NodeContext) throws -> PostTransform {
        try PostTransform(name: try context.attributes.string("post_transform", default: "NONE"), context: context)
    }

    // MARK: - Single-precision math, as onnxruntime computes it

    /// `static_cast<float>(M_PI)`: the nearest float to π (Swift's `Float.pi` is rounded down instead).
    private static let pi = Float(Double.pi)
    /// `static_cast<float>(M_SQRT2)`.
    private static let sqrt2 = Float(2.0.squareRoot())

    /// The logistic function, evaluated on |v| for stability.
    @inline(__always)
    static func logistic(_ v: Float) -> Float {
        let e = 1 / (1 + Foundation.exp(-abs(v)))
        return v < 0 ? 1 - e : e
    }

    /// onnxruntime's approximation of the inverse error function (Winitzki's formula, a = 0.147).
    static func erfInv(_ value: Float) -> Float {
        let sign: Float = value < 0 ? -1 : 1
        let x = (1 - value) * (1 + value)
        let lg = Foundation.log(x)
        let v = 2 / (pi * 0.147) + 0.5 * lg
        let v2 = 1 / Float(0.147) * lg
        let v3 = -v + (v * v - v2).squareRoot()
        return sign * v3.squareRoot()
    }

    /// The probit function √2·erfinv(2v − 1).
    @inline(__always)
    static func probit(_ v: Float) -> Float {
        sqrt2 * erfInv(2 * v - 1)
    }

    /// Softmax over `values` in place, shifted by the maximum for stability.
    static func softmax(_ values: UnsafeMutableBufferPointer<Float>) {
        var maximum = -Float.greatestFiniteMagnitude
        for v in values where v > maximum { maximum = v }
        var sum: Float = 0
        for i in values.indices {
            let e = Foundation.exp(values[i] - maximum)
            values[i] = e
            sum += e
        }
        for i in values.indices { values[i] = values[i] / sum }
    }

    /// Softmax that keeps scores within ±1e-7 of zero out of the sum (they become `v·e^(−max)` instead).
    static func softmaxZero(_ values: UnsafeMutableBufferPointer<Float>) {
        var maximum = -Float.greatestFiniteMagnitude
        for v in values where v > maximum { maximum = v }
        let expNegMax = Foundation.exp(-maximum)
        var sum: Float = 0
        let epsilon: Float = 0.0000001
        for i in values.indices {
            let v = values[i]
            if v > epsilon || v < -epsilon {
                let e = Foundation.exp(v - maximum)
                values[i] = e
                sum += e
            } else {
                values[i] = v * expNegMax
            }
        }
        for i in values.indices { values[i] = values[i] / sum }
    }

    /// SOFTMAX_ZERO on double scores, as onnxruntime computes it for double-precision trees: the maximum, the
    /// exponentials and their sum in single precision, the scaling of near-zero scores and the final division
    /// in double precision.
    static func softmaxZero(doubles values: UnsafeMutableBufferPointer<Double>) {
        var maximum = -Float.greatestFiniteMagnitude
        for v in values where Float(v) > maximum { maximum = Float(v) }
        let expNegMax = Foundation.exp(-maximum)
        var sum: Float = 0
        let epsilon: Float = 0.0000001
        for i in values.indices {
            let v = Float(values[i])
            if v > epsilon || v < -epsilon {
                let e = Foundation.exp(v - maximum)
                values[i] = Double(e)
                sum += e
            } else {
                values[i] = values[i] * Double(expNegMax)
            }
        }
        for i in values.indices { values[i] = values[i] / Double(sum) }
    }

    /// Applies the transform to one row of two or more scores, in place (onnxruntime's `write_scores` for
    /// `scores.size() >= 2`).
    func applyToRow(_ values: UnsafeMutableBufferPointer<Float>) {
        switch self {
        case .none: break
        case .logistic: for i in values.indices { values[i] = Self.logistic(values[i]) }
        case .probit: for i in values.indices { values[i] = Self.probit(values[i]) }
        case .softmax: Self.softmax(values)
        case .softmaxZero: Self.softmaxZero(values)
        }
    }
}
