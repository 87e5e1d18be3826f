import Foundation
import FreshlineEngine

/// Re-executes the process with `OPENBLAS_CORETYPE` set when OpenBLAS fell back to generic kernels on a CPU that
/// supports much faster ones (see `BLAS.coreTypeOverride()`): the variable is read only when the library loads.
enum BLASCoreType {
    static func ensureFastKernels() {
        #if os(Linux)
            guard let coreType = BLAS.coreTypeOverride() else { return }
            setenv("OPENBLAS_CORETYPE", coreType, 1)
            let arguments = CommandLine.arguments
            var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
            argv.append(nil)
            execv("/proc/self/exe", &argv)
        // execv returns only on failure: carry on with the generic kernels.
        #endif
    }
}
