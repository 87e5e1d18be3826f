/// Polling for a condition another task or process brings about.
public enum Wait {
    /// The condition did not hold within the timeout.
    public struct Timeout: Error, CustomStringConvertible {
        public let description: String
    }

    /// Returns once `condition` holds, checking it every 20 ms; throws `Timeout` ("timed out waiting until WHAT")
    /// when it still does not after `timeout`. Thrown, the error fails the test that waited.
    public static func until(
        _ what: String, timeout: Duration = .seconds(60), _ condition: () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !condition() {
            guard ContinuousClock.now < deadline else {
                throw Timeout(description: "timed out waiting until \(what) (\(timeout))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
