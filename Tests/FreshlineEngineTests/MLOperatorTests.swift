import Foundation
import Testing

@testable import FreshlineEngine

// Kernels of the ai.onnx.ml operators, built directly from attributes and checked against hand-computed
// results (onnxruntime's semantics, including its special cases).

// MARK: - Helpers

/// Builds the kernel of an ai.onnx.ml operator from its attributes.
private func mlKernel(
    _ op: String, _ attributes: [Onnx_AttributeProto], opset: Int = 3, inputs: Int = 1,
    outputs: Int = 2
) throws -> any Kernel {
    let context = NodeContext(
        name: "test", opType: op, domain: "ai.onnx.ml", opsetVersion: opset,
        attributes: NodeAttributes(attributes, node: "test"), inputCount: inputs, outputCount: outputs,
        constants: Array(repeating: nil, count: inputs))
    let spec = try #require(MLOperators.specs.last { $0.opType == op && $0.sinceVersion <= opset })
    #expect(spec.domain == "ai.onnx.ml")
    return try spec.make(context)
}

private func run(_ kernel: any Kernel, _ inputs: Tensor...) throws -> [Value] {
    try kernel.run(inputs.map { .tensor($0) })
}

private func floats(_ value: Value?) -> [Float] { value?.tensor?.floats ?? [] }
private func int64s(_ value: Value?) -> [Int64] { value?.tensor?.int64s ?? [] }

private func close(_ a: [Float], _ b: [Float], tolerance: Float = 1e-6) -> Bool {
    a.count == b.count
        && zip(a, b).allSatisfy { x, y in
            (x.isNaN && y.isNaN) || x == y || abs(x - y) <= tolerance * max(1, abs(y))
        }
}

private func logistic(_ v: Float) -> Float { PostTransform.logistic(v) }

private func expectError(_ code: EngineError.Code, _ body: () throws -> Void) {
    let error = #expect(throws: EngineError.self) { try body() }
    #expect(error?.code == code, "\(String(describing: error))")
}

/// Two small trees over two features:
/// tree 0: `x0 <= 0.5` ? leaf 1 : leaf 2 — tree 1: `x1 <= 1` ? leaf 1 : leaf 2.
/// Row `[0, 0]` reaches both first leaves, row `[1, 2]` both second leaves.
private struct TwoTrees {
    var modes = ["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"]
    var values: [Float] = [0.5, 0, 0, 1, 0, 0]
    var missing: [Int64]? = nil

    func nodeAttributes() -> [Onnx_AttributeProto] {
        var a = [
            Attribute.ints("nodes_treeids", [0, 0, 0, 1, 1, 1]),
            Attribute.ints("nodes_nodeids", [0, 1, 2, 0, 1, 2]),
            Attribute.ints("nodes_featureids", [0, 0, 0, 1, 0, 0]),
            Attribute.strings("nodes_modes", modes),
            Attribute.floats("nodes_values", values),
            Attribute.ints("nodes_truenodeids", [1, 0, 0, 1, 0, 0]),
            Attribute.ints("nodes_falsenodeids", [2, 0, 0, 2, 0, 0]),
        ]
        if let missing { a.append(Attribute.ints("nodes_missing_value_tracks_true", missing)) }
        return a
    }

    /// Weights `(tree, node, target, weight)` as classifier or regressor attributes.
    static func weights(_ prefix: String, _ w: [(Int64, Int64, Int64, Float)]) -> [Onnx_AttributeProto] {
        [
            Attribute.ints("\(prefix)_treeids", w.map(\.0)),
            Attribute.ints("\(prefix)_nodeids", w.map(\.1)),
            Attribute.ints(prefix == "class" ? "class_ids" : "target_ids", w.map(\.2)),
            Attribute.floats("\(prefix)_weights", w.map(\.3)),
        ]
    }
}

private let rowA: [Float] = [0, 0]
private let rowB: [Float] = [1, 2]
private func rows(_ r: [Float]...) throws -> Tensor {
    try Tensor(shape: [r.count, r[0].count], floats: r.flatMap { $0 })
}

// MARK: - Tree ensembles

@Suite("ai.onnx.ml tree ensembles")
struct MLTreeEnsembleTests {
    /// Single-target regressor with weights 0.3 / −0.7 (tree 0) and 0.2 / 0.5 (tree 1), base value 1.
    private func regressor(_ aggregate: String, post: String = "NONE") throws -> any Kernel {
        try mlKernel(
            "TreeEnsembleRegressor",
            TwoTrees().nodeAttributes()
                + TwoTrees.weights("target", [(0, 1, 0, 0.3), (0, 2, 0, -0.7), (1, 1, 0, 0.2), (1, 2, 0, 0.5)])
                + [
                    Attribute.int("n_targets", 1), Attribute.floats("base_values", [1]),
                    Attribute.string("aggregate_function", aggregate), Attribute.string("post_transform", post),
                ],
            outputs: 1)
    }

    @Test("regressor aggregates: SUM, AVERAGE, MIN, MAX with a base value")
    func aggregates() throws {
        let x = try rows(rowA, rowB)
        #expect(close(floats(try run(regressor("SUM"), x)[0]), [1.5, 0.8]))
        #expect(close(floats(try run(regressor("AVERAGE"), x)[0]), [1.25, 0.9]))
        #expect(close(floats(try run(regressor("MIN"), x)[0]), [1.2, 0.3]))
        #expect(close(floats(try run(regressor("MAX"), x)[0]), [1.3, 1.5]))
        let y = try run(regressor("SUM"), x)[0].tensor
        #expect(y?.shape == [2, 1])
    }

