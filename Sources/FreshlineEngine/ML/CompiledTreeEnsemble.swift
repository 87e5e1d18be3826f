/// A tree ensemble laid out for fast evaluation in precision `T` (`Float` for float and integer inputs, `Double`
/// for double inputs, as onnxruntime chooses its threshold type).
///
/// Nodes are 16-byte (float) records stored tree by tree in `TreeLayout` order, with child positions resolved.
/// A leaf points to itself on both sides and keeps its single-target value in the threshold slot, so a walk can
/// run a fixed number of steps without testing for leaves.
///
/// When every node compares with ≤, <, ≥ or > (whatever its missing-value rule), the ensemble is compiled to the
/// *fast path*: each comparison is rewritten as `row[feature] <= threshold`, where a row holds the features
/// followed by their negations. `x < t` becomes `x <= t.nextDown`, `x ≥ t` becomes `−x <= −t`, and a node whose
/// NaN inputs go to the true branch tests the opposite comparison with its children swapped (NaN makes every
/// comparison false). Other ensembles (==, ≠, set membership, NaN thresholds) use a general walk that follows
/// the node's own mode.
struct CompiledTreeEnsemble<T: BinaryFloatingPoint & Sendable>: Sendable {
    struct Node: Sendable {
        var threshold: T
        var feature: Int32
        /// Both children as byte offsets into the node array, in one word: the true child in the high half, the
        /// false child in the low half, so a step selects with a shift instead of a second, dependent load, and
        /// addresses the next node without scaling.
        var children: UInt64

        init(threshold: T, feature: Int32, trueChild: Int32, falseChild: Int32) {
            self.threshold = threshold
            self.feature = feature
            children = UInt64(Self.offset(trueChild)) << 32 | UInt64(Self.offset(falseChild))
        }

        /// The byte offset of node `index` (the compiler checks that every offset fits in 32 bits).
        static func offset(_ index: Int32) -> UInt32 {
            UInt32(truncatingIfNeeded: Int(index) &* MemoryLayout<Node>.stride)
        }
        static func index(_ offset: UInt32) -> Int32 {
            Int32(truncatingIfNeeded: Int(offset) / MemoryLayout<Node>.stride)
        }

        var trueChild: Int32 { Self.index(UInt32(truncatingIfNeeded: children >> 32)) }
        var falseChild: Int32 { Self.index(UInt32(truncatingIfNeeded: children)) }
    }

    /// The most nodes an ensemble may have, so that byte offsets fit in 32 bits.
    static var maximumNodeCount: Int { Int(UInt32.max) / MemoryLayout<Node>.stride }

    let nodes: [Node]
    let roots: [Int32]
    /// The roots as byte offsets into `nodes`.
    let rootOffsets: [UInt32]
    /// Per tree: the number of steps of a fixed walk, or -1 to walk until a leaf.
    let steps: [Int32]
    let usesFastPath: Bool
    /// `base_values` in this precision.
    let baseValues: [T]
    /// The number of input features the trees read (at least 1).
    let featureWidth: Int
    /// Whether fast-path rows need the negated copy of the features.
    let needsNegation: Bool
    /// General path: per node, the mode's raw value plus `missingFlag` when NaN goes to the true branch.
    let modes: [UInt8]
    /// General path: per node, the range of its member set in `memberValues` (start, count).
    let memberStart: [Int32]
    let memberCount: [Int32]
    let memberValues: [T]
    /// Whether every leaf has exactly one weight; then its value is in the threshold slot and its target in
    /// `leafTargets`.
    let oneWeightPerLeaf: Bool
    let leafTargets: [Int32]
    /// Leaf weights: per node, the range in `weightTargets`/`weightValues`.
    let weightStart: [Int32]
    let weightCount: [Int32]
    let weightTargets: [Int32]
    let weightValues: [T]

    static var missingFlag: UInt8 { 0x10 }
    static var integerFlag: UInt8 { 0x20 }
    static var leafCode: UInt8 { TreeEnsembleDefinition.Mode.leaf.rawValue }

