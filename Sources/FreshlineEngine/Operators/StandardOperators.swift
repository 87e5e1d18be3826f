/// The ai.onnx operators the engine implements.
enum StandardOperators {
    static let specs: [OperatorSpec] = [
        OperatorSpec("", "Add", since: 1, BinaryArithmeticKernel.make(.add)),
        OperatorSpec("", "Sub", since: 1, BinaryArithmeticKernel.make(.sub)),
        OperatorSpec("", "Mul", since: 1, BinaryArithmeticKernel.make(.mul)),
        OperatorSpec("", "Div", since: 1, BinaryArithmeticKernel.make(.div)),
        OperatorSpec("", "Relu", since: 1, UnaryKernel.make(.relu)),
        OperatorSpec("", "Sigmoid", since: 1, UnaryKernel.make(.sigmoid)),
        OperatorSpec("", "Tanh", since: 1, UnaryKernel.make(.tanh)),
        OperatorSpec("", "Identity", since: 1, UnaryKernel.make(.identity)),
        OperatorSpec("", "Gemm", since: 1, GemmKernel.make),
        OperatorSpec("", "MatMul", since: 1, MatMulKernel.make),
        OperatorSpec("", "Softmax", since: 1, SoftmaxKernel.make),
        OperatorSpec("", "ArgMax", since: 1, ArgMaxKernel.make),
        OperatorSpec("", "TopK", since: 1, TopKKernel.make),
        OperatorSpec("", "Gather", since: 1, GatherKernel.make),
        OperatorSpec("", "Concat", since: 1, ConcatKernel.make),
        OperatorSpec("", "Reshape", since: 1, ReshapeKernel.make),
        OperatorSpec("", "Flatten", since: 1, FlattenKernel.make),
        OperatorSpec("", "Squeeze", since: 1, SqueezeKernel.make(unsqueeze: false)),
        OperatorSpec("", "Unsqueeze", since: 1, SqueezeKernel.make(unsqueeze: true)),
        OperatorSpec("", "Transpose", since: 1, TransposeKernel.make),
        OperatorSpec("", "Cast", since: 1, CastKernel.make),
        OperatorSpec("", "ReduceSum", since: 1, ReduceKernel.make(.sum)),
        OperatorSpec("", "ReduceMean", since: 1, ReduceKernel.make(.mean)),
        OperatorSpec("", "Constant", since: 1, ConstantKernel.make),
    ]
}
