import Foundation
import FreshlineCore
import FreshlineStore
import FreshlineTestSupport
import FreshlineTesting
import Testing

/// `kill -9` of `freshline run` while the provider works on its batches, with the real binary: the next run polls
/// the batches the killed one recorded and publishes, and the provider saw each range submitted once.
@Suite("Provider batch crash safety")
struct ProviderBatchCrashTests {
    @Test("kill -9 while the provider holds the batches: the next run resumes polling them, none is submitted twice")
    func killWhileProviderWorks() async throws {
        guard FileManager.default.isExecutableFile(atPath: FreshlineProcess.binary) else {
            Issue.record(
                "no freshline binary at \(FreshlineProcess.binary): build it (swift build --build-tests) first")
            return
        }
        let api = BatchAPITestDouble()
        try await api.run { url in
            var csv = "account_id,notes\n"
            for i in 0..<200 { csv += "acct-\(i),note \(i)\n" }
            let manifest = try TestManifest.write(
                BatchAPITestDouble.manifest(url: url, extra: "\n      range_rows: 100")
                    .replacingOccurrences(of: "{poll: 20ms}", with: "{poll: 50ms}") + "\nstore: state.sqlite\n")
            let folder = URL(fileURLWithPath: manifest).deletingLastPathComponent()
            try csv.write(to: folder.appendingPathComponent("accounts.csv"), atomically: true, encoding: .utf8)
            let store = try SQLiteStore(path: folder.appendingPathComponent("state.sqlite").path)

            api.hold(true)
            let victim = try FreshlineProcess.start(["run", "summary", manifest], in: folder)
            let deadline = ContinuousClock.now + .seconds(120)
            var recorded: [String] = []
            while ContinuousClock.now < deadline, victim.isRunning {
                if let run = try await store.runs(feature: "summary", limit: 1).first {
                    recorded = try await store.ranges(runID: run.id).compactMap(\.providerBatch)
                    if recorded.count == 2 { break }
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            try #require(recorded.count == 2, "both ranges' batches recorded: \(FreshlineProcess.output(victim))")
            kill(victim.processIdentifier, SIGKILL)
            await victim.exited()
            #expect(victim.terminationReason == .uncaughtSignal)
            let interrupted = try #require(try await store.runs(feature: "summary", limit: 1).first)
            #expect(interrupted.state == .running)
            #expect(try await store.publishedSnapshot(feature: "summary") == nil)

            api.hold(false)
            let resumed = try FreshlineProcess.start(["run", "summary", manifest], in: folder)
            await resumed.exited()
            let text = FreshlineProcess.output(resumed)
            #expect(resumed.terminationStatus == 0, "resumed run: \(text)")
            let finished = try #require(try await store.run(id: interrupted.id))
            #expect(finished.state == .succeeded)
            #expect(finished.resumes >= 1)
            #expect(finished.rowsWritten == 200 && finished.rowsFailed == 0)
            #expect(finished.inputTokens == 2_000 && finished.outputTokens == 1_000)
            #expect(try await store.ranges(runID: interrupted.id).compactMap(\.providerBatch) == recorded)
            // One upload and one batch per range, whatever the kill interrupted.
            #expect(api.calls(.create) == 2 && api.calls(.upload) == 2)
            #expect(api.batches.map(\.id).sorted() == recorded.sorted())
            let snapshot = try #require(try await store.publishedSnapshot(feature: "summary"))
            #expect(snapshot.keyCount == 200 && snapshot.runID == interrupted.id)
            // `freshline run` sealed the snapshot: its rows are in its file now.
            #expect(try await store.snapshot(id: snapshot.id)?.file != nil)
            #expect(try await store.chunks(snapshotID: snapshot.id).isEmpty)
            let rows = try await SnapshotRows.read(
                store, snapshot,
                directory: SnapshotRows.directory(forSQLite: folder.appendingPathComponent("state.sqlite").path))
            #expect(rows.count == 200)
            #expect(rows["acct-137"] == #"{"text":"summary: note 137"}"#)
        }
    }
}