    /// The number of values a prepared row holds.
    var rowWidth: Int { usesFastPath && needsNegation ? 2 * featureWidth : featureWidth }
    var treeCount: Int { roots.count }

    init(_ definition: TreeEnsembleDefinition, layout: TreeLayout) {
        let order = layout.order
        let position = layout.position
        let source = definition.nodes

        var maxFeature = 0
        var fast = true
        for i in order {
            let node = source[i]
            guard node.mode != .leaf else { continue }
            maxFeature = max(maxFeature, node.feature)
            switch node.mode {
            case .leq, .lt, .gte, .gt:
                if T(node.threshold).isNaN { fast = false }
            default:
                fast = false
            }
        }
        let width = maxFeature + 1
        featureWidth = width
        usesFastPath = fast

        var nodes: [Node] = []
        nodes.reserveCapacity(order.count)
        var modes: [UInt8] = []
        var memberStart: [Int32] = []
        var memberCount: [Int32] = []
        var memberValues: [T] = []
        var weightStart: [Int32] = []
        var weightCount: [Int32] = []
        var leafTargets: [Int32] = []
        var oneWeight = true
        leafTargets.reserveCapacity(order.count)
        var negation = false
        let hasMembers = !fast && order.contains { source[$0].mode == .member }
        if !fast { modes.reserveCapacity(order.count) }
        weightStart.reserveCapacity(order.count)
        weightCount.reserveCapacity(order.count)

        for (k, i) in order.enumerated() {
            let node = source[i]
            let me = Int32(k)
            if node.mode == .leaf {
                nodes.append(Node(threshold: T(node.uniqueValue), feature: 0, trueChild: me, falseChild: me))
                weightStart.append(Int32(node.firstWeight))
                weightCount.append(Int32(node.weightCount))
                if node.weightCount == 1 {
                    leafTargets.append(Int32(definition.weightTargets[node.firstWeight]))
                } else {
                    leafTargets.append(0)
                    oneWeight = false
                }
                if !fast { modes.append(Self.leafCode) }
                if hasMembers {
                    memberStart.append(0)
                    memberCount.append(0)
                }
                continue
            }
            weightStart.append(0)
            weightCount.append(0)
            leafTargets.append(0)
            let t = Int32(position[node.trueChild])
            let f = Int32(position[node.falseChild])
            let threshold = T(node.threshold)
            if fast {
                let rule = Self.fastRule(node.mode, missingTracksTrue: node.missingTracksTrue, threshold: threshold)
                if rule.greaterOrEqual { negation = true }
                nodes.append(
                    Node(
                        threshold: rule.greaterOrEqual ? -rule.threshold : rule.threshold,
                        feature: Int32(rule.greaterOrEqual ? node.feature + width : node.feature),
                        trueChild: rule.swap ? f : t, falseChild: rule.swap ? t : f))
            } else {
                nodes.append(Node(threshold: threshold, feature: Int32(node.feature), trueChild: t, falseChild: f))
                modes.append(
                    node.mode.rawValue | (node.missingTracksTrue ? Self.missingFlag : 0)
                        | (node.integerMembers ? Self.integerFlag : 0))
                if hasMembers {
                    memberStart.append(Int32(memberValues.count))
                    memberCount.append(Int32(node.members.count))
                    memberValues.append(contentsOf: node.members.map { T($0) })
                }
            }
        }
        self.nodes = nodes
        self.modes = modes
        self.memberStart = memberStart
        self.memberCount = memberCount
        self.memberValues = memberValues
        self.baseValues = definition.baseValues.map { T($0) }
        self.leafTargets = leafTargets
        self.oneWeightPerLeaf = oneWeight
        self.weightStart = weightStart
        self.weightCount = weightCount
        self.weightTargets = definition.weightTargets.map { Int32($0) }
        self.weightValues = definition.weightValues.map { T($0) }
        self.needsNegation = negation
        roots = layout.roots.map { Int32($0) }
        rootOffsets = layout.roots.map { Node.offset(Int32($0)) }
        steps = zip(layout.heights, layout.fixedSteps).map { $0.1 ? Int32($0.0) : -1 }
    }

