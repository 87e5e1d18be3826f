/// A tree ensemble as its attributes describe it, parsed and validated but not yet laid out for evaluation.
///
/// Both attribute layouts end up here: ai.onnx.ml opsets 1–3 (`TreeEnsembleClassifier`/`Regressor`, nodes
/// addressed by tree id and node id, leaves among the nodes, weights attached by id) and opset 5
/// (`TreeEnsemble`, nodes and leaves addressed by position). Child references are resolved to node positions,
/// so every later stage works with plain indices.
struct TreeEnsembleDefinition: Sendable {
    /// How a node compares the input feature with its threshold.
    enum Mode: UInt8, Sendable {
        case leq = 0
        case lt, gte, gt, eq, neq, member, leaf
    }

    /// How the trees' leaf values are combined into one value per target.
    enum Aggregate: Sendable {
        case sum, average, min, max
    }

    /// One node. Leaves use only `uniqueValue`, `firstWeight` and `weightCount`.
    struct Node: Sendable {
        var mode: Mode
        var feature: Int
        /// The comparison threshold of a branch node.
        var threshold: Double
        var trueChild: Int
        var falseChild: Int
        var missingTracksTrue: Bool
        /// The set of a `member` node (sorted, no NaN).
        var members: [Double]
        /// Whether a `member` node tests the input truncated to Int32 instead of the exact value. onnxruntime does
        /// so for "big" sets (31 values or more, or values outside 0…30), which must hold integers.
        var integerMembers: Bool
        /// For a leaf: the value used when the ensemble has a single target (onnxruntime uses the leaf's first
        /// weight, or the node's own value when no weight is attached to it).
        var uniqueValue: Double
        /// For a leaf: its weights, `weightTargets/weightValues[firstWeight ..< firstWeight + weightCount]`.
        var firstWeight: Int
        var weightCount: Int
    }

    var nodes: [Node]
    /// The position of each tree's root in `nodes`, in tree order.
    var roots: [Int]
    var weightTargets: [Int]
    var weightValues: [Double]
    /// The number of targets (regressor) or classes (classifier).
    var targetCount: Int
    var baseValues: [Double]
    var aggregate: Aggregate
    var postTransform: PostTransform
    /// Whether every node must be reachable from a root (onnxruntime accepts unreachable nodes and ignores them).
    var requiresAllReachable: Bool

    /// The largest `n_targets` accepted, so that a tiny model cannot ask for huge score buffers.
    static let maximumTargetCount = 1 << 20
    /// The largest feature index accepted.
    static let maximumFeatureIndex = (1 << 30) - 1

    // MARK: - ai.onnx.ml opsets 1–3

