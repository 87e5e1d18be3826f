/// `LinearClassifier`: scores `X·Wᵀ + b` per class, the label of the best class, and the post transform, in
/// single precision whatever the input type (as onnxruntime computes it).
///
/// With one coefficient row and two labels the model is binary: the label is `labels[1]` when the raw score
/// is positive, and the scores become two columns `[1 − p, p]`, where `p` is the logistic of the score under
/// LOGISTIC and the raw score otherwise (PROBIT keeps onnxruntime's layout: the probits of all rows packed at the
/// start of the output). With one row and no labels the labels are 1 and 0 and a single column is returned.
struct LinearClassifierKernel: Kernel {
    let coefficients: [Float]
    let intercepts: [Float]
    let labels: ClassLabels
    let postTransform: PostTransform
    let outputCount: Int

    var classCount: Int { intercepts.count }

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        let a = MLAttributes(context)
        let coefficients = try a.floats("coefficients")
        let intercepts = try a.floats("intercepts")
        let strings = try a.strings("classlabels_strings")
        let ints = try a.int64s("classlabels_ints")
        let labels: ClassLabels = strings.isEmpty ? .ints(ints) : .strings(strings)
        guard !coefficients.isEmpty else { throw context.error(.invalidArgument, "coefficients must not be empty") }
        guard !intercepts.isEmpty else { throw context.error(.invalidArgument, "intercepts must not be empty") }
        guard coefficients.count % intercepts.count == 0 else {
            throw context.error(
                .invalidArgument, "\(coefficients.count) coefficients do not divide into \(intercepts.count) classes")
        }
        if intercepts.count == 1 {
            guard labels.count == 0 || labels.count == 2 else {
                throw context.error(.invalidArgument, "a binary classifier needs 2 class labels, got \(labels.count)")
            }
        } else {
            guard labels.count >= intercepts.count else {
                throw context.error(.invalidArgument, "\(labels.count) class labels for \(intercepts.count) classes")
            }
        }
        return LinearClassifierKernel(
            coefficients: coefficients, intercepts: intercepts, labels: labels,
            postTransform: try PostTransform.parse(context), outputCount: context.outputCount)
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try FeatureMatrix(try inputs.tensor(0, "LinearClassifier"), op: "LinearClassifier")
        let n = x.rows
        let f = x.columns
        let c = classCount
        let (needed, overflow) = f.multipliedReportingOverflow(by: c)
        guard !overflow, needed <= coefficients.count else {
            throw EngineError(
                .invalidShape,
                "LinearClassifier: X has \(f) features but the \(coefficients.count) coefficients cover \(coefficients.count / c)"
            )
        }
        let binary = c == 1 && labels.count == 2
        let columns = binary ? 2 : c
        let total = try Shape.elementCount([n, columns])
        let scores = LinearScores.compute(
            x.floatValues, rows: n, features: f, targets: c, coefficients: coefficients,
            intercepts: intercepts)

        var picks = [PredictedLabel](repeating: .raw(0), count: n)
        if c == 1 {
            for r in 0..<n { picks[r] = binary ? .index(scores[r] > 0 ? 1 : 0) : .raw(scores[r] > 0 ? 1 : 0) }
        } else {
            for r in 0..<n {
                var best = 0
                var bestScore = scores[r * c]
                for k in 1..<c where scores[r * c + k] > bestScore {
                    best = k
                    bestScore = scores[r * c + k]
                }
                picks[r] = .index(best)
            }
        }

        var z = [Float](repeating: 0, count: total)
        if c == 1 {
            for r in 0..<n {
                let s = scores[r]
                if postTransform == .probit {
                    z[r] = PostTransform.probit(s)  // packed at the start, as onnxruntime writes it
                } else if binary {
                    let p = postTransform == .logistic ? PostTransform.logistic(s) : s
                    z[2 * r] = 1 - p
                    z[2 * r + 1] = p
                } else {
                    z[r] = s
                }
            }
        } else {
            z = scores
            if postTransform != .none {
                z.withUnsafeMutableBufferPointer { buffer in
                    for r in 0..<n {
                        postTransform.applyToRow(UnsafeMutableBufferPointer(rebasing: buffer[(r * c)..<(r * c + c)]))
                    }
                }
            }
        }
        let labelData: TensorData
        if labels.count == 0 {
            labelData = .int64(picks.map { if case .raw(let v) = $0 { v } else { 0 } })
        } else {
            labelData = picks.withUnsafeBufferPointer { labels.select($0) }
        }
        let values: [Value] = [
            .tensor(Tensor(unchecked: [n], labelData)), .tensor(Tensor(unchecked: [n, columns], .float(z))),
        ]
        return outputCount >= values.count ? values : Array(values.prefix(max(1, outputCount)))
    }
}
