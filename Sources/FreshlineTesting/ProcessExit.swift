public import Foundation

extension Process {
    /// Waits until the process has exited without holding a thread: `waitUntilExit()` blocks one of the cooperative
    /// pool's threads (two on a 2-core machine) for as long as the process runs, and with two tests waiting so, a
    /// test double served by the same process (a Hummingbird server runs its handlers as tasks) cannot answer the
    /// process it waits for.
    public func exited() async {
        while isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        waitUntilExit()  // has exited: returns at once, and makes the termination status final
    }
}
