/// Transpose: permutes the axes (reverses them by default).
struct TransposeKernel: Kernel {
    let perm: [Int]?

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        return TransposeKernel(perm: try context.attributes.ints("perm"))
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "Transpose")
        let perm = self.perm ?? Array((0..<x.rank).reversed())
        guard perm.count == x.rank, Set(perm) == Set(0..<x.rank) else {
            throw EngineError(.invalidArgument, "Transpose: perm \(perm) is not a permutation of 0..<\(x.rank)")
        }
        let shape = perm.map { x.shape[$0] }
        if perm == Array(0..<x.rank) { return [.tensor(x)] }
        let inStrides = Shape.strides(x.shape)
        let count = x.count
        var indices = [Int](repeating: 0, count: count)
        var counter = [Int](repeating: 0, count: shape.count)
        var offset = 0
        for i in 0..<count {
            indices[i] = offset
            var d = shape.count - 1
            while d >= 0 {
                counter[d] += 1
                offset += inStrides[perm[d]]
                if counter[d] < shape[d] { break }
                offset -= inStrides[perm[d]] * shape[d]
                counter[d] = 0
                d -= 1
            }
        }
        return [.tensor(Tensor(unchecked: shape, x.data.selecting(indices)))]
    }
}

/// Concat: joins tensors of one type along an axis; every other dimension must agree.
struct ConcatKernel: Kernel {
    let axis: Int

    static func make(_ context: NodeContext) throws -> any Kernel {
        guard context.inputCount >= 1 else { throw context.error(.invalidGraph, "needs at least one input") }
        guard let axis = try context.attributes.int("axis") else {
            throw context.error(.invalidArgument, "attribute 'axis' is required")
        }
        return ConcatKernel(axis: axis)
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let tensors = try (0..<inputs.count).map { try inputs.tensor($0, "Concat") }
        let first = tensors[0]
        guard first.rank >= 1 else {
            throw EngineError(.invalidShape, "Concat: inputs must have at least one dimension")
        }
        let a = try Shape.axis(axis, rank: first.rank, op: "Concat")
        var total = 0
        for t in tensors {
            guard t.elementType == first.elementType else {
                throw EngineError(.invalidArgument, "Concat: inputs have different types")
            }
            guard t.rank == first.rank, (0..<t.rank).allSatisfy({ $0 == a || t.shape[$0] == first.shape[$0] }) else {
                throw EngineError(
                    .invalidShape, "Concat: shapes \(first.shape) and \(t.shape) differ outside axis \(a)")
            }
            total += t.shape[a]
        }
        var shape = first.shape
        shape[a] = total
        _ = try Shape.elementCount(shape)
        let outer = first.shape.prefix(a).reduce(1, *)
        let inner = first.shape.dropFirst(a + 1).reduce(1, *)
        var runs: [(source: Int, start: Int, length: Int)] = []
        runs.reserveCapacity(outer * tensors.count)
        for o in 0..<outer {
            for (s, t) in tensors.enumerated() where t.shape[a] > 0 {
                let length = t.shape[a] * inner
                runs.append((s, o * length, length))
            }
        }
        return [.tensor(Tensor(unchecked: shape, TensorData.concatenating(tensors.map(\.data), runs: runs)))]
    }
}

/// Gather: picks slices along an axis by int32/int64 indices (negative indices count from the end).
struct GatherKernel: Kernel {
    let axis: Int

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(2...2)
        return GatherKernel(axis: try context.attributes.int("axis", default: 0))
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let data = try inputs.tensor(0, "Gather")
        let indices = try inputs.tensor(1, "Gather")
        guard data.rank >= 1 else { throw EngineError(.invalidShape, "Gather: data must have at least one dimension") }
        guard let positions = indices.integerValues, indices.elementType == .int64 || indices.elementType == .int32
        else {
            throw EngineError(.invalidArgument, "Gather: indices must be int32 or int64")
        }
        let a = try Shape.axis(axis, rank: data.rank, op: "Gather")
        let n = data.shape[a]
        let shape = Array(data.shape.prefix(a)) + indices.shape + Array(data.shape.dropFirst(a + 1))
        _ = try Shape.elementCount(shape)
        let outer = data.shape.prefix(a).reduce(1, *)
        let inner = data.shape.dropFirst(a + 1).reduce(1, *)
        var runs: [(source: Int, start: Int, length: Int)] = []
        runs.reserveCapacity(outer * positions.count)
        for o in 0..<outer {
            for p in positions {
                let index = p < 0 ? p + n : p
                guard index >= 0, index < n else {
                    throw EngineError(.invalidArgument, "Gather: index \(p) is out of range for axis size \(n)")
                }
                runs.append((0, (o * n + index) * inner, inner))
            }
        }
        return [.tensor(Tensor(unchecked: shape, TensorData.concatenating([data.data], runs: runs)))]
    }
}

/// GatherElements (opset 11+): the output has the indices' shape, and each element is read from `data` at the
/// same position except along `axis`, where the index says where. Negative indices count from the end.
struct GatherElementsKernel: Kernel {
    let axis: Int

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(2...2)
        return GatherElementsKernel(axis: try context.attributes.int("axis", default: 0))
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let data = try inputs.tensor(0, "GatherElements")
        let indices = try inputs.tensor(1, "GatherElements")
        guard let positions = indices.integerValues, indices.elementType == .int64 || indices.elementType == .int32
        else {
            throw EngineError(.invalidArgument, "GatherElements: indices must be int32 or int64")
        }
        guard data.rank >= 1, indices.rank == data.rank else {
            throw EngineError(
                .invalidShape, "GatherElements: data \(data.shape) and indices \(indices.shape) must have the same rank"
            )
        }
        let a = try Shape.axis(axis, rank: data.rank, op: "GatherElements")
        for d in 0..<data.rank where d != a && indices.shape[d] > data.shape[d] {
            throw EngineError(
                .invalidShape, "GatherElements: indices \(indices.shape) exceed data \(data.shape) on axis \(d)")
        }
        let n = data.shape[a]
        // Row-major strides of data, and a running multi-index over the indices' shape.
        var strides = [Int](repeating: 1, count: data.rank)
        for d in stride(from: data.rank - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * data.shape[d + 1] }
        var position = [Int](repeating: 0, count: indices.rank)
        var runs: [(source: Int, start: Int, length: Int)] = []
        runs.reserveCapacity(positions.count)
        for p in positions {
            let index = p < 0 ? p + n : p
            guard index >= 0, index < n else {
                throw EngineError(.invalidArgument, "GatherElements: index \(p) is out of range for axis size \(n)")
            }
            var offset = 0
            for d in 0..<data.rank { offset += (d == a ? index : position[d]) * strides[d] }
            runs.append((0, offset, 1))
            var d = indices.rank - 1
            while d >= 0 {
                position[d] += 1
                if position[d] < indices.shape[d] { break }
                position[d] = 0
                d -= 1
            }
        }
        return [.tensor(Tensor(unchecked: indices.shape, TensorData.concatenating([data.data], runs: runs)))]
    }
}