    /// How a fast-path node tests its input: `x <= threshold` (or `x >= threshold` when `greaterOrEqual`), with
    /// the children swapped when `swap` is set. A NaN threshold stands for "never true".
    private static func fastRule(_ mode: TreeEnsembleDefinition.Mode, missingTracksTrue: Bool, threshold t: T)
        -> (greaterOrEqual: Bool, threshold: T, swap: Bool)
    {
        let down = t == -T.infinity ? T.nan : t.nextDown  // x < t  ⟺  x <= down
        let up = t == T.infinity ? T.nan : t.nextUp  // x > t  ⟺  x >= up
        switch (mode, missingTracksTrue) {
        case (.leq, false): return (false, t, false)
        case (.leq, true): return (true, up, true)  // x <= t || NaN  ⟺  !(x > t)
        case (.lt, false): return (false, down, false)
        case (.lt, true): return (true, t, true)  // !(x >= t)
        case (.gte, false): return (true, t, false)
        case (.gte, true): return (false, down, true)  // !(x < t)
        case (.gt, false): return (true, up, false)
        default: return (false, t, true)  // .gt, true: !(x <= t)
        }
    }

    // MARK: - Evaluation

    /// How many rows are evaluated together, tree by tree, so a tree's nodes stay in cache across the rows.
    static var blockRows: Int { 128 }

    /// Evaluates every tree on every row and aggregates the leaf values per row and target.
    ///
    /// With `singleTarget`, each tree contributes its leaves' unique value to `scores[row]` (onnxruntime's
    /// one-output path); otherwise every weight of the leaf is added to `scores[row * targetCount + target]` and
    /// marks `hit` for that target. `sum` (and `average`) add; `min` and `max` keep the extreme and mark `hit`.
    /// The caller must check `x.columns >= featureWidth`.
    func evaluate(
        _ x: FeatureMatrix, aggregate: TreeEnsembleDefinition.Aggregate, singleTarget: Bool,
        targetCount: Int, scores: UnsafeMutablePointer<T>, hit: UnsafeMutablePointer<Bool>
    ) {
        let n = x.rows
        guard n > 0, !roots.isEmpty else { return }
        let zeroCopy: Bool
        switch x.data {
        case .float: zeroCopy = T.self == Float.self && !(usesFastPath && needsNegation)
        case .double: zeroCopy = T.self == Double.self && !(usesFastPath && needsNegation)
        default: zeroCopy = false
        }
        if zeroCopy {
            withRows(of: x) { base in
                var start = 0
                while start < n {
                    let count = min(Self.blockRows, n - start)
                    evaluateBlock(
                        rows: base + start * x.columns, stride: x.columns, count: count,
                        aggregate: aggregate, singleTarget: singleTarget, targetCount: targetCount,
                        scores: scores + start * (singleTarget ? 1 : targetCount),
                        hit: hit + start * (singleTarget ? 1 : targetCount))
                    start += count
                }
            }
            return
        }
        let width = featureWidth
        let stride = rowWidth
        let negate = usesFastPath && needsNegation
        withUnsafeTemporaryAllocation(of: T.self, capacity: min(Self.blockRows, n) * stride) { buffer in
            guard let rows = buffer.baseAddress else { return }
            var start = 0
            while start < n {
                let count = min(Self.blockRows, n - start)
                x.convert(rows: start, count: count, width: width, into: rows, stride: stride)
                if negate {
                    for r in 0..<count {
                        let row = rows + r * stride
                        for j in 0..<width { row[width + j] = -row[j] }
                    }
                }
                evaluateBlock(
                    rows: UnsafePointer(rows), stride: stride, count: count,
                    aggregate: aggregate, singleTarget: singleTarget, targetCount: targetCount,
                    scores: scores + start * (singleTarget ? 1 : targetCount),
                    hit: hit + start * (singleTarget ? 1 : targetCount))
                start += count
            }
        }
    }

