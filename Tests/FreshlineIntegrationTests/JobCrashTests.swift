import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineRuntime
import FreshlineStore
import FreshlineTestSupport
import FreshlineTesting
import Logging
import Metrics
import Testing

/// `kill -9` of a `freshline worker` in the middle of a job: the job's lease runs out, another worker takes it,
/// and it completes once, with every row.
@Suite("Async job crash safety")
struct JobCrashTests {
    @Test("kill -9 of a worker mid-job: the job completes once, after the lease expires, on another worker")
    func killWorker() async throws {
        guard FileManager.default.isExecutableFile(atPath: FreshlineProcess.binary) else {
            Issue.record(
                "no freshline binary at \(FreshlineProcess.binary): build it (swift build --build-tests) first")
            return
        }
        let manifestPath = try TestManifest.write(
            """
            version: 1
            models:
              gbdt: ZOO/gbc_binary.onnx
            features:
              report:
                model: gbdt
                pattern: async
                async: {visibility_timeout: 5s, max_attempts: 5}
            store: state.sqlite
            """)
        let folder = URL(fileURLWithPath: manifestPath).deletingLastPathComponent()
        let store = try SQLiteStore(path: folder.appendingPathComponent("state.sqlite").path)
        let manifest = try ManifestLoader.load(path: manifestPath)
        let runtime = try ServingRuntime(
            manifest: manifest, metricsFactory: NOOPMetricsHandler.instance, requestLogStore: nil, jobStore: store,
            jobWorkers: 0, logger: Logger(label: "test"))
        let jobs = try #require(runtime.jobs)
        let total = 20_000
        let rows = (0..<total).map { i in
            PredictRequest(
                key: "k\(i)", inputs: ["X": .array(FreshlineProcess.features(i).map { .number(Double($0)) })])
        }
        let (job, created) = try await jobs.submit(
            feature: "report", rows: rows, owner: "", idempotencyKey: nil, requestHash: nil)
        #expect(created)

        let first = try FreshlineProcess.start(["worker", manifestPath, "--concurrency", "1"], in: folder)
        let deadline = ContinuousClock.now + .seconds(120)
        var killed = false
        while ContinuousClock.now < deadline && first.isRunning {
            if let current = try await store.job(id: job.id), current.state == .running, current.rowsDone > 0 {
                kill(first.processIdentifier, SIGKILL)
                killed = true
                break
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        await first.exited()
        #expect(killed, "the worker never reported progress: \(FreshlineProcess.output(first))")
        let interrupted = try #require(try await store.job(id: job.id))
        #expect(interrupted.state == .running, "the job finished before the worker was killed")
        #expect(interrupted.result == nil)
        #expect(interrupted.rowsDone > 0 && interrupted.rowsDone < total)
        #expect(interrupted.partial != nil, "partial results are recorded as rows finish")

        // A second worker takes the job once the dead worker's lease runs out, and finishes it.
        let second = try FreshlineProcess.start(["worker", manifestPath, "--concurrency", "1"], in: folder)
        defer { if second.isRunning { kill(second.processIdentifier, SIGKILL) } }
        var done: Job?
        while ContinuousClock.now < deadline {
            if let current = try await store.job(id: job.id), current.state.isFinal {
                done = current
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let finished = try #require(done, "the job did not finish: \(FreshlineProcess.output(second))")
        #expect(finished.state == .succeeded)
        // Two attempts at least: the killed one and the finishing one. On a loaded machine a heartbeat can miss
        // the lease once more (another attempt by the same worker); the result is still recorded once.
        #expect(finished.attempts >= 2, "attempts \(finished.attempts)")
        #expect(finished.lastError?.contains("lease expired") == true)
        #expect(finished.rowsDone == total)
        guard let result = finished.result, case .object(let object) = try JSONValue.parse(result),
            case .array(let answers)? = object["results"]
        else {
            Issue.record("no result")
            return
        }
        #expect(answers.count == total)
        // Graceful shutdown of the second worker.
        kill(second.processIdentifier, SIGTERM)
        await second.exited()
        #expect(second.terminationStatus == 0, "\(FreshlineProcess.output(second))")
    }
}
