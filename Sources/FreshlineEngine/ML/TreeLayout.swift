/// The order in which a tree ensemble's nodes are stored for evaluation, found by walking each tree from its
/// root: every tree's nodes are contiguous, a node's false child directly follows it (unless shared), and nodes
/// reachable from several parents are stored once.
///
/// The walk also validates the structure: a cycle is an error, and so is a node no root reaches when the
/// definition requires every node to be used. It is iterative, so a hostile, very deep tree cannot overflow
/// the stack.
struct TreeLayout: Sendable {
    /// `order[k]` is the definition index of the k-th stored node.
    let order: [Int]
    /// `position[i]` is where definition node `i` is stored, or -1 if no root reaches it.
    let position: [Int]
    /// The stored position of each tree's root.
    let roots: [Int]
    /// The height of each tree: the most branch nodes on a path from its root to a leaf.
    let heights: [Int]
    /// Whether to walk each tree a fixed number of steps (its height) instead of stopping at the leaf: cheaper
    /// for balanced trees, as no branch mispredicts, and wasteful for lopsided ones.
    let fixedSteps: [Bool]

    init(_ definition: TreeEnsembleDefinition, context: NodeContext) throws {
        let nodes = definition.nodes
        let count = nodes.count
        // 0 = not visited, 1 = on the current path, 2 = done.
        var state = [UInt8](repeating: 0, count: count)
        var height = [Int](repeating: 0, count: count)
        var position = [Int](repeating: -1, count: count)
        var order: [Int] = []
        order.reserveCapacity(count)
        var roots: [Int] = []
        var heights: [Int] = []
        var fixedSteps: [Bool] = []
        roots.reserveCapacity(definition.roots.count)

        struct Frame {
            var node: Int
            var stage: UInt8
            var depth: Int
        }
        var stack: [Frame] = []

        for root in definition.roots {
            guard root >= 0, root < count else {
                throw context.error(.invalidArgument, "tree root \(root) is outside the \(count) nodes")
            }
            var leafDepthSum = 0
            var leafVisits = 0
            if state[root] == 0 {
                state[root] = 1
                position[root] = order.count
                order.append(root)
                stack.append(Frame(node: root, stage: 0, depth: 0))
            }
            while let top = stack.last {
                let i = top.node
                let node = nodes[i]
                if node.mode == .leaf {
                    leafDepthSum += top.depth
                    leafVisits += 1
                    state[i] = 2
                    stack.removeLast()
                    continue
                }
                if top.stage < 2 {
                    stack[stack.count - 1].stage += 1
                    let child = top.stage == 0 ? node.falseChild : node.trueChild
                    guard child >= 0, child < count else {
                        throw context.error(.invalidArgument, "a node points outside the \(count) nodes")
                    }
                    switch state[child] {
                    case 0:
                        state[child] = 1
                        position[child] = order.count
                        order.append(child)
                        stack.append(Frame(node: child, stage: 0, depth: top.depth + 1))
                    case 1:
                        throw context.error(.invalidArgument, "the nodes of tree \(roots.count) form a cycle")
                    default:
                        break
                    }
                    continue
                }
                height[i] = 1 + max(height[node.falseChild], height[node.trueChild])
                state[i] = 2
                stack.removeLast()
            }
            let h = height[root]
            roots.append(position[root])
            heights.append(h)
            let averageLeafDepth = leafVisits == 0 ? Double(h) : Double(leafDepthSum) / Double(leafVisits)
            fixedSteps.append(Double(h) <= averageLeafDepth + 3)
        }

        if definition.requiresAllReachable && order.count != count {
            let unreachable = position.firstIndex(of: -1) ?? 0
            throw context.error(.invalidArgument, "node at position \(unreachable) is not reachable from any tree root")
        }
        self.order = order
        self.position = position
        self.roots = roots
        self.heights = heights
        self.fixedSteps = fixedSteps
    }
}
