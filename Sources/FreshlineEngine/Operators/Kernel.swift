/// One compiled graph node: attributes already parsed and validated, ready to run on a batch.
///
/// Kernels are immutable and may run on several threads at once.
protocol Kernel: Sendable {
    /// Computes the node's outputs. `inputs[i]` is `nil` where the node omits optional input `i`.
    /// Returns one value per output the node declares (trailing optional outputs may be left out).
    func run(_ inputs: [Value?]) throws -> [Value]
}

extension [Value?] {
    /// Input `index` as a tensor; an error if it is missing or not a tensor.
    func tensor(_ index: Int, _ op: String) throws -> Tensor {
        guard index < count, let value = self[index] else {
            throw EngineError(.invalidArgument, "\(op): input \(index) is required")
        }
        guard case .tensor(let t) = value else {
            throw EngineError(.invalidArgument, "\(op): input \(index) must be a tensor")
        }
        return t
    }

    /// Input `index` as a tensor, or `nil` when the node leaves that optional input out.
    func optionalTensor(_ index: Int, _ op: String) throws -> Tensor? {
        guard index < count, self[index] != nil else { return nil }
        return try tensor(index, op)
    }
}
