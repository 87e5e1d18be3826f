import Foundation
import FreshlineTestSupport
import FreshlineTesting
import Testing

/// The freshline binary as a user runs it: one spelling of the manifest argument for every command (the old
/// `-m/--manifest` of `run` and `backfill` still working, with a notice), and `check` needing no production secret.
@Suite("freshline CLI conventions")
struct CLIConventionTests {
    struct Outcome {
        var status: Int32
        var out: String
        var err: String
    }

    /// Runs the binary in `folder` with the test's environment, less `FRESHLINE_MANIFEST`, plus `environment`;
    /// killed (and recorded as an issue) if it has not exited after `limit`.
    static func freshline(
        _ arguments: [String], in folder: URL, environment: [String: String] = [:], limit: Duration = .seconds(300)
    ) async throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: FreshlineProcess.binary)
        process.arguments = arguments
        process.currentDirectoryURL = folder
        var variables = ProcessInfo.processInfo.environment
        variables["FRESHLINE_MANIFEST"] = nil
        variables.merge(environment) { _, new in new }
        process.environment = variables
        let (out, err) = (Pipe(), Pipe())
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let deadline = ContinuousClock.now + limit
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            Issue.record("freshline \(arguments.joined(separator: " ")) still running after \(limit): killed")
            process.terminate()
        }
        await process.exited()
        // Each handle closed once read (see FreshlineProcess.output).
        func read(_ pipe: Pipe) -> String {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            try? pipe.fileHandleForReading.close()
            return String(decoding: data, as: UTF8.self)
        }
        return Outcome(status: process.terminationStatus, out: read(out), err: read(err))
    }

    static func binaryBuilt() -> Bool {
        guard FileManager.default.isExecutableFile(atPath: FreshlineProcess.binary) else {
            Issue.record(
                "no freshline binary at \(FreshlineProcess.binary): build it (swift build --build-tests) first")
            return false
        }
        return true
    }

    @Test("run and backfill take the manifest after the feature; -m/--manifest still works, with a notice on stderr")
    func manifestArgument() async throws {
        guard Self.binaryBuilt() else { return }
        let manifest = try FreshlineProcess.manifest(chunkRows: 100)
        let folder = URL(fileURLWithPath: manifest).deletingLastPathComponent()
        try FreshlineProcess.writeCSV(folder.appendingPathComponent("users.csv").path, rows: 200)
        let notice = "notice: -m/--manifest is deprecated; give the manifest after the feature: "

        var version = 0
        for arguments in [
            ["run", "churn", manifest], ["run", "churn", "-m", manifest], ["run", "--manifest", manifest, "churn"],
            ["run", "churn"],  // freshline.yaml in the current folder
            ["backfill", "churn", manifest, "--keys", "u1,u2"], ["backfill", "churn", "-m", manifest, "--keys", "u3"],
        ] {
            version += 1
            let outcome = try await Self.freshline(arguments, in: folder)
            let shown = arguments.joined(separator: " ")
            #expect(outcome.status == 0, "\(shown): \(outcome.out)\(outcome.err)")
            #expect(outcome.out.contains("published churn v\(version) with 200 keys"), "\(shown): \(outcome.out)")
            let deprecated = arguments.contains("-m") || arguments.contains("--manifest")
            let notices = outcome.err.split(separator: "\n").filter { $0.hasPrefix("notice: ") }
            if deprecated {
                let spelled = "freshline \(arguments[0]) churn \(manifest)"
                #expect(notices == [Substring(notice + spelled)], "\(shown): \(outcome.err)")
                #expect(!outcome.out.contains("deprecated"))
            } else {
                #expect(notices.isEmpty, "\(shown): \(outcome.err)")
            }
        }
        // Given both ways: refused before anything runs.
        let twice = try await Self.freshline(["run", "churn", manifest, "-m", manifest], in: folder)
        #expect(twice.status != 0)
        #expect(twice.err.contains("the manifest is given twice"), "\(twice.err)")
        // $FRESHLINE_MANIFEST stands in for a missing argument, from any folder.
        let elsewhere = try await Self.freshline(
            ["run", "churn"], in: FileManager.default.temporaryDirectory, environment: ["FRESHLINE_MANIFEST": manifest])
        #expect(
            elsewhere.status == 0 && elsewhere.out.contains("published churn v7"), "\(elsewhere.out)\(elsewhere.err)")
    }

    @Test("check reports an unset secret variable as a warning and passes; serve refuses to start without it")
    func unsetSecret() async throws {
        guard Self.binaryBuilt() else { return }
        let suffix = UUID().uuidString.prefix(8).uppercased()
        let (secret, token) = ("FRESHLINE_TEST_SECRET_\(suffix)", "FRESHLINE_TEST_TOKEN_\(suffix)")
        let manifest = try TestManifest.write(
            """
            version: 1
            models:
              gbdt: ZOO/gbc_binary.onnx
            features:
              report:
                model: gbdt
                pattern: async
            tokens:
              - {name: app, token_env: \(token), scopes: [predict]}
            server:
              webhooks:
                secret_env: \(secret)
            store: state.sqlite
            """)
        let folder = URL(fileURLWithPath: manifest).deletingLastPathComponent()

        let check = try await Self.freshline(["check", manifest], in: folder)
        #expect(check.status == 0, "\(check.out)\(check.err)")
        #expect(check.out.hasPrefix("\(manifest): ok — 1 models, 1 features"), "\(check.out)")
        #expect(
            check.err.split(separator: "\n") == [
                "warning: \(manifest):9: tokens[0].token_env: environment variable \(token) is not set (serving refuses to start without it)",
                "warning: \(manifest):12: server.webhooks.secret_env: environment variable \(secret) is not set (serving refuses to start without it)",
            ], "\(check.err)")

        // Set: no warning.
        let set = try await Self.freshline(
            ["check", manifest], in: folder, environment: [secret: "whsec", token: "app-secret"])
        #expect(set.status == 0 && set.err.isEmpty, "\(set.out)\(set.err)")

        // Any other problem still fails the check.
        let broken = try TestManifest.write(
            try String(contentsOfFile: manifest, encoding: .utf8).replacingOccurrences(
                of: "pattern: async", with: "pattern: async\n    latency_budget: soon"))
        let failed = try await Self.freshline(["check", broken], in: folder)
        #expect(failed.status != 0 && failed.err.contains("features.report.latency_budget"), "\(failed.err)")

        // Serving needs the secrets: refused at start-up, naming the variables, before listening.
        let serve = try await Self.freshline(
            ["serve", manifest, "--port", "0"], in: folder, environment: [token: "app-secret"], limit: .seconds(120))
        #expect(serve.status != 0)
        #expect(
            serve.err.contains(
                "\(manifest):12: server.webhooks.secret_env: environment variable \(secret) is not set"),
            "\(serve.out)\(serve.err)")
    }
}
