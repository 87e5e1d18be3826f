#if canImport(Accelerate)
internal import Accelerate
#else
internal import CBLAS
#endif
internal import Foundation

/// The engine's bridge to BLAS: OpenBLAS on Linux, Accelerate on macOS. Row-major `C = alpha·op(A)·op(B) + beta·C`.
enum BLAS {
    /// Sets the number of threads OpenBLAS may use, once per process, from `FRESHLINE_BLAS_THREADS`
    /// (default 1: the engine runs one compute thread per request path, and oversubscribing two cores is slower).
    static let configured: Bool = {
        #if !canImport(Accelerate)
        let threads = ProcessInfo.processInfo.environment["FRESHLINE_BLAS_THREADS"].flatMap(Int32.init) ?? 1
        openblas_set_num_threads(max(1, threads))
        #endif
        return true
    }()

    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = configured
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            blasInt(m), blasInt(n), blasInt(k), alpha, a, blasInt(lda), b, blasInt(ldb), beta, c, blasInt(ldc))
    }

    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
        a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        _ = configured
        cblas_dgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            blasInt(m), blasInt(n), blasInt(k), alpha, a, blasInt(lda), b, blasInt(ldb), beta, c, blasInt(ldc))
    }

    #if canImport(Accelerate)
    private static func blasInt(_ v: Int) -> Int32 { Int32(v) }
    #else
    private static func blasInt(_ v: Int) -> blasint { blasint(v) }
    #endif
}
