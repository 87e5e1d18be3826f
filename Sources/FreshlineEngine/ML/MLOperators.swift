/// The ai.onnx.ml operators the engine implements.
enum MLOperators {
    static let domain = "ai.onnx.ml"

    static let specs: [OperatorSpec] = [
        OperatorSpec(domain, "TreeEnsembleClassifier", since: 1, TreeEnsembleKernel.makeClassifier),
        OperatorSpec(domain, "TreeEnsembleRegressor", since: 1, TreeEnsembleKernel.makeRegressor),
        OperatorSpec(domain, "TreeEnsemble", since: 5, TreeEnsembleKernel.makeEnsemble),
        OperatorSpec(domain, "LinearClassifier", since: 1, LinearClassifierKernel.make),
        OperatorSpec(domain, "LinearRegressor", since: 1, LinearRegressorKernel.make),
        OperatorSpec(domain, "Scaler", since: 1, ScalerKernel.make),
        OperatorSpec(domain, "Normalizer", since: 1, NormalizerKernel.make),
        OperatorSpec(domain, "ArrayFeatureExtractor", since: 1, ArrayFeatureExtractorKernel.make),
        OperatorSpec(domain, "ZipMap", since: 1, ZipMapKernel.make),
        OperatorSpec(domain, "Binarizer", since: 1, BinarizerKernel.make),
        OperatorSpec(domain, "Imputer", since: 1, ImputerKernel.make),
        OperatorSpec(domain, "LabelEncoder", since: 1, LabelEncoderKernel.make),
    ]
}