    /// Calls `body` with a pointer to the input's elements when they already have type `T`.
    private func withRows(of x: FeatureMatrix, _ body: (UnsafePointer<T>) -> Void) {
        switch x.data {
        case .float(let v):
            v.withUnsafeBufferPointer { b in
                b.withMemoryRebound(to: T.self) { r in if let p = r.baseAddress { body(p) } }
            }
        case .double(let v):
            v.withUnsafeBufferPointer { b in
                b.withMemoryRebound(to: T.self) { r in if let p = r.baseAddress { body(p) } }
            }
        default:
            break
        }
    }

    /// Raw views of the arrays the hot loops read, so they run without bounds checks or retain/release traffic.
    private struct Pointers {
        let nodes: UnsafePointer<Node>
        let roots: UnsafePointer<Int32>
        let rootOffsets: UnsafePointer<UInt32>
        let steps: UnsafePointer<Int32>
        let treeCount: Int
        let modes: UnsafePointer<UInt8>?
        let leafTargets: UnsafePointer<Int32>?
        let weightStart: UnsafePointer<Int32>?
        let weightCount: UnsafePointer<Int32>?
        let weightTargets: UnsafePointer<Int32>?
        let weightValues: UnsafePointer<T>?
    }

    private func withPointers(_ body: (Pointers) -> Void) {
        nodes.withUnsafeBufferPointer { n in
            roots.withUnsafeBufferPointer { r in
                rootOffsets.withUnsafeBufferPointer { ro in
                    steps.withUnsafeBufferPointer { s in
                        modes.withUnsafeBufferPointer { m in
                            leafTargets.withUnsafeBufferPointer { lt in
                                weightStart.withUnsafeBufferPointer { ws in
                                    weightCount.withUnsafeBufferPointer { wc in
                                        weightTargets.withUnsafeBufferPointer { wt in
                                            weightValues.withUnsafeBufferPointer { wv in
                                                guard let nb = n.baseAddress, let rb = r.baseAddress,
                                                    let rob = ro.baseAddress, let sb = s.baseAddress
                                                else { return }
                                                body(
                                                    Pointers(
                                                        nodes: nb, roots: rb, rootOffsets: rob, steps: sb,
                                                        treeCount: r.count, modes: m.baseAddress,
                                                        leafTargets: lt.baseAddress,
                                                        weightStart: ws.baseAddress, weightCount: wc.baseAddress,
                                                        weightTargets: wt.baseAddress,
                                                        weightValues: wv.baseAddress))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// One fast-path step: the byte offset of the next node after comparing `row[feature] <= threshold`. Both
    /// children are read before the comparison and selected with a shift, so the next node's address does not
    /// wait on another load.
    @inline(__always)
    private static func step(_ nodes: UnsafeRawPointer, _ offset: UInt32, _ row: UnsafePointer<T>) -> UInt32 {
        let node = nodes.load(fromByteOffset: Int(offset), as: Node.self)
        let trueChild = UInt32(truncatingIfNeeded: node.children &>> 32)
        let falseChild = UInt32(truncatingIfNeeded: node.children)
        return row[Int(node.feature)] <= node.threshold ? trueChild : falseChild
    }

    /// Walks until a leaf (a node that is its own child).
    @inline(__always)
    private static func walkToLeaf(_ nodes: UnsafeRawPointer, _ root: UInt32, _ row: UnsafePointer<T>) -> UInt32 {
        var offset = root
        while true {
            let next = step(nodes, offset, row)
            if next == offset { return offset }
            offset = next
        }
    }

    /// The leaf (its index) that tree `tree` reaches for `row`.
    @inline(__always)
    private func leaf(_ p: Pointers, tree: Int, row: UnsafePointer<T>) -> Int32 {
        guard usesFastPath else { return generalLeaf(from: p.roots[tree], row: row, nodes: p.nodes, modes: p.modes) }
        let raw = UnsafeRawPointer(p.nodes)
        let fixed = Int(p.steps[tree])
        if fixed < 0 { return Node.index(Self.walkToLeaf(raw, p.rootOffsets[tree], row)) }
        var offset = p.rootOffsets[tree]
        for _ in 0..<fixed { offset = Self.step(raw, offset, row) }
        return Node.index(offset)
    }

    /// Adds leaf `leaf`'s contribution to the accumulators of one row.
    @inline(__always)
    private func accumulate(
        _ p: Pointers, leaf: Int32, mode: AccumulationMode, isMin: Bool, isMax: Bool,
        scores: UnsafeMutablePointer<T>, hit: UnsafeMutablePointer<Bool>
    ) {
        @inline(__always)
        func add(_ target: Int, _ value: T) {
            if isMin || isMax {
                if !hit[target] || (isMin ? value < scores[target] : value > scores[target]) { scores[target] = value }
                hit[target] = true
            } else {
                scores[target] += value
                if mode != .single { hit[target] = true }
            }
        }
        let i = Int(leaf)
        switch mode {
        case .single:
            add(0, p.nodes[i].threshold)
        case .oneWeightPerLeaf:
            guard let targets = p.leafTargets else { return }
            add(Int(targets[i]), p.nodes[i].threshold)
        case .weights:
            guard let starts = p.weightStart, let counts = p.weightCount, let targets = p.weightTargets,
                let values = p.weightValues
            else { return }
            let first = Int(starts[i])
            for k in first..<(first + Int(counts[i])) { add(Int(targets[k]), values[k]) }
        }
    }

    /// How leaves contribute: their unique value to the single target (onnxruntime's one-output path), their
    /// only weight to its target, or each of their weights.
    private enum AccumulationMode {
        case single, oneWeightPerLeaf, weights
    }

    /// Evaluates every tree on `count` prepared rows (at most `blockRows`), accumulating per row.
    ///
    /// Several independent walks are interleaved — eight trees for one row, or one tree for eight (then four)
    /// rows — so that their dependent load chains overlap. Leaves are still accumulated in tree order for each row, so the sums
    /// round exactly as a tree-by-tree loop does.
    private func evaluateBlock(
        rows: UnsafePointer<T>, stride: Int, count: Int,
        aggregate: TreeEnsembleDefinition.Aggregate, singleTarget: Bool, targetCount: Int,
        scores: UnsafeMutablePointer<T>, hit: UnsafeMutablePointer<Bool>
    ) {
        let mode: AccumulationMode = singleTarget ? .single : (oneWeightPerLeaf ? .oneWeightPerLeaf : .weights)
        let isMin = aggregate == .min
        let isMax = aggregate == .max
        let width = singleTarget ? 1 : targetCount
        withPointers { p in
            let treeCount = p.treeCount
            let fast = usesFastPath
            let raw = UnsafeRawPointer(p.nodes)
            if count == 1 {
                var tree = 0
                while tree < treeCount {
                    if fast && tree + 8 <= treeCount {
                        let st = p.steps + tree
                        let lo = min(
                            min(min(st[0], st[1]), min(st[2], st[3])), min(min(st[4], st[5]), min(st[6], st[7])))
                        if lo >= 0 {
                            let hi = max(
                                max(max(st[0], st[1]), max(st[2], st[3])), max(max(st[4], st[5]), max(st[6], st[7])))
                            let rt = p.rootOffsets + tree
                            var o0 = rt[0], o1 = rt[1], o2 = rt[2], o3 = rt[3], o4 = rt[4], o5 = rt[5], o6 = rt[6],
                                o7 = rt[7]
                            for _ in 0..<Int(hi) {
                                o0 = Self.step(raw, o0, rows)
                                o1 = Self.step(raw, o1, rows)
                                o2 = Self.step(raw, o2, rows)
                                o3 = Self.step(raw, o3, rows)
                                o4 = Self.step(raw, o4, rows)
                                o5 = Self.step(raw, o5, rows)
                                o6 = Self.step(raw, o6, rows)
                                o7 = Self.step(raw, o7, rows)
                            }
                            let i0 = Node.index(o0), i1 = Node.index(o1), i2 = Node.index(o2), i3 = Node.index(o3)
                            let i4 = Node.index(o4), i5 = Node.index(o5), i6 = Node.index(o6), i7 = Node.index(o7)
                            accumulate(p, leaf: i0, mode: mode, isMin: isMin, isMax: isMax, scores: scores, hit: hit)
                            accumulate(p, leaf: i1, mode: mode, isMin: isMin, isMax: isMax, scores: scores, hit: hit)
                            accumulate(p, leaf: i2, mode: mode, isMin: isMin, isMax: isMax, scores: scores, hit: hit)
                            accumulate(p, leaf: i3, mode: mode, isMin: isMin, isMax: isMax, scores: scores, hit: hit)
                            accumulate(p, leaf: i4, mode: mode, isMin: isMin, isMax: isMax, scores: scores, hit: hit)
                            accumulate(p, leaf: i5, mode: mode, isMin: isMin, isMax: isMax, scores: scores, hit: hit)
                            accumulate(p, leaf: i6, mode: mode, isMin: isMin, isMax: isMax, scores: scores, hit: hit)
                            accumulate(p, leaf: i7, mode: mode, isMin: isMin, isMax: isMax, scores: scores, hit: hit)
                            tree += 8
                            continue
                        }
                    }
                    let l = leaf(p, tree: tree, row: rows)
                    accumulate(p, leaf: l, mode: mode, isMin: isMin, isMax: isMax, scores: scores, hit: hit)
                    tree += 1
                }
                return
            }
            for tree in 0..<treeCount {
                let fixed = Int(p.steps[tree])
                let root = p.rootOffsets[tree]
                var r = 0
                if fast && fixed >= 0 {
                    while r + 8 <= count {
                        let x0 = rows + r * stride, x1 = x0 + stride, x2 = x1 + stride, x3 = x2 + stride
                        let x4 = x3 + stride, x5 = x4 + stride, x6 = x5 + stride, x7 = x6 + stride
                        var o0 = root, o1 = root, o2 = root, o3 = root, o4 = root, o5 = root, o6 = root, o7 = root
                        for _ in 0..<fixed {
                            o0 = Self.step(raw, o0, x0)
                            o1 = Self.step(raw, o1, x1)
                            o2 = Self.step(raw, o2, x2)
                            o3 = Self.step(raw, o3, x3)
                            o4 = Self.step(raw, o4, x4)
                            o5 = Self.step(raw, o5, x5)
                            o6 = Self.step(raw, o6, x6)
                            o7 = Self.step(raw, o7, x7)
                        }
                        let s = scores + r * width
                        let h = hit + r * width
                        accumulate(p, leaf: Node.index(o0), mode: mode, isMin: isMin, isMax: isMax, scores: s, hit: h)
                        accumulate(
                            p, leaf: Node.index(o1), mode: mode, isMin: isMin, isMax: isMax, scores: s + width,
                            hit: h + width)
                        accumulate(
                            p, leaf: Node.index(o2), mode: mode, isMin: isMin, isMax: isMax, scores: s + 2 * width,
                            hit: h + 2 * width)
                        accumulate(
                            p, leaf: Node.index(o3), mode: mode, isMin: isMin, isMax: isMax, scores: s + 3 * width,
                            hit: h + 3 * width)
                        accumulate(
                            p, leaf: Node.index(o4), mode: mode, isMin: isMin, isMax: isMax, scores: s + 4 * width,
                            hit: h + 4 * width)
                        accumulate(
                            p, leaf: Node.index(o5), mode: mode, isMin: isMin, isMax: isMax, scores: s + 5 * width,
                            hit: h + 5 * width)
                        accumulate(
                            p, leaf: Node.index(o6), mode: mode, isMin: isMin, isMax: isMax, scores: s + 6 * width,
                            hit: h + 6 * width)
                        accumulate(
                            p, leaf: Node.index(o7), mode: mode, isMin: isMin, isMax: isMax, scores: s + 7 * width,
                            hit: h + 7 * width)
                        r += 8
                    }
                    while r + 4 <= count {
                        let x0 = rows + r * stride, x1 = x0 + stride, x2 = x1 + stride, x3 = x2 + stride
                        var o0 = root, o1 = root, o2 = root, o3 = root
                        for _ in 0..<fixed {
                            o0 = Self.step(raw, o0, x0)
                            o1 = Self.step(raw, o1, x1)
                            o2 = Self.step(raw, o2, x2)
                            o3 = Self.step(raw, o3, x3)
                        }
                        let i0 = Node.index(o0), i1 = Node.index(o1), i2 = Node.index(o2), i3 = Node.index(o3)
                        let s = scores + r * width
                        let h = hit + r * width
                        accumulate(p, leaf: i0, mode: mode, isMin: isMin, isMax: isMax, scores: s, hit: h)
                        accumulate(
                            p, leaf: i1, mode: mode, isMin: isMin, isMax: isMax, scores: s + width, hit: h + width)
                        accumulate(
                            p, leaf: i2, mode: mode, isMin: isMin, isMax: isMax, scores: s + 2 * width,
                            hit: h + 2 * width)
                        accumulate(
                            p, leaf: i3, mode: mode, isMin: isMin, isMax: isMax, scores: s + 3 * width,
                            hit: h + 3 * width)
                        r += 4
                    }
                }
                while r < count {
                    let l = leaf(p, tree: tree, row: rows + r * stride)
                    accumulate(
                        p, leaf: l, mode: mode, isMin: isMin, isMax: isMax,
                        scores: scores + r * width, hit: hit + r * width)
                    r += 1
                }
            }
        }
    }

    /// The general walk: follows each node's own comparison and missing-value rule until a leaf.
    private func generalLeaf(
        from root: Int32, row: UnsafePointer<T>, nodes: UnsafePointer<Node>,
        modes: UnsafePointer<UInt8>?
    ) -> Int32 {
        guard let modes else { return root }
        var i = Int(root)
        while true {
            let code = modes[i]
            if code == Self.leafCode { return Int32(i) }
            let node = nodes[i]
            let v = row[Int(node.feature)]
            let t = node.threshold
            var taken: Bool
            switch code & 0x0F {
            case TreeEnsembleDefinition.Mode.leq.rawValue: taken = v <= t
            case TreeEnsembleDefinition.Mode.lt.rawValue: taken = v < t
            case TreeEnsembleDefinition.Mode.gte.rawValue: taken = v >= t
            case TreeEnsembleDefinition.Mode.gt.rawValue: taken = v > t
            case TreeEnsembleDefinition.Mode.eq.rawValue: taken = v == t
            case TreeEnsembleDefinition.Mode.neq.rawValue: taken = v != t
            default: taken = isMember(code & Self.integerFlag != 0 ? Self.truncatedToInt32(v) : v, node: i)
            }
            if !taken && code & Self.missingFlag != 0 && v.isNaN { taken = true }
            i = Int(taken ? node.trueChild : node.falseChild)
        }
    }

    /// `v` converted to a 32-bit integer the way onnxruntime's x86 build does: truncated toward zero, with NaN
    /// and out-of-range values becoming `Int32.min`.
    static func truncatedToInt32(_ v: T) -> T {
        guard !v.isNaN, v > -2_147_483_649, v < 2_147_483_648 else { return -2_147_483_648 }
        return v.rounded(.towardZero)
    }

    /// Whether `v` is in the (sorted) member set of node `i`.
    private func isMember(_ v: T, node i: Int) -> Bool {
        guard i < memberStart.count else { return false }
        var low = Int(memberStart[i])
        var high = low + Int(memberCount[i])
        while low < high {
            let mid = (low + high) / 2
            let m = memberValues[mid]
            if m == v { return true }
            if m < v { low = mid + 1 } else { high = mid }
        }
        return false
    }
}
