import Foundation
import FreshlineEngine

/// Re-executes the process with `OPENBLAS_CORETYPE` set when OpenBLAS fell back to generic kernels on a CPU that
/// supports much faster ones (see `BLAS.coreTypeOverride()`): the variable is read only when the library loads.
/// The new process also gets `OPENBLAS_NUM_THREADS` (from `FRESHLINE_BLAS_THREADS`, default 1, unless already set):
/// OpenBLAS otherwise starts a thread per core when it loads, and those threads spin in `sched_yield` for their
/// first ~0.1 s though the engine never gives them work (measured with perf: 4% of a 300k-row batch run's CPU).
enum BLASCoreType {
    static func ensureFastKernels() {
        #if os(Linux)
            guard let coreType = BLAS.coreTypeOverride() else { return }
            setenv("OPENBLAS_CORETYPE", coreType, 1)
            setenv("OPENBLAS_NUM_THREADS", String(BLAS.threads), 0)
            let arguments = CommandLine.arguments
            var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
            argv.append(nil)
            execv("/proc/self/exe", &argv)
        // execv returns only on failure: carry on with the generic kernels.
        #endif
    }
}
