/// `TreeEnsembleClassifier`, `TreeEnsembleRegressor` (ai.onnx.ml opsets 1–3) and `TreeEnsemble` (opset 5).
///
/// The trees are compiled twice at load time: in single precision, used for float, int64 and int32 inputs, and
/// in double precision, used for double inputs — the threshold and accumulation types onnxruntime picks. Scores
/// are summed tree by tree in tree order, as onnxruntime does when it runs single-threaded.
struct TreeEnsembleKernel: Kernel {
    enum Kind: Sendable {
        case regressor
        case classifier(ClassLabels)
        /// ai.onnx.ml opset 5: the output has the input's floating-point type.
        case ensemble
    }

    let kind: Kind
    let op: String
    let floatTrees: CompiledTreeEnsemble<Float>
    let doubleTrees: CompiledTreeEnsemble<Double>
    let targetCount: Int
    let aggregate: TreeEnsembleDefinition.Aggregate
    let postTransform: PostTransform
    /// Classifier: two classes, and every weight goes to the same class (e.g. gradient boosting).
    let binaryCase: Bool
    /// Classifier: no class weight is negative (e.g. a random forest's probabilities).
    let weightsArePositive: Bool
    let outputCount: Int

    static func makeClassifier(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        let a = MLAttributes(context)
        let strings = try a.strings("classlabels_strings")
        let ints = try a.int64s("classlabels_int64s")
        let labels: ClassLabels = strings.isEmpty ? .ints(ints) : .strings(strings)
        var definition = try TreeEnsembleDefinition.parseV3(context, classLabelCount: labels.count)
        definition.aggregate = .sum  // onnxruntime's classifiers always add the leaf weights
        let classIds = try a.int64s("class_ids")
        let binary = labels.count == 2 && Set(classIds).count == 1
        let positive = !(try a.reals("class_weights", orTensor: "class_weights_as_tensor")).contains { $0 < 0 }
        return try TreeEnsembleKernel(
            definition, kind: .classifier(labels), op: "TreeEnsembleClassifier",
            binaryCase: binary, weightsArePositive: positive, context: context)
    }

    static func makeRegressor(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        let definition = try TreeEnsembleDefinition.parseV3(context, classLabelCount: nil)
        return try TreeEnsembleKernel(
            definition, kind: .regressor, op: "TreeEnsembleRegressor",
            binaryCase: false, weightsArePositive: true, context: context)
    }

    static func makeEnsemble(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        let definition = try TreeEnsembleDefinition.parseV5(context)
        return try TreeEnsembleKernel(
            definition, kind: .ensemble, op: "TreeEnsemble",
            binaryCase: false, weightsArePositive: true, context: context)
    }

    private init(
        _ definition: TreeEnsembleDefinition, kind: Kind, op: String, binaryCase: Bool,
        weightsArePositive: Bool, context: NodeContext
    ) throws {
        let layout = try TreeLayout(definition, context: context)
        guard layout.order.count <= CompiledTreeEnsemble<Double>.maximumNodeCount else {
            throw context.error(.tooLarge, "the trees have \(layout.order.count) nodes, more than the engine supports")
        }
        self.kind = kind
        self.op = op
        floatTrees = CompiledTreeEnsemble(definition, layout: layout)
        doubleTrees = CompiledTreeEnsemble(definition, layout: layout)
        targetCount = definition.targetCount
        aggregate = definition.aggregate
        postTransform = definition.postTransform
        self.binaryCase = binaryCase
        self.weightsArePositive = weightsArePositive
        outputCount = context.outputCount
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try FeatureMatrix(try inputs.tensor(0, op), op: op)
        return x.isDouble ? try run(doubleTrees, x) : try run(floatTrees, x)
    }

    private func run<T: BinaryFloatingPoint & Sendable>(_ trees: CompiledTreeEnsemble<T>, _ x: FeatureMatrix) throws
        -> [Value]
    {
        guard x.columns >= trees.featureWidth else {
            throw EngineError(
                .invalidShape, "\(op): the trees read feature \(trees.featureWidth - 1) but X has \(x.columns) features"
            )
        }
        let n = x.rows
        let c = targetCount
        let single = c == 1
        let elementCount = try Shape.elementCount([n, c])
        let accumulatorCount = single ? n : elementCount
        let finalizer = TreeScoreFinalizer<T>(
            rows: n, targetCount: c, treeCount: trees.treeCount, baseValues: trees.baseValues, aggregate: aggregate,
            postTransform: postTransform)
        return withUnsafeTemporaryAllocation(of: T.self, capacity: max(1, accumulatorCount)) { scores in
            withUnsafeTemporaryAllocation(of: Bool.self, capacity: max(1, accumulatorCount)) { hit in
                guard let sp = scores.baseAddress, let hp = hit.baseAddress else { return [] }
                sp.initialize(repeating: 0, count: accumulatorCount)
                hp.initialize(repeating: false, count: accumulatorCount)
                trees.evaluate(x, aggregate: aggregate, singleTarget: single, targetCount: c, scores: sp, hit: hp)
                return outputs(finalizer, sp, hp, rows: n)
            }
        }
    }

    private func outputs<T: BinaryFloatingPoint>(
        _ finalizer: TreeScoreFinalizer<T>, _ scores: UnsafePointer<T>,
        _ hit: UnsafePointer<Bool>, rows n: Int
    ) -> [Value] {
        let c = targetCount
        let values: [Value]
        switch kind {
        case .regressor:
            let y = [Float](unsafeUninitializedCapacity: n * c) { buffer, count in
                if let p = buffer.baseAddress { finalizer.regression(scores, hit, into: p) }
                count = n * c
            }
            values = [.tensor(Tensor(unchecked: [n, c], .float(y)))]
        case .ensemble:
            if T.self == Double.self {
                let y = [Double](unsafeUninitializedCapacity: n * c) { buffer, count in
                    if let p = buffer.baseAddress { finalizer.regression(scores, hit, into: p) }
                    count = n * c
                }
                values = [.tensor(Tensor(unchecked: [n, c], .double(y)))]
            } else {
                let y = [Float](unsafeUninitializedCapacity: n * c) { buffer, count in
                    if let p = buffer.baseAddress { finalizer.regression(scores, hit, into: p) }
                    count = n * c
                }
                values = [.tensor(Tensor(unchecked: [n, c], .float(y)))]
            }
        case .classifier(let labels):
            var picks: TensorData = .int64([])
            let z = [Float](unsafeUninitializedCapacity: n * c) { buffer, count in
                withUnsafeTemporaryAllocation(of: PredictedLabel.self, capacity: n) { chosen in
                    if let p = buffer.baseAddress, let l = chosen.baseAddress {
                        finalizer.classification(
                            scores, hit, binaryCase: binaryCase,
                            weightsArePositive: weightsArePositive, labels: l, into: p)
                        picks = labels.select(UnsafeBufferPointer(chosen))
                    }
                }
                count = n * c
            }
            values = [.tensor(Tensor(unchecked: [n], picks)), .tensor(Tensor(unchecked: [n, c], .float(z)))]
        }
        return outputCount >= values.count ? values : Array(values.prefix(max(1, outputCount)))
    }
}