    /// Parses `TreeEnsembleClassifier` (when `classLabelCount` is given: the number of class labels) or
    /// `TreeEnsembleRegressor` attributes.
    static func parseV3(_ context: NodeContext, classLabelCount: Int?) throws -> TreeEnsembleDefinition {
        let a = MLAttributes(context)
        let isClassifier = classLabelCount != nil

        let treeIds = try a.int64s("nodes_treeids")
        let nodeIds = try a.int64s("nodes_nodeids")
        let featureIds = try a.int64s("nodes_featureids")
        let modeNames = try a.strings("nodes_modes")
        let values = try a.reals("nodes_values", orTensor: "nodes_values_as_tensor")
        let trueIds = try a.int64s("nodes_truenodeids")
        let falseIds = try a.int64s("nodes_falsenodeids")
        let missing = try a.int64s("nodes_missing_value_tracks_true")
        _ = try a.reals("nodes_hitrates", orTensor: "nodes_hitrates_as_tensor")

        let n = falseIds.count
        let lengths: [(String, Int)] = [
            ("nodes_featureids", featureIds.count), ("nodes_modes", modeNames.count), ("nodes_nodeids", nodeIds.count),
            ("nodes_treeids", treeIds.count), ("nodes_truenodeids", trueIds.count), ("nodes_values", values.count),
        ]
        for (name, count) in lengths where count != n {
            throw context.error(.invalidArgument, "\(name) has \(count) entries but nodes_falsenodeids has \(n)")
        }
        guard missing.count <= n else {
            throw context.error(
                .invalidArgument, "nodes_missing_value_tracks_true has \(missing.count) entries for \(n) nodes")
        }

        let prefix = isClassifier ? "class" : "target"
        let targetIds = try a.int64s(isClassifier ? "class_ids" : "target_ids")
        let targetNodeIds = try a.int64s("\(prefix)_nodeids")
        let targetTreeIds = try a.int64s("\(prefix)_treeids")
        let targetWeights = try a.reals("\(prefix)_weights", orTensor: "\(prefix)_weights_as_tensor")
        guard targetNodeIds.count == targetIds.count, targetTreeIds.count == targetIds.count,
            targetWeights.count == targetIds.count
        else {
            throw context.error(
                .invalidArgument,
                "\(prefix)_ids, \(prefix)_nodeids, \(prefix)_treeids and \(prefix)_weights "
                    + "must have the same length, got \(targetIds.count), \(targetNodeIds.count), \(targetTreeIds.count), \(targetWeights.count)"
            )
        }

        let targetCount: Int
        if let classLabelCount {
            targetCount = classLabelCount
            guard targetCount > 0 else {
                throw context.error(.invalidArgument, "classlabels_int64s or classlabels_strings must be set")
            }
        } else {
            let declared = try a.int("n_targets", default: 0)
            guard declared > 0 else {
                throw context.error(.invalidArgument, "n_targets must be positive, got \(declared)")
            }
            guard declared <= maximumTargetCount else {
                throw context.error(
                    .invalidArgument, "n_targets \(declared) exceeds the limit of \(maximumTargetCount)")
            }
            targetCount = declared
        }
        for t in targetIds where t < 0 || t >= Int64(targetCount) {
            throw context.error(.invalidArgument, "\(prefix) id \(t) is outside [0, \(targetCount))")
        }

        let baseValues = try a.reals("base_values", orTensor: "base_values_as_tensor")
        try validateBaseValues(baseValues.count, targetCount: targetCount, classifier: isClassifier, context)

        let aggregate: Aggregate
        switch try a.string("aggregate_function", default: "SUM") {
        case "SUM": aggregate = .sum
        case "AVERAGE": aggregate = .average
        case "MIN": aggregate = .min
        case "MAX": aggregate = .max
        case let other: throw context.error(.invalidArgument, "unknown aggregate_function '\(other)'")
        }
        let postTransform = try PostTransform.parse(context)

        // Nodes, addressed by (tree id, node id).
        var index: [NodeKey: Int] = [:]
        index.reserveCapacity(n)
        var nodes: [Node] = []
        nodes.reserveCapacity(n)
        for i in 0..<n {
            let key = NodeKey(tree: treeIds[i], node: nodeIds[i])
            guard index.updateValue(i, forKey: key) == nil else {
                throw context.error(.invalidArgument, "node \(nodeIds[i]) of tree \(treeIds[i]) is defined twice")
            }
            let mode = try parseMode(modeNames[i], context)
            let feature = featureIds[i]
            if mode != .leaf {
                guard feature >= 0, feature <= Int64(maximumFeatureIndex) else {
                    throw context.error(
                        .invalidArgument, "node \(nodeIds[i]) of tree \(treeIds[i]) uses feature index \(feature)")
                }
            }
            nodes.append(
                Node(
                    mode: mode, feature: mode == .leaf ? 0 : Int(feature), threshold: values[i], trueChild: i,
                    falseChild: i,
                    missingTracksTrue: i < missing.count && missing[i] == 1, members: [], integerMembers: false,
                    uniqueValue: values[i], firstWeight: 0, weightCount: 0))
        }
        for i in 0..<n where nodes[i].mode != .leaf {
            for (isTrue, childId) in [(true, trueIds[i]), (false, falseIds[i])] {
                let branch = isTrue ? "true" : "false"
                guard childId >= 0, childId < Int64(n) else {
                    throw context.error(
                        .invalidArgument,
                        "node \(nodeIds[i]) of tree \(treeIds[i]) has \(branch) child \(childId), outside [0, \(n))")
                }
                guard let child = index[NodeKey(tree: treeIds[i], node: childId)] else {
                    throw context.error(
                        .invalidArgument,
                        "node \(nodeIds[i]) of tree \(treeIds[i]) has \(branch) child \(childId), which does not exist")
                }
                guard child != i else {
                    throw context.error(.invalidArgument, "node \(nodeIds[i]) of tree \(treeIds[i]) points to itself")
                }
                if isTrue { nodes[i].trueChild = child } else { nodes[i].falseChild = child }
            }
        }

        // Weights, attached to leaves in (tree id, node id, attribute position) order; weights that name a
        // branch node are ignored, as onnxruntime does for models from old converters.
        let order = (0..<targetIds.count).sorted { l, r in
            (targetTreeIds[l], targetNodeIds[l], l) < (targetTreeIds[r], targetNodeIds[r], r)
        }
        var weightTargets: [Int] = []
        var weightValues: [Double] = []
        weightTargets.reserveCapacity(order.count)
        weightValues.reserveCapacity(order.count)
        for w in order {
            guard let node = index[NodeKey(tree: targetTreeIds[w], node: targetNodeIds[w])] else {
                throw context.error(
                    .invalidArgument,
                    "a weight refers to node \(targetNodeIds[w]) of tree \(targetTreeIds[w]), which does not exist")
            }
            guard nodes[node].mode == .leaf else { continue }
            if nodes[node].weightCount == 0 {
                nodes[node].firstWeight = weightTargets.count
                nodes[node].uniqueValue = targetWeights[w]
            }
            nodes[node].weightCount += 1
            weightTargets.append(Int(targetIds[w]))
            weightValues.append(targetWeights[w])
        }

        // As in onnxruntime, a tree starts wherever the tree id changes from the previous node's, and its root is
        // that node (so interleaved tree ids make several partial trees).
        var roots: [Int] = []
        for i in 0..<n where i == 0 || treeIds[i] != treeIds[i - 1] { roots.append(i) }

        return TreeEnsembleDefinition(
            nodes: nodes, roots: roots, weightTargets: weightTargets, weightValues: weightValues,
            targetCount: targetCount, baseValues: baseValues, aggregate: aggregate, postTransform: postTransform,
            requiresAllReachable: false)
    }

