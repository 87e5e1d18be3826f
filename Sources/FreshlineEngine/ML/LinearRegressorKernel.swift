/// `LinearRegressor`: `X·Wᵀ + b` for `targets` outputs, in single precision whatever the input type.
///
/// As in onnxruntime, the intercepts are used only when there is one per target, and with a single target
/// the only post transform applied is PROBIT.
struct LinearRegressorKernel: Kernel {
    let coefficients: [Float]
    let intercepts: [Float]?
    let targets: Int
    let postTransform: PostTransform

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        let a = MLAttributes(context)
        let coefficients = try a.floats("coefficients")
        let intercepts = try a.floats("intercepts")
        let targets = try a.int("targets", default: 1)
        guard !coefficients.isEmpty else { throw context.error(.invalidArgument, "coefficients must not be empty") }
        guard targets > 0, targets <= coefficients.count else {
            throw context.error(.invalidArgument, "targets must be in [1, \(coefficients.count)], got \(targets)")
        }
        return LinearRegressorKernel(
            coefficients: coefficients, intercepts: intercepts.count == targets ? intercepts : nil,
            targets: targets, postTransform: try PostTransform.parse(context))
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let tensor = try inputs.tensor(0, "LinearRegressor")
        guard tensor.rank <= 2 else {
            throw EngineError(
                .invalidShape, "LinearRegressor: input X must have rank 1 or 2, got shape \(tensor.shape)")
        }
        let x = try FeatureMatrix(tensor.rank == 0 ? tensor.reshaped([1]) : tensor, op: "LinearRegressor")
        let n = x.rows
        let f = x.columns
        let (needed, overflow) = f.multipliedReportingOverflow(by: targets)
        guard !overflow, needed <= coefficients.count else {
            throw EngineError(
                .invalidShape,
                "LinearRegressor: \(coefficients.count) coefficients do not cover \(targets) targets × \(f) features")
        }
        _ = try Shape.elementCount([n, targets])
        var y = LinearScores.compute(
            x.floatValues, rows: n, features: f, targets: targets, coefficients: coefficients,
            intercepts: intercepts)
        if targets == 1 {
            if postTransform == .probit {
                for i in y.indices { y[i] = PostTransform.probit(y[i]) }
            }
        } else if postTransform != .none {
            let c = targets
            y.withUnsafeMutableBufferPointer { buffer in
                for r in 0..<n {
                    postTransform.applyToRow(UnsafeMutableBufferPointer(rebasing: buffer[(r * c)..<(r * c + c)]))
                }
            }
        }
        return [.tensor(Tensor(unchecked: [n, targets], .float(y)))]
    }
}
