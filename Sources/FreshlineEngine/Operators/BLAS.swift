internal import Foundation

#if canImport(Accelerate)
    internal import Accelerate
#else
    internal import CBLAS
#endif

/// The engine's bridge to BLAS: OpenBLAS on Linux, Accelerate on macOS. Row-major `C = alpha·op(A)·op(B) + beta·C`.
public enum BLAS {
    /// Sets the number of threads OpenBLAS may use, once per process, from `FRESHLINE_BLAS_THREADS`
    /// (default 1: the engine runs one compute thread per request path, and oversubscribing two cores is slower).
    static let configured: Bool = {
        #if !canImport(Accelerate)
            // Batch outputs are megabytes; glibc serves blocks over 128 KiB with fresh mmaps, so every call paid
            // page faults for its outputs (10% of an MLP's time at batch 1024, measured with perf). Keep blocks up to
            // 64 MiB on the heap, where freed buffers are reused.
            _ = mallopt(M_MMAP_THRESHOLD, 64 << 20)
            _ = mallopt(M_TRIM_THRESHOLD, 128 << 20)
        #endif
        #if !canImport(Accelerate)
            openblas_set_num_threads(Int32(threads))
        #endif
        return true
    }()

    /// The threads OpenBLAS may use: `FRESHLINE_BLAS_THREADS`, default 1.
    public static var threads: Int {
        max(1, ProcessInfo.processInfo.environment["FRESHLINE_BLAS_THREADS"].flatMap(Int.init) ?? 1)
    }

    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = configured
        if m == 1 {
            // One row: a matrix-vector product. sgemm's packing dominates at this size; sgemv skips it.
            // c[1×n] = alpha·a[1×k]·op(B) + beta·c  ⇔  c = alpha·op(B)ᵀ·a + beta·c.
            cblas_sgemv(
                CblasRowMajor, transB ? CblasNoTrans : CblasTrans, transB ? blasInt(n) : blasInt(k),
                transB ? blasInt(k) : blasInt(n),
                alpha, b, blasInt(ldb), a, transA ? blasInt(lda) : 1, beta, c, 1)
            return
        }
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

    /// The OpenBLAS kernel family this machine should use when OpenBLAS's own detection fell back to a generic
    /// one, or `nil` when no override is needed.
    ///
    /// OpenBLAS 0.3.21 (Debian 12) does not recognise some virtualised CPUs and picks its SSE3 "Prescott" kernels:
    /// measured here, sgemm 1024×256×256 runs at 19 GFLOPS that way and at 102 GFLOPS with the SkylakeX kernels
    /// the CPU supports. OpenBLAS reads `OPENBLAS_CORETYPE` only when it loads, so the CLI re-executes itself with
    /// this value set (see `freshline`'s entry point). An `OPENBLAS_CORETYPE` already in the environment is kept.
    public static func coreTypeOverride() -> String? {
        #if canImport(Accelerate)
            return nil
        #else
            guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil else { return nil }
            guard let name = openblas_get_corename().map({ String(cString: $0) }),
                ["Prescott", "Core2", "Katmai", "Unknown"].contains(name)
            else { return nil }
            guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
                let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
            else { return nil }
            let flags = Set(flagsLine.split(separator: " ").map(String.init))
            if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) { return "SkylakeX" }
            if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
            return nil
        #endif
    }

    #if canImport(Accelerate)
        private static func blasInt(_ v: Int) -> Int32 { Int32(v) }
    #else
        private static func blasInt(_ v: Int) -> blasint { blasint(v) }
    #endif
}
