public import Foundation

/// The real `freshline` binary, started by the integration tests (`kill -9` during a run or a job, SIGTERM, the
/// command line), and the fixture they run it over: the zoo's GBDT over a generated `users.csv`.
public enum FreshlineProcess {
    /// The `freshline` executable the test build produced (`swift build --build-tests` builds it), or
    /// `$FRESHLINE_BINARY`.
    public static var binary: String {
        if let path = ProcessInfo.processInfo.environment["FRESHLINE_BINARY"] { return path }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/freshline").path
    }

    public static func writeCSV(_ path: String, rows: Int) throws {
        var text = "user_id," + (0..<16).map { "f\($0)" }.joined(separator: ",") + "\n"
        text.reserveCapacity(rows * 120)
        for i in 0..<rows { text += "u\(i)," + features(i).map { String($0) }.joined(separator: ",") + "\n" }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Deterministic inputs for row `i`.
    public static func features(_ i: Int) -> [Float] {
        (0..<16).map { j in Float((i * 31 + j * 17) % 97) / 24 - 2 }
    }

    /// Starts `freshline ARGUMENTS` in `folder`, its standard output and error on pipes (read them with `output`).
    public static func start(_ arguments: [String], in folder: URL) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.currentDirectoryURL = folder
        process.standardOutput = Pipe()
        process.standardError = Pipe()
        try process.run()
        return process
    }

    /// A manifest (in a folder of its own) of feature `churn`: the zoo's GBDT over `users.csv`, into `state.sqlite`.
    public static func manifest(chunkRows: Int, threads: Int? = nil) throws -> String {
        try TestManifest.write(
            """
            version: 1
            models:
              gbdt: ZOO/gbc_binary.onnx
            features:
              churn:
                model: gbdt
                pattern: batch
                key: user_id
                batch:
                  source: {csv: users.csv}
                  columns:
                    X: [\((0..<16).map { "f\($0)" }.joined(separator: ", "))]
                  chunk_rows: \(chunkRows)\(threads.map { "\n      threads: \($0)" } ?? "")
            store: state.sqlite
            """)
    }

    /// What a process started by `start` wrote: its standard output, then its standard error (read to their ends).
    public static func output(_ process: Process) -> String {
        // Each handle closed explicitly once read: left to deallocation, corelibs Foundation can close a pipe's
        // descriptor after its number was reused by another test's file (swiftlang/swift#57827); a snapshot writer
        // in a concurrent test then failed with "Bad file descriptor".
        func read(_ pipe: Any?) -> Data {
            guard let handle = (pipe as? Pipe)?.fileHandleForReading else { return Data() }
            let data = handle.readDataToEndOfFile()
            try? handle.close()
            return data
        }
        let out = read(process.standardOutput)
        let err = read(process.standardError)
        return String(decoding: out, as: UTF8.self) + String(decoding: err, as: UTF8.self)
    }
}
