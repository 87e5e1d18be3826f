/// A classifier's class labels: integers or strings (`classlabels_int64s` / `classlabels_strings`).
enum ClassLabels: Sendable, Equatable {
    case ints([Int64])
    case strings([String])

    /// The number of labels.
    var count: Int {
        switch self {
        case .ints(let v): v.count
        case .strings(let v): v.count
        }
    }

    /// The label tensor data for one predicted label per row.
    func select(_ picks: UnsafeBufferPointer<PredictedLabel>) -> TensorData {
        switch self {
        case .ints(let labels):
            return .int64(
                picks.map { pick in
                    switch pick {
                    case .index(let i): i >= 0 && i < labels.count ? labels[i] : 0
                    case .raw(let value): value
                    }
                })
        case .strings(let labels):
            return .string(
                picks.map { pick in
                    let i: Int
                    switch pick {
                    case .index(let k): i = k
                    case .raw(let value): i = Int(value)
                    }
                    return labels.isEmpty ? "" : labels[max(0, min(i, labels.count - 1))]
                })
        }
    }
}

/// The label a classifier predicts for one row: the class at an index, or (in onnxruntime's two-class
/// fallback) the raw value 1 or 0, which string labels read as an index.
enum PredictedLabel: Sendable, Equatable {
    case index(Int)
    case raw(Int64)
}
