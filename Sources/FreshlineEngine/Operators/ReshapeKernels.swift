/// Reshape: the target shape comes from input 1 (opset 5+) or the `shape` attribute (before); `0` copies the
/// input's dimension unless `allowzero` is set (opset 14+), `-1` is inferred.
struct ReshapeKernel: Kernel {
    let allowZero: Bool
    let attributeShape: [Int]?

    static func make(_ context: NodeContext) throws -> any Kernel {
        let shapeIsInput = context.opsetVersion >= 5
        try context.requireInputs(shapeIsInput ? 2...2 : 1...1)
        var attributeShape: [Int]?
        if !shapeIsInput {
            guard let shape = try context.attributes.ints("shape") else {
                throw context.error(.invalidArgument, "attribute 'shape' is required")
            }
            attributeShape = shape
        }
        return ReshapeKernel(
            allowZero: try context.attributes.int("allowzero", default: 0) != 0, attributeShape: attributeShape)
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "Reshape")
        var requested = attributeShape ?? []
        if attributeShape == nil {
            guard let values = try inputs.tensor(1, "Reshape").integerValues else {
                throw EngineError(.invalidArgument, "Reshape: shape must be int64")
            }
            requested = values
        }
        var shape: [Int] = []
        var inferred: Int?
        for (i, d) in requested.enumerated() {
            switch d {
            case -1:
                guard inferred == nil else {
                    throw EngineError(.invalidArgument, "Reshape: more than one -1 in \(requested)")
                }
                inferred = i
                shape.append(1)
            case 0 where !allowZero:
                guard i < x.rank else {
                    throw EngineError(.invalidArgument, "Reshape: 0 at position \(i) but the input has rank \(x.rank)")
                }
                shape.append(x.shape[i])
            case let d where d < 0:
                throw EngineError(.invalidArgument, "Reshape: invalid dimension \(d) in \(requested)")
            default:
                shape.append(d)
            }
        }
        if let inferred {
            let known = try Shape.elementCount(shape)
            guard known > 0, x.count % known == 0 else {
                throw EngineError(.invalidShape, "Reshape: cannot reshape \(x.shape) into \(requested)")
            }
            shape[inferred] = x.count / known
        }
        guard try Shape.elementCount(shape) == x.count else {
            throw EngineError(.invalidShape, "Reshape: cannot reshape \(x.shape) into \(requested)")
        }
        return [.tensor(Tensor(unchecked: shape, x.data))]
    }
}

/// Flatten: a 2-D view `[prod(shape[..<axis]), prod(shape[axis...])]`.
struct FlattenKernel: Kernel {
    let axis: Int

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        return FlattenKernel(axis: try context.attributes.int("axis", default: 1))
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "Flatten")
        let a = axis < 0 ? axis + x.rank : axis
        guard a >= 0, a <= x.rank else {
            throw EngineError(.invalidArgument, "Flatten: axis \(axis) is out of range for rank \(x.rank)")
        }
        let shape = [x.shape.prefix(a).reduce(1, *), x.shape.dropFirst(a).reduce(1, *)]
        return [.tensor(Tensor(unchecked: shape, x.data))]
    }
}

/// Squeeze (remove size-1 axes) and Unsqueeze (insert them). Axes are an attribute before opset 13 and an
/// input from 13.
struct SqueezeKernel: Kernel {
    let unsqueeze: Bool
    let attributeAxes: [Int]?

    static func make(unsqueeze: Bool) -> @Sendable (NodeContext) throws -> any Kernel {
        { context in
            let axesAreInput = context.opsetVersion >= 13
            try context.requireInputs(axesAreInput ? (unsqueeze ? 2...2 : 1...2) : 1...1)
            let axes = axesAreInput ? nil : try context.attributes.ints("axes")
            if unsqueeze, !axesAreInput, axes == nil {
                throw context.error(.invalidArgument, "attribute 'axes' is required")
            }
            return SqueezeKernel(unsqueeze: unsqueeze, attributeAxes: axes)
        }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let op = unsqueeze ? "Unsqueeze" : "Squeeze"
        let x = try inputs.tensor(0, op)
        var axes = attributeAxes
        if axes == nil, let t = try inputs.optionalTensor(1, op) {
            guard let values = t.integerValues else { throw EngineError(.invalidArgument, "\(op): axes must be int64") }
            axes = values
        }
        if unsqueeze {
            let axes = axes ?? []
            let rank = x.rank + axes.count
            var insert = [Bool](repeating: false, count: rank)
            for axis in axes {
                let a = try Shape.axis(axis, rank: rank, op: op)
                guard !insert[a] else { throw EngineError(.invalidArgument, "Unsqueeze: axis \(axis) appears twice") }
                insert[a] = true
            }
            var shape: [Int] = []
            var source = x.shape.makeIterator()
            for d in 0..<rank { shape.append(insert[d] ? 1 : source.next() ?? 1) }
            return [.tensor(Tensor(unchecked: shape, x.data))]
        }
        var remove = [Bool](repeating: false, count: x.rank)
        if let axes {
            for axis in axes {
                let a = try Shape.axis(axis, rank: x.rank, op: op)
                guard x.shape[a] == 1 else {
                    throw EngineError(.invalidShape, "Squeeze: axis \(axis) of shape \(x.shape) is not 1")
                }
                remove[a] = true
            }
        } else {
            for (d, size) in x.shape.enumerated() where size == 1 { remove[d] = true }
        }
        let shape = x.shape.enumerated().filter { !remove[$0.offset] }.map(\.element)
        return [.tensor(Tensor(unchecked: shape, x.data))]
    }
}