    @Test("a single-target regressor applies only PROBIT")
    func singleTargetTransforms() throws {
        let x = try rows(rowA, rowB)
        for post in ["LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"] {
            #expect(close(floats(try run(regressor("SUM", post: post), x)[0]), [1.5, 0.8]))
        }
        let probit = floats(try run(regressor("AVERAGE", post: "PROBIT"), x)[0])
        #expect(probit[0].isNaN)  // probit(1.25): outside (0, 1)
        #expect(close([probit[1]], [PostTransform.probit(0.9)]))
        #expect(abs(PostTransform.probit(0.9) - 1.2816) < 2e-3)
    }

    @Test("multi-target post transforms")
    func multiTargetTransforms() throws {
        func model(_ post: String) throws -> any Kernel {
            try mlKernel(
                "TreeEnsembleRegressor",
                TwoTrees().nodeAttributes()
                    + TwoTrees.weights("target", [(0, 1, 0, 0.3), (0, 2, 1, -0.7), (1, 1, 1, 0.2), (1, 2, 1, 0.5)])
                    + [Attribute.int("n_targets", 3), Attribute.string("post_transform", post)], outputs: 1)
        }
        let x = try rows(rowA)
        // Row A: target 0 = 0.3, target 1 = 0.2, target 2 has no leaf and reads as 0.
        let raw: [Float] = [0.3, 0.2, 0]
        #expect(close(floats(try run(model("NONE"), x)[0]), raw))
        #expect(close(floats(try run(model("LOGISTIC"), x)[0]), raw.map(logistic)))
        let e = raw.map { exp($0 - 0.3) }
        let sum = e.reduce(0, +)
        #expect(close(floats(try run(model("SOFTMAX"), x)[0]), e.map { $0 / sum }))
        // SOFTMAX_ZERO leaves the zero score out: it stays 0.
        let ez = [exp(Float(0)), exp(Float(0.2) - 0.3)]
        #expect(
            close(floats(try run(model("SOFTMAX_ZERO"), x)[0]), [ez[0] / (ez[0] + ez[1]), ez[1] / (ez[0] + ez[1]), 0]))
        #expect(close(floats(try run(model("PROBIT"), x)[0]), raw.map(PostTransform.probit)))
    }

    @Test(
        "every node mode, with and without missing-value tracking",
        arguments: [
            ("BRANCH_LEQ", [1, 1, 2] as [Float]), ("BRANCH_LT", [1, 2, 2]), ("BRANCH_GTE", [2, 1, 1]),
            ("BRANCH_GT", [2, 2, 1]), ("BRANCH_EQ", [2, 1, 2]), ("BRANCH_NEQ", [1, 2, 1]),
        ])
    func nodeModes(_ mode: String, _ expected: [Float]) throws {
        for tracksTrue in [false, true] {
            let kernel = try mlKernel(
                "TreeEnsembleRegressor",
                [
                    Attribute.ints("nodes_treeids", [0, 0, 0]), Attribute.ints("nodes_nodeids", [0, 1, 2]),
                    Attribute.ints("nodes_featureids", [0, 0, 0]),
                    Attribute.strings("nodes_modes", [mode, "LEAF", "LEAF"]),
                    Attribute.floats("nodes_values", [1, 0, 0]), Attribute.ints("nodes_truenodeids", [1, 0, 0]),
                    Attribute.ints("nodes_falsenodeids", [2, 0, 0]),
                    Attribute.ints("nodes_missing_value_tracks_true", [tracksTrue ? 1 : 0, 0, 0]),
                    Attribute.ints("target_treeids", [0, 0]), Attribute.ints("target_nodeids", [1, 2]),
                    Attribute.ints("target_ids", [0, 0]), Attribute.floats("target_weights", [1, 2]),
                    Attribute.int("n_targets", 1),
                ], outputs: 1)
            let y = floats(try run(kernel, Tensor(shape: [4, 1], floats: [0.5, 1, 1.5, .nan]))[0])
            // NaN compares false (so goes to the false branch), except with tracking or for NEQ.
            let nan: Float = tracksTrue || mode == "BRANCH_NEQ" ? 1 : 2
            #expect(y == expected + [nan], "\(mode), tracks true: \(tracksTrue)")
        }
    }

    @Test("integer and double inputs")
    func inputTypes() throws {
        let kernel = try regressor("SUM")
        let expected: [Float] = [1.5, 0.8]
        #expect(close(floats(try run(kernel, Tensor(shape: [2, 2], int64s: [0, 0, 1, 2]))[0]), expected))
        #expect(close(floats(try run(kernel, Tensor(shape: [2, 2], data: .int32([0, 0, 1, 2])))[0]), expected))
        #expect(close(floats(try run(kernel, Tensor(shape: [2, 2], doubles: [0, 0, 1, 2]))[0]), expected))
        // A rank-1 input is one row.
        let one = try run(kernel, Tensor(shape: [2], floats: rowB))[0].tensor
        #expect(one?.shape == [1, 1])
        #expect(close(one?.floats ?? [], [0.8]))
    }

    @Test("double inputs compare in double precision, float inputs in single precision")
    func thresholdPrecision() throws {
        let kernel = try mlKernel(
            "TreeEnsembleRegressor",
            [
                Attribute.ints("nodes_treeids", [0, 0, 0]), Attribute.ints("nodes_nodeids", [0, 1, 2]),
                Attribute.ints("nodes_featureids", [0, 0, 0]),
                Attribute.strings("nodes_modes", ["BRANCH_LEQ", "LEAF", "LEAF"]),
                Attribute.tensor("nodes_values_as_tensor", doubles: [0.1, 0, 0]),
                Attribute.ints("nodes_truenodeids", [1, 0, 0]),
                Attribute.ints("nodes_falsenodeids", [2, 0, 0]),
                Attribute.ints("target_treeids", [0, 0]), Attribute.ints("target_nodeids", [1, 2]),
                Attribute.ints("target_ids", [0, 0]), Attribute.tensor("target_weights_as_tensor", doubles: [1, 2]),
                Attribute.int("n_targets", 1),
            ], outputs: 1)
        let justAbove = 0.1.nextUp
        #expect(floats(try run(kernel, Tensor(shape: [1, 1], doubles: [justAbove]))[0]) == [2])
        // In single precision both round to 0.1f, so the comparison holds.
        #expect(floats(try run(kernel, Tensor(shape: [1, 1], floats: [Float(justAbove)]))[0]) == [1])
    }

    /// The binary gradient-boosting layout: two labels, every weight on class 0, one base value.
    private func binaryBoosting(_ post: String, weights: [Float] = [0.3, -0.7, 0.2, 0.5]) throws -> any Kernel {
        try mlKernel(
            "TreeEnsembleClassifier",
            TwoTrees().nodeAttributes()
                + TwoTrees.weights(
                    "class",
                    [(0, 1, 0, weights[0]), (0, 2, 0, weights[1]), (1, 1, 0, weights[2]), (1, 2, 0, weights[3])])
                + [
                    Attribute.ints("classlabels_int64s", [4, 9]), Attribute.floats("base_values", [0.1]),
                    Attribute.string("post_transform", post),
                ])
    }

    @Test("binary classifier with mixed-sign weights: label from the score's sign, second column derived")
    func binaryMixedWeights() throws {
        let x = try rows(rowA, rowB)
        let sA: Float = 0.3 + 0.2 + 0.1
        let sB: Float = -0.7 + 0.5 + 0.1
        let logisticOut = try run(binaryBoosting("LOGISTIC"), x)
        #expect(int64s(logisticOut[0]) == [9, 4])
        #expect(logisticOut[1].tensor?.shape == [2, 2])
        #expect(close(floats(logisticOut[1]), [logistic(-sA), logistic(sA), logistic(-sB), logistic(sB)]))
        #expect(close(floats(try run(binaryBoosting("NONE"), x)[1]), [-sA, sA, -sB, sB]))
        #expect(close(floats(try run(binaryBoosting("SOFTMAX"), x)[1]), [-sA, sA, -sB, sB]))
        // PROBIT writes only the first column.
        #expect(
            close(
                floats(try run(binaryBoosting("PROBIT"), x)[1]),
                [PostTransform.probit(sA), 0, PostTransform.probit(sB), 0]))
    }

    @Test("binary classifier with positive weights: label threshold 0.5, scores [1 − p, p]")
    func binaryPositiveWeights() throws {
        let kernel = try binaryBoosting("NONE", weights: [0.3, 0.1, 0.2, 0.5])
        let out = try run(kernel, try rows(rowA, rowB))
        let pA: Float = 0.3 + 0.2 + 0.1
        let pB: Float = 0.1 + 0.5 + 0.1
        #expect(int64s(out[0]) == [9, 9])
        #expect(close(floats(out[1]), [1 - pA, pA, 1 - pB, pB]))
        let low = try run(kernel, try rows([0, 0]))
        #expect(int64s(low[0]) == [9])
        let lowKernel = try binaryBoosting("LOGISTIC", weights: [0.1, 0.1, 0.2, 0.5])
        let lowOut = try run(lowKernel, try rows(rowA))
        #expect(int64s(lowOut[0]) == [4])  // 0.4 is not above 0.5
        #expect(close(floats(lowOut[1]), [logistic(-0.4), logistic(0.4)]))
    }

    @Test("binary classifier with two base values uses base[1] + class 0's score for class 1")
    func binaryTwoBaseValues() throws {
        let kernel = try mlKernel(
            "TreeEnsembleClassifier",
            TwoTrees().nodeAttributes()
                + TwoTrees.weights("class", [(0, 1, 1, 0.3), (0, 2, 1, 0.8), (1, 1, 1, 0.2), (1, 2, 1, 0.1)])
                + [Attribute.ints("classlabels_int64s", [0, 1]), Attribute.floats("base_values", [0.1, 0.2])])
        let out = try run(kernel, try rows(rowA))
        // Class 0 has no score, so class 1 becomes 0.2 + 0 and class 0 (unscored) reads as 0.
        #expect(close(floats(out[1]), [0, 0.2]))
        #expect(int64s(out[0]) == [0])
    }

    @Test("two classes with weights on both (random forest): the label is onnxruntime's raw 1 or 0")
    func twoClassesBothWeighted() throws {
        let kernel = try mlKernel(
            "TreeEnsembleClassifier",
            TwoTrees().nodeAttributes()
                + TwoTrees.weights(
                    "class",
                    [
                        (0, 1, 0, 0.8), (0, 1, 1, 0.2), (0, 2, 0, 0.1), (0, 2, 1, 0.9),
                        (1, 1, 0, 0.5), (1, 1, 1, 0.5), (1, 2, 0, 0.4), (1, 2, 1, 0.6),
                    ])
                + [Attribute.ints("classlabels_int64s", [3, 7])])
        let out = try run(kernel, try rows(rowA, rowB))
        #expect(close(floats(out[1]), [1.3, 0.7, 0.5, 1.5]))
        #expect(int64s(out[0]) == [1, 1])
        let strings = try mlKernel(
            "TreeEnsembleClassifier",
            TwoTrees().nodeAttributes()
                + TwoTrees.weights(
                    "class",
                    [
                        (0, 1, 0, 0.8), (0, 1, 1, -0.2), (0, 2, 0, 0.1), (0, 2, 1, 0.9),
                        (1, 1, 0, 0.5), (1, 1, 1, 0.1), (1, 2, 0, 0.4), (1, 2, 1, 0.6),
                    ])
                + [Attribute.strings("classlabels_strings", ["no", "yes"])])
        #expect(try run(strings, try rows(rowA, rowB))[0].tensor?.strings == ["no", "yes"])
    }

    @Test("multi-class classifier: base values, argmax over scored classes, string labels")
    func multiclass() throws {
        func model(_ post: String) throws -> any Kernel {
            try mlKernel(
                "TreeEnsembleClassifier",
                TwoTrees().nodeAttributes()
                    + TwoTrees.weights("class", [(0, 1, 0, 1.0), (0, 2, 1, 2.0), (1, 1, 1, 0.5), (1, 2, 0, 0.25)])
                    + [
                        Attribute.strings("classlabels_strings", ["a", "b", "c"]),
                        Attribute.floats("base_values", [0.1, 0.2, 0.3]),
                        Attribute.string("post_transform", post),
                    ])
        }
        let x = try rows(rowA, rowB)
        let out = try run(model("NONE"), x)
        #expect(out[0].tensor?.strings == ["a", "b"])
        #expect(out[1].tensor?.shape == [2, 3])
        #expect(close(floats(out[1]), [1.1, 0.7, 0.3, 0.35, 2.2, 0.3]))
        let soft = floats(try run(model("SOFTMAX"), x)[1])
        let e = [Float(1.1), 0.7, 0.3].map { exp($0 - 1.1) }
        #expect(close(Array(soft[0..<3]), e.map { $0 / e.reduce(0, +) }))
    }

    @Test("a leaf without weights contributes its node value; a second weight for the single target is ignored")
    func singleTargetLeafValues() throws {
        let kernel = try mlKernel(
            "TreeEnsembleRegressor",
            [
                Attribute.ints("nodes_treeids", [0, 0, 0]), Attribute.ints("nodes_nodeids", [0, 1, 2]),
                Attribute.ints("nodes_featureids", [0, 0, 0]),
                Attribute.strings("nodes_modes", ["BRANCH_LEQ", "LEAF", "LEAF"]),
                Attribute.floats("nodes_values", [0, 0, 5]), Attribute.ints("nodes_truenodeids", [1, 0, 0]),
                Attribute.ints("nodes_falsenodeids", [2, 0, 0]),
                Attribute.ints("target_treeids", [0, 0]), Attribute.ints("target_nodeids", [1, 1]),
                Attribute.ints("target_ids", [0, 0]), Attribute.floats("target_weights", [0.3, 0.5]),
                Attribute.int("n_targets", 1),
            ], outputs: 1)
        #expect(close(floats(try run(kernel, Tensor(shape: [2, 1], floats: [-1, 1]))[0]), [0.3, 5]))
    }

    @Test("TreeEnsemble (opset 5): set membership, missing values and the post_transform codes")
    func treeEnsembleV5() throws {
        func model(members: [Float], tracksTrue: Bool = false, targets: Int64 = 1, post: Int64 = 0) throws -> any Kernel
        {
            try mlKernel(
                "TreeEnsemble",
                [
                    Attribute.int("n_targets", targets), Attribute.ints("tree_roots", [0]),
                    Attribute.ints("nodes_featureids", [0]),
                    Attribute.tensor("nodes_modes", uint8s: [6]), Attribute.tensor("nodes_splits", floats: [0]),
                    Attribute.ints("nodes_truenodeids", [0]), Attribute.ints("nodes_falsenodeids", [1]),
                    Attribute.ints("nodes_trueleafs", [1]), Attribute.ints("nodes_falseleafs", [1]),
                    Attribute.ints("nodes_missing_value_tracks_true", [tracksTrue ? 1 : 0]),
                    Attribute.ints("leaf_targetids", [0, targets - 1]),
                    Attribute.tensor("leaf_weights", floats: [10, 20]),
                    Attribute.tensor("membership_values", floats: members + [.nan]),
                    Attribute.int("post_transform", post),
                ], opset: 5, outputs: 1)
        }
        let x = try Tensor(shape: [5, 1], floats: [1, 1.5, 3, 2, .nan])
        #expect(floats(try run(model(members: [1, 3]), x)[0]) == [10, 20, 10, 20, 20])
        #expect(floats(try run(model(members: [1, 3], tracksTrue: true), x)[0]) == [10, 20, 10, 20, 10])
        // A set with values above 30 compares the input truncated to an integer (1.5 → 1).
        #expect(floats(try run(model(members: [1, 3, 40]), x)[0]) == [10, 10, 10, 20, 20])
        // onnxruntime reads post_transform 1 as LOGISTIC and 2 as SOFTMAX.
        let two = try Tensor(shape: [1, 1], floats: [1])
        #expect(close(floats(try run(model(members: [1], targets: 2, post: 1), two)[0]), [logistic(10), 0.5]))
        let e = exp(Float(-10))
        #expect(close(floats(try run(model(members: [1], targets: 2, post: 2), two)[0]), [1 / (1 + e), e / (1 + e)]))
        let double = try run(model(members: [1]), Tensor(shape: [1, 1], doubles: [1]))[0].tensor
        #expect(double?.doubles == [10])
    }

    @Test("batches, lanes and the general walk give the same scores as one row at a time")
    func batchConsistency() throws {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((seed >> 33) % UInt64(bound))
        }
        var treeIds: [Int64] = [], nodeIds: [Int64] = [], features: [Int64] = [], modes: [String] = []
        var values: [Float] = [], trues: [Int64] = [], falses: [Int64] = [], missing: [Int64] = []
        var wTree: [Int64] = [], wNode: [Int64] = [], wValue: [Float] = []
        let modeNames = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT"]
        for tree in 0..<23 {
            var count: Int64 = 0
            func build(_ depth: Int) -> Int64 {
                let id = count
                count += 1
                let deep = tree % 5 == 0  // lopsided trees walk until a leaf instead of a fixed number of steps
                let leaf = depth >= (deep ? 12 : 4) || (depth > 0 && next(4) == 0 && !deep)
                treeIds.append(Int64(tree))
                nodeIds.append(id)
                let slot = treeIds.count - 1
                if leaf {
                    features.append(0)
                    modes.append("LEAF")
                    values.append(0)
                    trues.append(0)
                    falses.append(0)
                    missing.append(0)
                    wTree.append(Int64(tree))
                    wNode.append(id)
                    wValue.append(Float(next(2000)) / 1000 - 1)
                    return id
                }
                features.append(Int64(next(5)))
                modes.append(modeNames[next(4)])
                values.append(Float(next(40)) / 10 - 2)
                missing.append(Int64(next(2)))
                trues.append(0)
                falses.append(0)
                let t = build(depth + 1)
                let f = deep ? build(99) : build(depth + 1)
                trues[slot] = t
                falses[slot] = f
                return id
            }
            _ = build(0)
        }
        func attributes(extraTree: Bool) -> [Onnx_AttributeProto] {
            var (ti, ni, fe, mo, va, tr, fa, mi) = (treeIds, nodeIds, features, modes, values, trues, falses, missing)
            var (wt, wn, wv) = (wTree, wNode, wValue)
            if extraTree {
                // An equality test adds a zero, but forces the general walk for the whole ensemble.
                ti += [99, 99, 99]
                ni += [0, 1, 2]
                fe += [1, 0, 0]
                mo += ["BRANCH_EQ", "LEAF", "LEAF"]
                va += [0.5, 0, 0]
                tr += [1, 0, 0]
                fa += [2, 0, 0]
                mi += [0, 0, 0]
                wt += [99, 99]
                wn += [1, 2]
                wv += [0, 0]
            }
            return [
                Attribute.ints("nodes_treeids", ti), Attribute.ints("nodes_nodeids", ni),
                Attribute.ints("nodes_featureids", fe),
                Attribute.strings("nodes_modes", mo), Attribute.floats("nodes_values", va),
                Attribute.ints("nodes_truenodeids", tr),
                Attribute.ints("nodes_falsenodeids", fa), Attribute.ints("nodes_missing_value_tracks_true", mi),
                Attribute.ints("target_treeids", wt), Attribute.ints("target_nodeids", wn),
                Attribute.ints("target_ids", wt.map { _ in 0 }), Attribute.floats("target_weights", wv),
                Attribute.int("n_targets", 1),
            ]
        }
        // A straightforward evaluation of the same trees, summing in tree order.
        func reference(_ x: [Float]) -> Float {
            var sum: Float = 0
            var start = 0
            while start < treeIds.count {
                let tree = treeIds[start]
                var end = start
                while end < treeIds.count && treeIds[end] == tree { end += 1 }
                var i = start
                while modes[i] != "LEAF" {
                    let v = x[Int(features[i])], t = values[i]
                    var taken: Bool
                    switch modes[i] {
                    case "BRANCH_LEQ": taken = v <= t
                    case "BRANCH_LT": taken = v < t
                    case "BRANCH_GTE": taken = v >= t
                    default: taken = v > t
                    }
                    if v.isNaN && missing[i] == 1 { taken = true }
                    let target = taken ? trues[i] : falses[i]
                    i = (start..<end).first { nodeIds[$0] == target } ?? start
                }
                let leafId = nodeIds[i]
                sum += wValue[(0..<wTree.count).first { wTree[$0] == tree && wNode[$0] == leafId } ?? 0]
                start = end
            }
            return sum
        }

        let fast = try mlKernel("TreeEnsembleRegressor", attributes(extraTree: false), outputs: 1)
        let general = try mlKernel("TreeEnsembleRegressor", attributes(extraTree: true), outputs: 1)
        let n = 37
        let grid: [Float] = [-2, -1.5, -0.3, 0, 0.1, 0.7, 1, 1.9, .nan]
        let data = (0..<(n * 5)).map { _ in grid[next(grid.count)] }
        let batch = floats(try run(fast, Tensor(shape: [n, 5], floats: data))[0])
        let generalBatch = floats(try run(general, Tensor(shape: [n, 5], floats: data))[0])
        #expect(batch.count == n)
        for r in 0..<n {
            let row = Array(data[(r * 5)..<(r * 5 + 5)])
            let single = floats(try run(fast, Tensor(shape: [1, 5], floats: row))[0])
            #expect(single == [batch[r]], "row \(r)")
            #expect(generalBatch[r] == batch[r], "row \(r), general walk")
            #expect(single == [reference(row)], "row \(r), reference")
        }

    }

    @Test("invalid tree attributes are rejected at load time")
    func validation() throws {
        let good =
            TwoTrees().nodeAttributes()
            + TwoTrees.weights("target", [(0, 1, 0, 1), (0, 2, 0, 2), (1, 1, 0, 3), (1, 2, 0, 4)])
            + [Attribute.int("n_targets", 1)]
        _ = try mlKernel("TreeEnsembleRegressor", good, outputs: 1)
        func replacing(_ name: String, with attribute: Onnx_AttributeProto) -> [Onnx_AttributeProto] {
            good.filter { $0.name != name } + [attribute]
        }
        let cases: [(String, [Onnx_AttributeProto])] = [
            ("short nodes_values", replacing("nodes_values", with: Attribute.floats("nodes_values", [0.5]))),
            (
                "child outside the tree",
                replacing("nodes_truenodeids", with: Attribute.ints("nodes_truenodeids", [7, 0, 0, 1, 0, 0]))
            ),
            (
                "node pointing to itself",
                replacing("nodes_truenodeids", with: Attribute.ints("nodes_truenodeids", [0, 0, 0, 1, 0, 0]))
            ),
            (
                "unknown mode",
                replacing(
                    "nodes_modes",
                    with: Attribute.strings("nodes_modes", ["BRANCH_XX", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"]))
            ),
            (
                "negative feature",
                replacing("nodes_featureids", with: Attribute.ints("nodes_featureids", [-1, 0, 0, 1, 0, 0]))
            ),
            (
                "absurd feature",
                replacing("nodes_featureids", with: Attribute.ints("nodes_featureids", [1 << 40, 0, 0, 1, 0, 0]))
            ),
            ("target id out of range", replacing("target_ids", with: Attribute.ints("target_ids", [0, 0, 0, 1]))),
            (
                "weight on a missing node",
                replacing("target_nodeids", with: Attribute.ints("target_nodeids", [1, 2, 1, 9]))
            ),
            ("unknown post_transform", good + [Attribute.string("post_transform", "SIGMOID")]),
            ("unknown aggregate", good + [Attribute.string("aggregate_function", "MEDIAN")]),
            ("no targets", replacing("n_targets", with: Attribute.int("n_targets", 0))),
            ("huge n_targets", replacing("n_targets", with: Attribute.int("n_targets", 1 << 40))),
            ("too many base values", good + [Attribute.floats("base_values", [1, 2])]),
            ("values and tensor", good + [Attribute.tensor("nodes_values_as_tensor", doubles: [0.5, 0, 0, 1, 0, 0])]),
            (
                "wrong attribute type",
                replacing("nodes_modes", with: Attribute.ints("nodes_modes", [1, 2, 3, 4, 5, 6]))
            ),
        ]
        for (label, attributes) in cases {
            let error = #expect(throws: EngineError.self, "\(label)") {
                try mlKernel("TreeEnsembleRegressor", attributes, outputs: 1)
            }
            #expect(error?.code == .invalidArgument, "\(label): \(String(describing: error))")
        }
        // A cycle: node 1 of tree 0 is a branch back to the root.
        var cyclic = TwoTrees()
        cyclic.modes[1] = "BRANCH_LEQ"
        let cycle =
            cyclic.nodeAttributes().filter { $0.name != "nodes_truenodeids" }
            + [Attribute.ints("nodes_truenodeids", [1, 0, 0, 1, 0, 0]), Attribute.int("n_targets", 1)]
            + TwoTrees.weights("target", [(0, 2, 0, 1), (1, 1, 0, 3), (1, 2, 0, 4)])
        let cycleError = #expect(throws: EngineError.self) { try mlKernel("TreeEnsembleRegressor", cycle, outputs: 1) }
        #expect(cycleError?.message.contains("cycle") == true)
        // A classifier needs class labels.
        expectError(.invalidArgument) {
            _ = try mlKernel(
                "TreeEnsembleClassifier", TwoTrees().nodeAttributes() + TwoTrees.weights("class", [(0, 1, 0, 1)]))
        }
    }

    @Test("inputs that do not fit the trees are rejected at run time")
    func runtimeValidation() throws {
        let kernel = try regressor("SUM")
        expectError(.invalidShape) { _ = try run(kernel, Tensor(shape: [2, 1], floats: [0, 1])) }
        expectError(.invalidShape) { _ = try run(kernel, Tensor(shape: [1, 1, 2], floats: [0, 1])) }
        expectError(.unsupportedType) { _ = try run(kernel, Tensor(shape: [1, 2], strings: ["a", "b"])) }
        #expect(try run(kernel, Tensor(shape: [0, 2], floats: []))[0].tensor?.shape == [0, 1])
    }
}

// MARK: - Linear models

@Suite("ai.onnx.ml linear models")
struct MLLinearModelTests {
    private func classifier(_ coefficients: [Float], _ intercepts: [Float], labels: [Int64]?, post: String = "NONE")
        throws -> any Kernel
    {
        var a = [
            Attribute.floats("coefficients", coefficients), Attribute.floats("intercepts", intercepts),
            Attribute.string("post_transform", post),
        ]
        if let labels { a.append(Attribute.ints("classlabels_ints", labels)) }
        return try mlKernel("LinearClassifier", a, opset: 1)
    }

    @Test("binary LinearClassifier: one coefficient row and two labels")
    func binary() throws {
        let x = try Tensor(shape: [2, 2], floats: [1, 2, 3, -1])
        // Scores: 1 − 2 + 0.5 = −0.5 and 3 + 1 + 0.5 = 4.5.
        let none = try run(classifier([1, -1], [0.5], labels: [10, 20]), x)
        #expect(int64s(none[0]) == [10, 20])
        #expect(none[1].tensor?.shape == [2, 2])
        #expect(close(floats(none[1]), [1.5, -0.5, -3.5, 4.5]))
        let logisticOut = try run(classifier([1, -1], [0.5], labels: [10, 20], post: "LOGISTIC"), x)
        #expect(close(floats(logisticOut[1]), [1 - logistic(-0.5), logistic(-0.5), 1 - logistic(4.5), logistic(4.5)]))
        // Without labels: 1 and 0, and a single column.
        let bare = try run(classifier([1, -1], [0.5], labels: nil), x)
        #expect(int64s(bare[0]) == [0, 1])
        #expect(bare[1].tensor?.shape == [2, 1])
    }

    @Test("multi-class LinearClassifier: argmax, post transforms, string labels, input types")
    func multiclass() throws {
        let coefficients: [Float] = [1, 0, 0, 1, -1, -1]
        let x = try Tensor(shape: [2, 2], floats: [2, 1, -1, -3])
        let out = try run(classifier(coefficients, [0, 0, 0], labels: [7, 8, 9]), x)
        #expect(int64s(out[0]) == [7, 9])
        #expect(close(floats(out[1]), [2, 1, -3, -1, -3, 4]))
        let soft = floats(try run(classifier(coefficients, [0, 0, 0], labels: [7, 8, 9], post: "SOFTMAX"), x)[1])
        let e = [Float(2), 1, -3].map { exp($0 - 2) }
        #expect(close(Array(soft[0..<3]), e.map { $0 / e.reduce(0, +) }))
        let strings = try mlKernel(
            "LinearClassifier",
            [
                Attribute.floats("coefficients", coefficients), Attribute.floats("intercepts", [0, 0, 0]),
                Attribute.strings("classlabels_strings", ["x", "y", "z"]),
            ], opset: 1)
        #expect(try run(strings, Tensor(shape: [2, 2], int64s: [2, 1, -1, -3]))[0].tensor?.strings == ["x", "z"])
        #expect(try run(strings, Tensor(shape: [2, 2], doubles: [2, 1, -1, -3]))[0].tensor?.strings == ["x", "z"])
    }

    @Test("LinearClassifier validation")
    func classifierValidation() throws {
        expectError(.invalidArgument) { _ = try classifier([1, 2], [], labels: [0, 1]) }
        expectError(.invalidArgument) { _ = try classifier([1, 2], [0], labels: [0, 1, 2]) }
        expectError(.invalidArgument) { _ = try classifier([1, 2, 3, 4, 5, 6], [0, 0, 0], labels: [0, 1]) }
        expectError(.invalidArgument) { _ = try classifier([1, 2, 3], [0, 0], labels: [0, 1]) }
        let kernel = try classifier([1, 2], [0], labels: [0, 1])
        expectError(.invalidShape) { _ = try run(kernel, Tensor(shape: [1, 3], floats: [1, 2, 3])) }
    }

    @Test("LinearRegressor: targets, intercepts, post transforms")
    func regressor() throws {
        func model(_ targets: Int64, _ intercepts: [Float], post: String = "NONE") throws -> any Kernel {
            try mlKernel(
                "LinearRegressor",
                [
                    Attribute.floats("coefficients", [1, 2, -1, 1]), Attribute.floats("intercepts", intercepts),
                    Attribute.int("targets", targets), Attribute.string("post_transform", post),
                ], opset: 1, outputs: 1)
        }
        let x = try Tensor(shape: [1, 2], floats: [1, 1])
        #expect(close(floats(try run(model(2, [0.5, -0.5]), x)[0]), [3.5, -0.5]))
        // Intercepts are used only when there is one per target.
        #expect(close(floats(try run(model(2, [0.5]), x)[0]), [3, 0]))
        let soft = floats(try run(model(2, [0, 0], post: "SOFTMAX"), x)[0])
        let e3: Float = exp(-3)
        #expect(close(soft, [1 / (1 + e3), e3 / (1 + e3)]))
        // One target: LOGISTIC is not applied, PROBIT is.
        let single = try mlKernel(
            "LinearRegressor",
            [Attribute.floats("coefficients", [0.25, 0.25]), Attribute.string("post_transform", "LOGISTIC")],
            opset: 1, outputs: 1)
        #expect(close(floats(try run(single, x)[0]), [0.5]))
        let probit = try mlKernel(
            "LinearRegressor",
            [Attribute.floats("coefficients", [0.25, 0.25]), Attribute.string("post_transform", "PROBIT")],
            opset: 1, outputs: 1)
        #expect(abs(floats(try run(probit, x)[0]).first ?? 1) < 1e-3)  // probit(0.5) = 0
        expectError(.invalidArgument) { _ = try model(0, []) }
        expectError(.invalidShape) { _ = try run(model(2, []), Tensor(shape: [1, 3], floats: [1, 1, 1])) }
    }
}

// MARK: - Preprocessing and output operators

@Suite("ai.onnx.ml preprocessing and output operators")
struct MLTransformTests {
    @Test("Normalizer MAX, L1 and L2, with zero rows copied")
    func normalizer() throws {
        func normalize(_ norm: String, _ x: Tensor) throws -> [Float] {
            floats(try run(mlKernel("Normalizer", [Attribute.string("norm", norm)], opset: 1, outputs: 1), x)[0])
        }
        let x = try Tensor(shape: [2, 3], floats: [1, -2, 4, 0, 0, 0])
        #expect(close(try normalize("MAX", x), [0.25, -0.5, 1, 0, 0, 0]))
        #expect(close(try normalize("L1", x), [1 / 7, -2 / 7, 4 / 7, 0, 0, 0]))
        let norm = Float(21).squareRoot()
        #expect(close(try normalize("L2", x), [1 / norm, -2 / norm, 4 / norm, 0, 0, 0]))
        #expect(close(try normalize("L2", Tensor(shape: [1, 2], int64s: [3, -4])), [0.6, -0.8]))
        #expect(close(try normalize("MAX", Tensor(shape: [3], doubles: [-1, -2, -4])), [1, 2, 4]))
        expectError(.invalidArgument) { _ = try mlKernel("Normalizer", [Attribute.string("norm", "L3")], opset: 1) }
    }

    @Test("Scaler per feature or with one value, any numeric input")
    func scaler() throws {
        let perFeature = try mlKernel(
            "Scaler", [Attribute.floats("offset", [1, 2]), Attribute.floats("scale", [2, 0.5])], opset: 1, outputs: 1)
        #expect(floats(try run(perFeature, Tensor(shape: [2, 2], floats: [1, 2, 3, 6]))[0]) == [0, 0, 4, 2])
        #expect(floats(try run(perFeature, Tensor(shape: [2, 2], int64s: [1, 2, 3, 6]))[0]) == [0, 0, 4, 2])
        let single = try mlKernel(
            "Scaler", [Attribute.floats("offset", [1]), Attribute.floats("scale", [3])], opset: 1, outputs: 1)
        #expect(floats(try run(single, Tensor(shape: [3], doubles: [1, 2, 0]))[0]) == [0, 3, -3])
        expectError(.invalidShape) { _ = try run(perFeature, Tensor(shape: [1, 3], floats: [1, 2, 3])) }
        expectError(.invalidArgument) {
            _ = try mlKernel("Scaler", [Attribute.floats("offset", [1]), Attribute.floats("scale", [1, 2])], opset: 1)
        }
    }

    @Test("ArrayFeatureExtractor picks along the last axis")
    func arrayFeatureExtractor() throws {
        let kernel = try mlKernel("ArrayFeatureExtractor", [], opset: 1, inputs: 2, outputs: 1)
        let x = try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        let out = try run(kernel, x, Tensor(shape: [2], int64s: [2, 0]))[0].tensor
        #expect(out?.shape == [2, 2])
        #expect(out?.floats == [3, 1, 6, 4])
        let flat = try run(kernel, Tensor(shape: [3], strings: ["a", "b", "c"]), Tensor(shape: [1], int64s: [1]))[0]
            .tensor
        #expect(flat?.shape == [1, 1])
        #expect(flat?.strings == ["b"])
        expectError(.invalidArgument) { _ = try run(kernel, x, Tensor(shape: [1], int64s: [3])) }
        expectError(.invalidArgument) { _ = try run(kernel, x, Tensor(shape: [1], int64s: [-1])) }
        expectError(.invalidArgument) { _ = try run(kernel, x, Tensor(shape: [0], int64s: [])) }
    }

    @Test("ZipMap makes one map per row with integer or string keys")
    func zipMap() throws {
        let ints = try mlKernel("ZipMap", [Attribute.ints("classlabels_int64s", [5, 7])], opset: 1, outputs: 1)
        let out = try run(ints, Tensor(shape: [2, 2], floats: [0.25, 0.75, 0.5, 0.5]))[0]
        guard case .mapSequence(let maps) = out else {
            Issue.record("expected a map sequence")
            return
        }
        #expect(maps.keys == .int64([5, 7]))
        #expect(maps.values == [0.25, 0.75, 0.5, 0.5])
        #expect(maps.count == 2)
        // A repeated label keeps its last value.
        let strings = try mlKernel(
            "ZipMap", [Attribute.strings("classlabels_strings", ["a", "b", "a"])], opset: 1, outputs: 1)
        guard case .mapSequence(let m) = try run(strings, Tensor(shape: [3], floats: [1, 2, 3]))[0] else {
            Issue.record("expected a map sequence")
            return
        }
        #expect(m.keys == .string(["a", "b"]))
        #expect(m.values == [3, 2])
        expectError(.invalidShape) { _ = try run(ints, Tensor(shape: [1, 3], floats: [1, 2, 3])) }
        expectError(.invalidArgument) { _ = try mlKernel("ZipMap", [], opset: 1) }
        expectError(.invalidArgument) {
            _ = try mlKernel(
                "ZipMap", [Attribute.ints("classlabels_int64s", [1]), Attribute.strings("classlabels_strings", ["a"])],
                opset: 1)
        }
    }

    @Test("Binarizer, Imputer and LabelEncoder")
    func smallOperators() throws {
        let binarizer = try mlKernel("Binarizer", [Attribute.float("threshold", 0.5)], opset: 1, outputs: 1)
        #expect(floats(try run(binarizer, Tensor(shape: [3], floats: [0.5, 0.7, -1]))[0]) == [0, 1, 0])
        expectError(.invalidInput) { _ = try run(binarizer, Tensor(shape: [1], floats: [.nan])) }

        let imputer = try mlKernel(
            "Imputer",
            [Attribute.floats("imputed_value_floats", [7, 8]), Attribute.float("replaced_value_float", .nan)],
            opset: 1, outputs: 1)
        #expect(floats(try run(imputer, Tensor(shape: [2, 2], floats: [.nan, 1, 2, .nan]))[0]) == [7, 1, 2, 8])

        let encoder = try mlKernel(
            "LabelEncoder",
            [Attribute.strings("keys_strings", ["a", "b", "a"]), Attribute.ints("values_int64s", [1, 2, 3])],
            opset: 2, outputs: 1)
        #expect(int64s(try run(encoder, Tensor(shape: [3], strings: ["b", "z", "a"]))[0]) == [2, -1, 1])
        let floatKeys = try mlKernel(
            "LabelEncoder",
            [Attribute.floats("keys_floats", [0, .nan]), Attribute.strings("values_strings", ["zero", "nan"])],
            opset: 4, outputs: 1)
        #expect(
            try run(floatKeys, Tensor(shape: [3], floats: [-0.0, .nan, 1]))[0].tensor?.strings == [
                "zero", "nan", "_Unused",
            ])
        let v1 = try mlKernel("LabelEncoder", [Attribute.strings("classes_strings", ["x", "y"])], opset: 1, outputs: 1)
        #expect(try run(v1, Tensor(shape: [2], int64s: [1, 5]))[0].tensor?.strings == ["y", "_Unused"])
    }
}
