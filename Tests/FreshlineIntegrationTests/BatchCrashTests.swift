import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineRuntime
import FreshlineSnapshot
import FreshlineStore
import FreshlineTestSupport
import FreshlineTesting
import Testing

/// `kill -9` during a batch run, with the real `freshline` binary: the previous snapshot keeps serving, the next
/// `freshline run` resumes from the checkpoint, and the published snapshot holds every row exactly once.
@Suite("Batch crash safety")
struct BatchCrashTests {
    @Test("kill -9 mid-run: the old snapshot stays published, the next run joins it and publishes every row once")
    func killDuringRun() async throws {
        guard FileManager.default.isExecutableFile(atPath: FreshlineProcess.binary) else {
            Issue.record(
                "no freshline binary at \(FreshlineProcess.binary): build it (swift build --build-tests) first")
            return
        }
        let manifest = try FreshlineProcess.manifest(chunkRows: 500, threads: 1)
        let folder = URL(fileURLWithPath: manifest).deletingLastPathComponent()
        let csv = folder.appendingPathComponent("users.csv").path
        let storePath = folder.appendingPathComponent("state.sqlite").path

        // v1: a small source, run to the end.
        try FreshlineProcess.writeCSV(csv, rows: 50)
        let first = try FreshlineProcess.start(["run", "churn", manifest], in: folder)
        await first.exited()
        #expect(first.terminationStatus == 0, "first run: \(FreshlineProcess.output(first))")
        let store = try SQLiteStore(path: storePath)
        let v1 = try #require(try await store.publishedSnapshot(feature: "churn"))
        #expect(v1.version == 1 && v1.keyCount == 50)

        // v2: a large source; kill -9 once a few chunks are checkpointed.
        let total = 120_000
        try FreshlineProcess.writeCSV(csv, rows: total)
        let victim = try FreshlineProcess.start(["run", "churn", manifest], in: folder)
        var checkpoint = 0
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline && victim.isRunning {
            if let run = try await store.runs(feature: "churn", limit: 1).first, run.state == .running,
                run.rowsDone >= 1500
            {
                kill(victim.processIdentifier, SIGKILL)
                break
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        await victim.exited()
        #expect(victim.terminationReason == .uncaughtSignal, "the run ended before it could be killed")
        let interrupted = try #require(try await store.runs(feature: "churn", limit: 1).first)
        checkpoint = interrupted.rowsDone
        #expect(interrupted.state == .running)
        #expect(checkpoint > 0 && checkpoint < total)
        #expect(checkpoint % 500 == 0, "checkpoints fall on chunk boundaries")
        #expect(try await store.publishedSnapshot(feature: "churn")?.id == v1.id, "v1 keeps serving")

        // `freshline run` again joins the interrupted run: the killed worker's range is leased again (its process is
        // gone) and resumes from its checkpoint; the other ranges follow; the run publishes once.
        let resumed = try FreshlineProcess.start(["run", "churn", manifest], in: folder)
        await resumed.exited()
        let text = FreshlineProcess.output(resumed)
        #expect(resumed.terminationStatus == 0, "resumed run: \(text)")
        #expect(text.contains("joining run \(interrupted.id), in progress (\(checkpoint) of \(total) rows)"), "\(text)")
        let finished = try #require(try await store.run(id: interrupted.id))
        #expect(finished.state == .succeeded)
        // A worker computes in two lanes: when it was killed it held the range it was reading and, if that one's
        // last chunk had been read, the next one too. Each range it held is leased again once (2 seen under the load
        // of the other subprocess tests).
        #expect((1...2).contains(finished.resumes), "resumes: \(finished.resumes)")
        #expect(finished.rowsDone == total && finished.rowsWritten == total && finished.rowsFailed == 0)
        let v2 = try #require(try await store.publishedSnapshot(feature: "churn"))
        #expect(v2.version == 2 && v2.keyCount == total && v2.runID == interrupted.id)

        // Every row exactly once, with the model's answer. `freshline run` sealed the snapshot: its file is the
        // snapshot, and the chunks are gone.
        #expect(v2.file != nil)
        #expect(try await store.chunks(snapshotID: v2.id).isEmpty)
        let file = try await SnapshotRows.file(store, v2, directory: SnapshotRows.directory(forSQLite: storePath))
        #expect(file.metadata.rows == total && file.metadata.keyCount == total)
        let table = SnapshotTable(info: v2, file: file)
        let model = try Model(contentsOf: TestManifest.zoo.appendingPathComponent("gbc_binary.onnx"))
        for i in [0, checkpoint - 1, checkpoint, checkpoint + 1, total - 1] {
            let feeds = try RowBatch.tensors(
                rows: [["X": .array(FreshlineProcess.features(i).map { .number(Double($0)) })]],
                inputs: model.metadata.inputs)
            let expected = try RowBatch.rows(outputs: try model.run(feeds), count: 1)[0]
            #expect(table.outputs(for: "u\(i)") == expected, "row u\(i)")
        }
    }

    @Test(
        "kill -9 while the run seals its snapshot: it stays published as chunks, no torn file is ever mapped, the next process seals it"
    )
    func killDuringSeal() async throws {
        guard FileManager.default.isExecutableFile(atPath: FreshlineProcess.binary) else {
            Issue.record(
                "no freshline binary at \(FreshlineProcess.binary): build it (swift build --build-tests) first")
            return
        }
        let manifest = try FreshlineProcess.manifest(chunkRows: 2000)
        let folder = URL(fileURLWithPath: manifest).deletingLastPathComponent()
        let storePath = folder.appendingPathComponent("state.sqlite").path
        let directory = SnapshotRows.directory(forSQLite: storePath)
        let total = 150_000
        try FreshlineProcess.writeCSV(folder.appendingPathComponent("users.csv").path, rows: total)
        let store = try SQLiteStore(path: storePath)
        let victim = try FreshlineProcess.start(["run", "churn", manifest], in: folder)
        // Killed once the run has published and before the seal's transaction: the whole seal is that window.
        let deadline = ContinuousClock.now + .seconds(180)
        var killedUnsealed = false
        while ContinuousClock.now < deadline && victim.isRunning {
            if let published = try await store.publishedSnapshot(feature: "churn") {
                if published.file == nil {
                    kill(victim.processIdentifier, SIGKILL)
                    killedUnsealed = true
                }
                break
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        await victim.exited()
        try #require(killedUnsealed, "the run sealed before it could be killed: \(FreshlineProcess.output(victim))")
        #expect(victim.terminationReason == .uncaughtSignal)

        // Published as chunks: every row still in the store, nothing sealed.
        let info = try #require(try await store.publishedSnapshot(feature: "churn"))
        #expect(info.file == nil && info.keyCount == total)
        #expect(try await store.chunks(snapshotID: info.id).reduce(0) { $0 + $1.keys.count } == total)
        // Whatever the kill left in the folder, a file under the snapshot's own name is whole.
        let path = SnapshotFiles.path(for: info, in: directory)
        if let file = try? SnapshotFile(path: path) { #expect(file.verify() && file.metadata.keyCount == total) }
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        #expect(leftovers.allSatisfy { $0.hasSuffix(".snap") || $0.contains(".snap.tmp-\(victim.processIdentifier)") })

        // The next process to serve it writes (or finds) the file and seals it; the dead writer's temporary goes.
        let sealed = try await SnapshotStorage(store: store, directory: directory).seal(info)
        #expect(sealed.file != nil)
        #expect(try await store.chunks(snapshotID: info.id).isEmpty)
        SnapshotFiles.prune(feature: "churn", keep: [sealed], in: directory)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: directory) == [
                URL(fileURLWithPath: path).lastPathComponent
            ])
        let table = SnapshotTable(info: sealed, file: try await SnapshotRows.file(store, sealed, directory: directory))
        let model = try Model(contentsOf: TestManifest.zoo.appendingPathComponent("gbc_binary.onnx"))
        for i in [0, total / 2, total - 1] {
            let feeds = try RowBatch.tensors(
                rows: [["X": .array(FreshlineProcess.features(i).map { .number(Double($0)) })]],
                inputs: model.metadata.inputs)
            #expect(table.outputs(for: "u\(i)") == (try RowBatch.rows(outputs: try model.run(feeds), count: 1)[0]))
        }
    }
}