    private struct NodeKey: Hashable {
        var tree: Int64
        var node: Int64
    }

    private static func parseMode(_ name: String, _ context: NodeContext) throws -> Mode {
        switch name {
        case "BRANCH_LEQ": .leq
        case "BRANCH_LT": .lt
        case "BRANCH_GTE": .gte
        case "BRANCH_GT": .gt
        case "BRANCH_EQ": .eq
        case "BRANCH_NEQ": .neq
        case "LEAF": .leaf
        default: throw context.error(.invalidArgument, "unknown node mode '\(name)'")
        }
    }

    private static func validateBaseValues(_ count: Int, targetCount: Int, classifier: Bool, _ context: NodeContext)
        throws
    {
        if classifier && targetCount <= 2 {
            guard count <= 2 else {
                throw context.error(
                    .invalidArgument, "base_values must have 0, 1 or 2 values for \(targetCount) classes, got \(count)")
            }
        } else {
            guard count == 0 || count == targetCount else {
                throw context.error(.invalidArgument, "base_values must have 0 or \(targetCount) values, got \(count)")
            }
        }
    }

    // MARK: - ai.onnx.ml opset 5

    /// Parses `TreeEnsemble` (ai.onnx.ml opset 5) attributes. Leaves become nodes placed after the branch nodes.
    static func parseV5(_ context: NodeContext) throws -> TreeEnsembleDefinition {
        let a = MLAttributes(context)
        let featureIds = try a.int64s("nodes_featureids")
        let trueIds = try a.int64s("nodes_truenodeids")
        let falseIds = try a.int64s("nodes_falsenodeids")
        let trueLeafs = try a.int64s("nodes_trueleafs")
        let falseLeafs = try a.int64s("nodes_falseleafs")
        let missing = try a.int64s("nodes_missing_value_tracks_true")
        let modeCodes = try a.integerTensor("nodes_modes") ?? []
        let splits = try a.realTensor("nodes_splits") ?? []
        let membership = try a.realTensor("membership_values") ?? []
        let leafTargets = try a.int64s("leaf_targetids")
        let leafWeights = try a.realTensor("leaf_weights") ?? []
        let treeRoots = try a.int64s("tree_roots")

        let n = featureIds.count
        let lengths: [(String, Int)] = [
            ("nodes_truenodeids", trueIds.count), ("nodes_falsenodeids", falseIds.count),
            ("nodes_trueleafs", trueLeafs.count),
            ("nodes_falseleafs", falseLeafs.count), ("nodes_modes", modeCodes.count), ("nodes_splits", splits.count),
        ]
        for (name, count) in lengths where count != n {
            throw context.error(.invalidArgument, "\(name) has \(count) entries but nodes_featureids has \(n)")
        }
        guard missing.isEmpty || missing.count == n else {
            throw context.error(
                .invalidArgument, "nodes_missing_value_tracks_true has \(missing.count) entries for \(n) nodes")
        }
        guard leafWeights.count == leafTargets.count else {
            throw context.error(
                .invalidArgument,
                "leaf_weights has \(leafWeights.count) entries but leaf_targetids has \(leafTargets.count)")
        }
        let targetCount = try a.int("n_targets", default: 0)
        guard targetCount > 0 else {
            throw context.error(.invalidArgument, "n_targets must be positive, got \(targetCount)")
        }
        guard targetCount <= maximumTargetCount else {
            throw context.error(.invalidArgument, "n_targets \(targetCount) exceeds the limit of \(maximumTargetCount)")
        }
        for t in leafTargets where t < 0 || t >= Int64(targetCount) {
            throw context.error(.invalidArgument, "leaf target id \(t) is outside [0, \(targetCount))")
        }
        let aggregate: Aggregate
        switch try a.int("aggregate_function", default: 1) {
        case 0: aggregate = .average
        case 1: aggregate = .sum
        case 2: aggregate = .min
        case 3: aggregate = .max
        case let other: throw context.error(.invalidArgument, "unknown aggregate_function \(other)")
        }
        let postTransform = try PostTransform(code: try a.int("post_transform", default: 0), context: context)

        let leafCount = leafTargets.count
        var nodes: [Node] = []
        nodes.reserveCapacity(n + leafCount)
        var memberCursor = 0
        for i in 0..<n {
            guard let mode = Mode(rawValue: UInt8(clamping: max(modeCodes[i], 0))), mode != .leaf, modeCodes[i] >= 0
            else {
                throw context.error(.invalidArgument, "node \(i) has unknown mode \(modeCodes[i])")
            }
            guard featureIds[i] >= 0, featureIds[i] <= Int64(maximumFeatureIndex) else {
                throw context.error(.invalidArgument, "node \(i) uses feature index \(featureIds[i])")
            }
            var members: [Double] = []
            var integerMembers = false
            if mode == .member {
                guard memberCursor < membership.count else {
                    throw context.error(.invalidArgument, "membership_values has no set for member node \(i)")
                }
                while memberCursor < membership.count, !membership[memberCursor].isNaN {
                    members.append(membership[memberCursor])
                    memberCursor += 1
                }
                memberCursor += 1  // the NaN separator
                guard !members.isEmpty else {
                    throw context.error(.invalidArgument, "member node \(i) has an empty set")
                }
                members.sort()
                integerMembers = members.count >= 31 || members[0] < 0 || members[members.count - 1] > 30
                if integerMembers {
                    for m in members where m.rounded(.towardZero) != m || m < -2_147_483_648 || m > 2_147_483_647 {
                        throw context.error(
                            .invalidArgument, "member node \(i): large sets must hold 32-bit integers, not \(m)")
                    }
                }
            }
            func child(_ id: Int64, leaf: Int64, _ branch: String) throws -> Int {
                if leaf != 0 {
                    guard id >= 0, id < Int64(leafCount) else {
                        throw context.error(
                            .invalidArgument, "node \(i) has \(branch) leaf \(id), outside [0, \(leafCount))")
                    }
                    return n + Int(id)
                }
                guard id >= 0, id < Int64(n) else {
                    throw context.error(.invalidArgument, "node \(i) has \(branch) child \(id), outside [0, \(n))")
                }
                guard id != Int64(i) else { throw context.error(.invalidArgument, "node \(i) points to itself") }
                return Int(id)
            }
            nodes.append(
                Node(
                    mode: mode, feature: Int(featureIds[i]), threshold: splits[i],
                    trueChild: try child(trueIds[i], leaf: trueLeafs[i], "true"),
                    falseChild: try child(falseIds[i], leaf: falseLeafs[i], "false"),
                    missingTracksTrue: !missing.isEmpty && missing[i] == 1, members: members,
                    integerMembers: integerMembers, uniqueValue: 0, firstWeight: 0, weightCount: 0))
        }
        for j in 0..<leafCount {
            nodes.append(
                Node(
                    mode: .leaf, feature: 0, threshold: 0, trueChild: n + j, falseChild: n + j,
                    missingTracksTrue: false,
                    members: [], integerMembers: false, uniqueValue: leafWeights[j], firstWeight: j, weightCount: 1))
        }

        var roots: [Int] = []
        roots.reserveCapacity(treeRoots.count)
        for r in treeRoots {
            guard r >= 0, r < Int64(n) else {
                throw context.error(.invalidArgument, "tree root \(r) is outside [0, \(n))")
            }
            let i = Int(r)
            if trueIds[i] == falseIds[i] && trueLeafs[i] != 0 && falseLeafs[i] != 0 {
                // A tree made of a single leaf. onnxruntime takes the leaf at the root's own position.
                guard i < leafCount else {
                    throw context.error(.invalidArgument, "single-leaf tree at root \(i) has no leaf \(i)")
                }
                roots.append(n + i)
            } else {
                roots.append(i)
            }
        }

        return TreeEnsembleDefinition(
            nodes: nodes, roots: roots, weightTargets: leafTargets.map { Int($0) }, weightValues: leafWeights,
            targetCount: targetCount, baseValues: [], aggregate: aggregate, postTransform: postTransform,
            requiresAllReachable: false)
    }
}
