/// Constant: a value fixed in the node's attributes (`value`, or one of `value_float(s)`, `value_int(s)`,
/// `value_string(s)`).
struct ConstantKernel: Kernel {
    let value: Tensor

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(0...0)
        let a = context.attributes
        if let t = try a.tensor("value") { return ConstantKernel(value: t) }
        if let f = try a.float("value_float") { return ConstantKernel(value: Tensor(unchecked: [], .float([f]))) }
        if let fs = try a.floats("value_floats") {
            return ConstantKernel(value: Tensor(unchecked: [fs.count], .float(fs)))
        }
        if let i = try a.int("value_int") { return ConstantKernel(value: Tensor(unchecked: [], .int64([Int64(i)]))) }
        if let iv = try a.int64s("value_ints") {
            return ConstantKernel(value: Tensor(unchecked: [iv.count], .int64(iv)))
        }
        if let s = try a.string("value_string") { return ConstantKernel(value: Tensor(unchecked: [], .string([s]))) }
        if let ss = try a.strings("value_strings") {
            return ConstantKernel(value: Tensor(unchecked: [ss.count], .string(ss)))
        }
        throw context.error(.invalidArgument, "has no value attribute the engine supports")
    }

    func run(_ inputs: [Value?]) throws -> [Value] { [.tensor(value)] }
}
