public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the repository's helper scripts from tests (`scripts/pg.sh`, `scripts/upstreams.sh`), which start servers
/// that outlive the script.
public enum ScriptRunner {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The repository's root, found from this file's path.
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Runs `scripts/NAME` with `arguments` (and `environment`, e.g. `FRESHLINE_PG_DURABLE=1`) and returns its
    /// standard output, trimmed; throws with its standard error when it fails.
    ///
    /// Output goes to files, not pipes, and the script is waited for with `system` (waitpid): a server the script
    /// leaves running in the background would hold a pipe open, and Foundation's `Process.waitUntilExit` was seen
    /// never to return once `pg_ctl` had left its server running.
    @discardableResult
    public static func run(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws
        -> String
    {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("script-\(UUID().uuidString)")
        let (outURL, errURL) = (base.appendingPathExtension("out"), base.appendingPathExtension("err"))
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let path = repository.appendingPathComponent("scripts/\(name)").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw Failure(description: "\(path) is missing or not executable")
        }
        let variables = environment.sorted { $0.key < $1.key }.map { "\($0.key)='\($0.value)' " }.joined()
        let command = variables + ([path] + arguments).map { "'\($0)'" }.joined(separator: " ")
        let status = system("\(command) </dev/null >'\(outURL.path)' 2>'\(errURL.path)'")
        let output = (try? String(contentsOf: outURL, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        guard status == 0, let output else {
            throw Failure(
                description: "scripts/\(name) \(arguments.joined(separator: " ")) failed (status \(status)): "
                    + ((try? String(contentsOf: errURL, encoding: .utf8)) ?? ""))
        }
        return output
    }

    /// Starts a server with `scripts/upstreams.sh start-KIND PORT` on a random port, trying other ports while the
    /// script finds its port taken (servers started by concurrent tests pick their ports, gRPC ones included, from
    /// the same ranges). Returns its URL and port; stop it with `upstreams.sh stop PORT`.
    public static func startUpstream(_ kind: String) throws -> (url: String, port: Int) {
        var lastError: (any Error)?
        for _ in 0..<6 {
            let port = Int.random(in: 20_000...32_000)
            do {
                return (try run("upstreams.sh", ["start-\(kind)", String(port)]), port)
            } catch let failure as Failure where failure.description.contains("in use") {
                lastError = failure
            }
        }
        throw lastError ?? Failure(description: "no free port for \(kind)")
    }
}
