extension Tensor {
    /// Joins tensors of the same type and the same shape after the first dimension along the first dimension:
    /// the per-request rows of a micro-batch become one batch tensor.
    public static func stacking(_ parts: [Tensor]) throws -> Tensor {
        guard let first = parts.first else { throw EngineError(.invalidArgument, "nothing to stack") }
        guard first.rank >= 1 else { throw EngineError(.invalidShape, "cannot stack scalars") }
        let tail = first.shape.dropFirst()
        var rows = 0
        for p in parts {
            guard p.elementType == first.elementType, p.rank == first.rank, p.shape.dropFirst() == tail else {
                throw EngineError(.invalidShape, "cannot stack shapes \(first.shape) and \(p.shape)")
            }
            rows += p.shape[0]
        }
        if parts.count == 1 { return first }
        let runs = parts.enumerated().map { (source: $0.offset, start: 0, length: $0.element.count) }
        let shape = [rows] + Array(tail)
        _ = try Shape.elementCount(shape)
        return Tensor(unchecked: shape, TensorData.concatenating(parts.map(\.data), runs: runs))
    }
}
