/// ReduceSum and ReduceMean over a set of axes. The axes come from an attribute up to opset 12 (ReduceSum)
/// or 17 (ReduceMean) and from the optional second input after; no axes means every axis, unless
/// `noop_with_empty_axes` is set.
struct ReduceKernel: Kernel {
    enum Reduction: String, Sendable {
        case sum = "ReduceSum"
        case mean = "ReduceMean"
    }
    let reduction: Reduction
    let keepDims: Bool
    let noopWithEmptyAxes: Bool
    /// Axes from the attribute (older opsets); `nil` when they come from input 1.
    let attributeAxes: [Int]?

    static func make(_ reduction: Reduction) -> @Sendable (NodeContext) throws -> any Kernel {
        { context in
            let axesAreInput = context.opsetVersion >= (reduction == .sum ? 13 : 18)
            try context.requireInputs(axesAreInput ? 1...2 : 1...1)
            return ReduceKernel(
                reduction: reduction,
                keepDims: try context.attributes.int("keepdims", default: 1) != 0,
                noopWithEmptyAxes: try context.attributes.int("noop_with_empty_axes", default: 0) != 0,
                attributeAxes: axesAreInput ? nil : (try context.attributes.ints("axes") ?? [])
            )
        }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let op = reduction.rawValue
        let x = try inputs.tensor(0, op)
        var axes = attributeAxes ?? []
        if attributeAxes == nil, let axesTensor = try inputs.optionalTensor(1, op) {
            guard let values = axesTensor.integerValues else {
                throw EngineError(.invalidArgument, "\(op): axes must be int64")
            }
            axes = values
        }
        if axes.isEmpty {
            if noopWithEmptyAxes { return [.tensor(x)] }
            axes = Array(0..<x.rank)
        }
        var reduce = [Bool](repeating: false, count: x.rank)
        for axis in axes {
            let a = try Shape.axis(axis, rank: x.rank, op: op)
            reduce[a] = true
        }
        var outShape: [Int] = []
        var keptShape: [Int] = []  // rank-preserving output shape
        for (d, size) in x.shape.enumerated() {
            keptShape.append(reduce[d] ? 1 : size)
            if !reduce[d] { outShape.append(size) } else if keepDims { outShape.append(1) }
        }
        let outCount = keptShape.reduce(1, *)
        let reducedCount = zip(x.shape, reduce).reduce(1) { $1.1 ? $0 * $1.0 : $0 }
        // For each input element, the output element it accumulates into.
        let target = Self.targets(shape: x.shape, reduce: reduce, keptShape: keptShape)
        let data: TensorData
        switch x.data {
        case .float(let v):
            let sums = accumulate(v.map(Double.init), target, outCount)
            data = .float(finish(sums, reducedCount).map { Float($0) })
        case .double(let v):
            data = .double(finish(accumulate(v, target, outCount), reducedCount))
        case .int64(let v):
            data = .int64(integerFinish(integerAccumulate(v, target, outCount), reducedCount))
        case .int32(let v):
            data = .int32(integerFinish(integerAccumulate(v, target, outCount), reducedCount))
        default:
            throw EngineError(.unsupportedType, "\(op) does not support \(x.elementType)")
        }
        return [.tensor(Tensor(unchecked: outShape, data))]
    }

    private static func targets(shape: [Int], reduce: [Bool], keptShape: [Int]) -> [Int] {
        let outStrides = Shape.strides(keptShape)
        let count = shape.reduce(1, *)
        var result = [Int](repeating: 0, count: count)
        var counter = [Int](repeating: 0, count: shape.count)
        for i in 0..<count {
            var offset = 0
            for d in 0..<shape.count where !reduce[d] { offset += counter[d] * outStrides[d] }
            result[i] = offset
            var d = shape.count - 1
            while d >= 0 {
                counter[d] += 1
                if counter[d] < shape[d] { break }
                counter[d] = 0
                d -= 1
            }
        }
        return result
    }

    private func accumulate(_ v: [Double], _ target: [Int], _ outCount: Int) -> [Double] {
        var sums = [Double](repeating: 0, count: outCount)
        for i in 0..<v.count { sums[target[i]] += v[i] }
        return sums
    }

    private func finish(_ sums: [Double], _ n: Int) -> [Double] {
        reduction == .mean ? sums.map { $0 / Double(n) } : sums
    }

    private func integerAccumulate<T: FixedWidthInteger>(_ v: [T], _ target: [Int], _ outCount: Int) -> [T] {
        var sums = [T](repeating: 0, count: outCount)
        for i in 0..<v.count { sums[target[i]] = sums[target[i]] &+ v[i] }
        return sums
    }

    private func integerFinish<T: FixedWidthInteger>(_ sums: [T], _ n: Int) -> [T] {
        guard reduction == .mean, n > 0 else { return sums }
        let divisor = T(truncatingIfNeeded: n)
        return sums.map { divisor == 0 ? 0 : $0.dividedReportingOverflow(by: divisor).partialValue }
    }
}
