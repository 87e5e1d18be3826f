/// `ZipMap`: turns each row of class scores into a map from class label to score (a `MapSequence`). When a
/// label repeats, its last score wins, as in onnxruntime's `std::map`.
struct ZipMapKernel: Kernel {
    let keys: MapSequence.Keys
    /// For each distinct key, the input column it takes its value from.
    let columns: [Int]
    let width: Int

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        let a = MLAttributes(context)
        let strings = try a.strings("classlabels_strings")
        let ints = try a.int64s("classlabels_int64s")
        guard strings.isEmpty != ints.isEmpty else {
            throw context.error(
                .invalidArgument, "exactly one of classlabels_strings and classlabels_int64s must be set")
        }
        if strings.isEmpty {
            let (unique, columns) = distinct(ints)
            return ZipMapKernel(keys: .int64(unique), columns: columns, width: ints.count)
        }
        let (unique, columns) = distinct(strings)
        return ZipMapKernel(keys: .string(unique), columns: columns, width: strings.count)
    }

    /// The distinct labels in order of first appearance, each with the column of its last appearance.
    private static func distinct<K: Hashable>(_ labels: [K]) -> ([K], [Int]) {
        var position: [K: Int] = [:]
        var unique: [K] = []
        var columns: [Int] = []
        for (column, label) in labels.enumerated() {
            if let k = position[label] {
                columns[k] = column
            } else {
                position[label] = unique.count
                unique.append(label)
                columns.append(column)
            }
        }
        return (unique, columns)
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "ZipMap")
        guard x.rank == 1 || x.rank == 2 else {
            throw EngineError(.invalidShape, "ZipMap: input must have rank 1 or 2, got shape \(x.shape)")
        }
        guard let values = x.floats else {
            throw EngineError(.unsupportedType, "ZipMap: input must be float, got \(x.elementType)")
        }
        let features = x.shape[x.rank - 1]
        guard features == width else {
            throw EngineError(.invalidShape, "ZipMap: rows have \(features) values but there are \(width) class labels")
        }
        let rows = x.rank == 1 ? 1 : x.shape[0]
        var out: [Float] = []
        out.reserveCapacity(rows * columns.count)
        for r in 0..<rows {
            for c in columns { out.append(values[r * width + c]) }
        }
        return [.mapSequence(MapSequence(keys: keys, values: out))]
    }
}
