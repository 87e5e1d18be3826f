import Foundation
import FreshlineCore
import FreshlineStore
import FreshlineTestSupport
import Testing

/// The batch publish guard (`BatchPublishGuardTests`) on the real `freshline` binary: `freshline check` catches a
/// column list that cannot fill its input before any run, and `freshline run` over `batch.max_failed_share` exits
/// non-zero and publishes nothing.
@Suite("Batch publish guard: the command line")
struct BatchPublishGuardCommandLineTests {
    @Test(
        "freshline check: a column list that does not fill its input is an error at its line; freshline run over the limit exits non-zero and publishes nothing"
    )
    func commandLine() async throws {
        guard FileManager.default.isExecutableFile(atPath: FreshlineProcess.binary) else {
            Issue.record(
                "no freshline binary at \(FreshlineProcess.binary): build it (swift build --build-tests) first")
            return
        }
        let columns = BatchFixture.columns
        let (manifest, rows) = try BatchFixture.write(features: "")
        let folder = URL(fileURLWithPath: manifest).deletingLastPathComponent()
        func write(_ mapped: [String], share: String) throws {
            try """
            version: 1
            models:
              gbdt: \(TestManifest.zoo.path)/gbc_binary.onnx
            features:
              churn:
                model: gbdt
                pattern: batch
                key: user_id
                batch:
                  source: {csv: users.csv}
                  columns:
                    X: [\(mapped.joined(separator: ", "))]
                  max_failed_share: \(share)
            store: state.sqlite
            """.write(toFile: manifest, atomically: true, encoding: .utf8)
        }
        func freshline(_ arguments: [String]) throws -> (status: Int32, output: String) {
            // `check FILE`; `run FEATURE FILE`.
            let process = try FreshlineProcess.start(arguments + [manifest], in: folder)
            let output = FreshlineProcess.output(process)
            process.waitUntilExit()
            return (process.terminationStatus, output)
        }

        // 15 columns onto the model's 16-wide X: check names the line of the mapping, the input, its width, the
        // columns given.
        try write(Array(columns.prefix(15)), share: "0.05")
        let check = try freshline(["check"])
        #expect(check.status != 0)
        #expect(
            check.output.contains(
                "\(manifest):12: features.churn.batch.columns.X: input 'X' of model 'gbdt' takes 16 value(s) per row (per-row shape [16]"
            ), "\(check.output)")
        #expect(check.output.contains("but 15 column(s) are mapped: f0, f1, f2"))
        // A share out of range is located too.
        try write(columns, share: "1.5")
        let range = try freshline(["check"])
        #expect(range.status != 0)
        #expect(
            range.output.contains("\(manifest):13: features.churn.batch.max_failed_share: must be a number from 0"),
            "\(range.output)")

        // A good run publishes; then a source where every row fails: exit non-zero, v1 stays published.
        try write(columns, share: "0.05")
        #expect(try freshline(["check"]).status == 0)
        let first = try freshline(["run", "churn"])
        #expect(first.status == 0, "\(first.output)")
        try BatchFixture.brokenCSV(rows: 500).write(
            to: folder.appendingPathComponent("users.csv"), atomically: true, encoding: .utf8)
        let bad = try freshline(["run", "churn"])
        #expect(bad.status != 0)
        #expect(bad.output.contains("500 of 500 rows failed (100%)"), "\(bad.output)")
        #expect(bad.output.contains("batch.max_failed_share 0.05 (5%)"))
        #expect(bad.output.contains("first failure: users.csv:2: column 'f0' (input 'X')"))
        let store = try SQLiteStore(path: folder.appendingPathComponent("state.sqlite").path)
        let published = try #require(try await store.publishedSnapshot(feature: "churn"))
        #expect(published.version == 1 && published.keyCount == rows.count)
        #expect(try await store.runs(feature: "churn", limit: 1).first?.state == .failed)
    }
}
