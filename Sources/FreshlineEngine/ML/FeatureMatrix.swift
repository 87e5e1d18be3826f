/// The `X` input of an ai.onnx.ml model operator seen as a matrix of rows: shape `[N, F]`, or `[F]` as one row.
struct FeatureMatrix {
    /// The number of rows (N).
    let rows: Int
    /// The number of features per row (F).
    let columns: Int
    /// The elements, row-major.
    let data: TensorData

    /// Views `tensor` as rows; an error for scalars, tensors of rank above 2 and non-numeric element types.
    init(_ tensor: Tensor, op: String) throws {
        switch tensor.rank {
        case 1:
            rows = 1
            columns = tensor.shape[0]
        case 2:
            rows = tensor.shape[0]
            columns = tensor.shape[1]
        default:
            throw EngineError(.invalidShape, "\(op): input X must have shape [N, F] or [F], got \(tensor.shape)")
        }
        switch tensor.data {
        case .float, .double, .int64, .int32:
            data = tensor.data
        default:
            throw EngineError(
                .unsupportedType, "\(op): input X must be float, double, int64 or int32, got \(tensor.elementType)")
        }
    }

    /// Whether the elements are doubles (which the tree ensembles evaluate in double precision).
    var isDouble: Bool { data.elementType == .double }

    /// Converts rows `start..<start+count` to `T`, writing each row's first `width` features at `stride`
    /// intervals into `out`. Requires `width <= columns`.
    func convert<T: BinaryFloatingPoint>(
        rows start: Int, count: Int, width: Int,
        into out: UnsafeMutablePointer<T>, stride: Int
    ) {
        @inline(__always)
        func copy<S>(_ source: [S], _ convert: (S) -> T) {
            source.withUnsafeBufferPointer { src in
                guard let base = src.baseAddress else { return }
                for r in 0..<count {
                    let row = base + (start + r) * columns
                    let dst = out + r * stride
                    for j in 0..<width { dst[j] = convert(row[j]) }
                }
            }
        }
        switch data {
        case .float(let v): copy(v) { T($0) }
        case .double(let v): copy(v) { T($0) }
        case .int64(let v): copy(v) { T($0) }
        case .int32(let v): copy(v) { T($0) }
        default: break
        }
    }

    /// Every element converted to `Float` (the linear models compute in single precision, as onnxruntime does).
    var floatValues: [Float] {
        switch data {
        case .float(let v): v
        case .double(let v): v.map { Float($0) }
        case .int64(let v): v.map { Float($0) }
        case .int32(let v): v.map { Float($0) }
        default: []
        }
    }
}
