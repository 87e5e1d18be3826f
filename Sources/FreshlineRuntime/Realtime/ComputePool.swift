internal import NIOPosix

/// The dedicated threads that run models for the real-time path, so that compute never blocks an event loop or
/// the cooperative pool. One thread by default: on a 2-core machine the other core serves HTTP.
final class ComputePool: Sendable {
    private let pool: NIOThreadPool

    init(threads: Int) {
        pool = NIOThreadPool(numberOfThreads: max(1, threads))
        pool.start()
    }

    /// Runs `work` on a compute thread. `work` reports its own result (it resumes the waiting requests), so it
    /// runs even while the pool is shutting down: no accepted request is left without an answer.
    func submit(_ work: @escaping @Sendable () -> Void) {
        pool.submit { _ in work() }
    }

    /// Runs `work` on a compute thread and returns its result.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            pool.submit { _ in continuation.resume(with: Result { try work() }) }
        }
    }

    func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
