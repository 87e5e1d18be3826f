/// Turns the per-row sums of a tree ensemble into its outputs: adds the base values, averages, applies the post
/// transform and, for classifiers, picks the label — following onnxruntime's tree aggregators case by case,
/// including their treatment of targets no leaf contributed to (they read as 0) and of two-class models.
///
/// `scores`/`hit` come from `CompiledTreeEnsemble.evaluate`: one value per row when there is a single target
/// (onnxruntime's one-output path), else one per row and target.
struct TreeScoreFinalizer<T: BinaryFloatingPoint> {
    let rows: Int
    let targetCount: Int
    let treeCount: Int
    let baseValues: [T]
    let aggregate: TreeEnsembleDefinition.Aggregate
    let postTransform: PostTransform

    // MARK: - Regression

    /// Writes the regressor output, `[rows, targetCount]` values of type `O`, to `out`.
    func regression<O: BinaryFloatingPoint>(
        _ scores: UnsafePointer<T>, _ hit: UnsafePointer<Bool>,
        into out: UnsafeMutablePointer<O>
    ) {
        let c = targetCount
        if c == 1 {
            let origin: T = baseValues.count == 1 ? baseValues[0] : 0
            for r in 0..<rows {
                var s = scores[r]
                switch aggregate {
                case .sum: s += origin
                case .average: s = s / T(treeCount) + origin
                case .min, .max: s = hit[r] ? s + origin : origin
                }
                out[r] = postTransform == .probit ? O(PostTransform.probit(Float(s))) : O(s)
            }
            return
        }
        let useBase = baseValues.count == c
        let doubleSoftmaxZero = postTransform == .softmaxZero && T.self == Double.self
        withUnsafeTemporaryAllocation(of: Float.self, capacity: c) { row in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: c) { doubleRow in
                for r in 0..<rows {
                    for t in 0..<c {
                        let k = r * c + t
                        var s = scores[k]
                        switch aggregate {
                        case .sum: if useBase { s += baseValues[t] }
                        case .average: s = useBase ? s / T(treeCount) + baseValues[t] : s / T(treeCount)
                        case .min, .max: s = (useBase ? baseValues[t] : 0) + (hit[k] ? s : 0)
                        }
                        // A target no leaf contributed to reads as 0, whatever its base value.
                        let value = hit[k] ? s : 0
                        if postTransform == .none {
                            out[k] = O(value)
                        } else if doubleSoftmaxZero {
                            doubleRow[t] = Double(value)
                        } else {
                            row[t] = Float(value)
                        }
                    }
                    if doubleSoftmaxZero {
                        PostTransform.softmaxZero(doubles: doubleRow)
                        for t in 0..<c { out[r * c + t] = O(doubleRow[t]) }
                    } else if postTransform != .none {
                        postTransform.applyToRow(row)
                        for t in 0..<c { out[r * c + t] = O(row[t]) }
                    }
                }
            }
        }
    }

    // MARK: - Classification

    /// Writes the predicted label of each row to `labels` and the scores, `[rows, targetCount]`, to `z`.
    func classification(
        _ scores: UnsafePointer<T>, _ hit: UnsafePointer<Bool>, binaryCase: Bool,
        weightsArePositive: Bool, labels: UnsafeMutablePointer<PredictedLabel>,
        into z: UnsafeMutablePointer<Float>
    ) {
        let c = targetCount
        withUnsafeTemporaryAllocation(of: T.self, capacity: max(c, 2)) { s in
            withUnsafeTemporaryAllocation(of: Bool.self, capacity: max(c, 2)) { h in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: max(c, 2)) { row in
                    for r in 0..<rows {
                        if c == 1 {
                            labels[r] = singleClass(scores[r], row)
                            z[r] = row[0]
                            continue
                        }
                        for t in 0..<c {
                            s[t] = scores[r * c + t]
                            h[t] = hit[r * c + t]
                        }
                        if c > 2 {
                            labels[r] = multiclass(s, h, row)
                        } else {
                            labels[r] = twoClasses(
                                s, h, binaryCase: binaryCase, weightsArePositive: weightsArePositive, row)
                        }
                        for t in 0..<c { z[r * c + t] = row[t] }
                    }
                }
            }
        }
    }

    /// More than two classes: base values are added (a class with no leaf gets its base value), the label is
    /// the first class with the highest score among those that have one.
    private func multiclass(
        _ s: UnsafeMutableBufferPointer<T>, _ h: UnsafeMutableBufferPointer<Bool>,
        _ z: UnsafeMutableBufferPointer<Float>
    ) -> PredictedLabel {
        let c = targetCount
        for k in 0..<min(baseValues.count, c) {
            if h[k] {
                s[k] += baseValues[k]
            } else {
                s[k] = baseValues[k]
                h[k] = true
            }
        }
        var best = -1
        var bestScore: T = 0
        for k in 0..<c where h[k] && (best == -1 || s[k] > bestScore) {
            best = k
            bestScore = s[k]
        }
        writeScores(s, h, count: c, secondClass: -1, into: z)
        return .index(max(best, 0))
    }

    /// Two classes. onnxruntime's rules: with two base values and a score for class 1, class 1 becomes
    /// `base[1] + score[0]` and class 0 its opposite; with one base value it is added to class 0; when class 1
    /// has no score, only class 0's score is kept and the second column is derived from it.
    private func twoClasses(
        _ s: UnsafeMutableBufferPointer<T>, _ h: UnsafeMutableBufferPointer<Bool>,
        binaryCase: Bool, weightsArePositive: Bool,
        _ z: UnsafeMutableBufferPointer<Float>
    ) -> PredictedLabel {
        var count = 2
        var secondClass = -1
        switch baseValues.count {
        case 2:
            if h[1] {
                s[1] = baseValues[1] + s[0]
                s[0] = -s[1]
            } else {
                s[1] += baseValues[1]
                s[0] += baseValues[0]
            }
        case 1:
            s[0] += baseValues[0]
            if !h[1] { count = 1 }
        default:
            secondClass = 3
            if !h[1] { count = 1 }
        }
        let positive: T = count == 2 && h[1] ? s[1] : (h[0] ? s[0] : 0)
        let label: PredictedLabel
        if binaryCase {
            if weightsArePositive {
                secondClass = positive > 0.5 ? 0 : 1
            } else {
                secondClass = positive > 0 ? 2 : 3
            }
            label = .index(secondClass == 0 || secondClass == 2 ? 1 : 0)
        } else {
            label = .raw(positive > 0 ? 1 : 0)
        }
        writeScores(s, h, count: count, secondClass: secondClass, into: z)
        return label
    }

    /// A classifier with a single class (onnxruntime's one-output path). Only the first score fits the output.
    private func singleClass(_ sum: T, _ z: UnsafeMutableBufferPointer<Float>) -> PredictedLabel {
        var score = sum
        if baseValues.count == 2 { score += baseValues[1] } else if baseValues.count == 1 { score += baseValues[0] }
        let final = score
        withUnsafeTemporaryAllocation(of: T.self, capacity: 2) { values in
            withUnsafeTemporaryAllocation(of: Bool.self, capacity: 2) { hits in
                hits[0] = true
                hits[1] = true
                if baseValues.count == 2 {
                    values[0] = -final
                    values[1] = final
                    writeScores(values, hits, count: 2, secondClass: -1, into: z)
                } else {
                    values[0] = final
                    writeScores(values, hits, count: 1, secondClass: -1, into: z)
                }
            }
        }
        return .raw(score > 0 ? 1 : 0)
    }

    /// onnxruntime's `write_scores`: a score without a contribution reads as 0; two or more scores get the post
    /// transform; a single score is expanded to two columns according to `secondClass`: with LOGISTIC
    /// `[σ(−s), σ(s)]`, otherwise `[1 − s, s]` (0/1: all weights positive) or `[−s, s]` (2/3); PROBIT and
    /// other values of `secondClass` write the first column only.
    private func writeScores(
        _ s: UnsafeMutableBufferPointer<T>, _ h: UnsafeMutableBufferPointer<Bool>, count: Int,
        secondClass: Int, into z: UnsafeMutableBufferPointer<Float>
    ) {
        if count >= 2 {
            if postTransform == .softmaxZero && T.self == Double.self {
                withUnsafeTemporaryAllocation(of: Double.self, capacity: count) { row in
                    for k in 0..<count { row[k] = h[k] ? Double(s[k]) : 0 }
                    PostTransform.softmaxZero(doubles: row)
                    for k in 0..<count { z[k] = Float(row[k]) }
                }
                return
            }
            for k in 0..<count { z[k] = Float(h[k] ? s[k] : 0) }
            postTransform.applyToRow(UnsafeMutableBufferPointer(rebasing: z[0..<count]))
            return
        }
        let v: T = h[0] ? s[0] : 0
        for k in z.indices { z[k] = 0 }
        if postTransform == .probit {
            z[0] = PostTransform.probit(Float(v))
            return
        }
        switch secondClass {
        case 0, 1, 2, 3:
            if postTransform == .logistic {
                z[0] = PostTransform.logistic(Float(-v))
                z[1] = PostTransform.logistic(Float(v))
            } else {
                z[0] = Float(secondClass <= 1 ? 1 - v : -v)
                z[1] = Float(v)
            }
        default:
            z[0] = Float(v)
        }
    }
}
