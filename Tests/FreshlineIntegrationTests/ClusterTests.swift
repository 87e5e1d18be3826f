import AsyncHTTPClient
import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlinePostgres
import FreshlineRuntime
import FreshlineSnapshot
import FreshlineTestSupport
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// Several `freshline` processes on one PostgreSQL database (the real binary, real sockets, `kill -9`): servers
/// that share snapshots, workers that share a batch run's ranges and the job queue.
@Suite("Cluster (PostgreSQL, several processes)", .serialized)
struct ClusterTests {
    static let logger = Logger(label: "freshline.test.cluster")

    /// A fresh database on the test server (`FRESHLINE_POSTGRES_URL`); the tests fail, not skip, without one.
    /// `dropDatabase(url)` removes it at the end.
    static func database() async throws -> String {
        guard let server = ProcessInfo.processInfo.environment["FRESHLINE_POSTGRES_URL"], !server.isEmpty else {
            throw ClusterError(
                "FRESHLINE_POSTGRES_URL is not set: `make test` starts a throwaway PostgreSQL (scripts/with-pg.sh)")
        }
        let name = "freshline_c_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        return try await PostgresStore.createDatabase(named: name, server: server, logger: logger)
    }

    /// Runs `body` with a fresh database, dropped afterwards (its processes stopped by then) whether `body` throws
    /// or not.
    static func withDatabase(_ body: (String) async throws -> Void) async throws {
        let url = try await database()
        do { try await body(url) } catch {
            await dropDatabase(url)
            throw error
        }
        await dropDatabase(url)
    }

    /// Drops a database `database()` made.
    static func dropDatabase(_ url: String) async {
        guard let server = ProcessInfo.processInfo.environment["FRESHLINE_POSTGRES_URL"],
            let name = url.split(separator: "/").last?.split(separator: "?").first
        else { return }
        do { try await PostgresStore.dropDatabase(named: String(name), server: server, logger: logger) } catch {
            Issue.record("could not drop the test database \(name): \(error)")
        }
    }

    struct ClusterError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// A `freshline` process of the test; its output goes to a file (read when a test fails).
    final class Node: @unchecked Sendable {
        let process: Process
        let name: String
        let log: URL
        let port: Int?

        init(_ name: String, _ arguments: [String], store: String, folder: URL, port: Int? = nil) throws {
            self.name = name
            self.port = port
            log = folder.appendingPathComponent("\(name).log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            process = Process()
            process.executableURL = URL(fileURLWithPath: FreshlineProcess.binary)
            process.arguments = arguments
            process.currentDirectoryURL = folder
            var environment = ProcessInfo.processInfo.environment
            environment["FRESHLINE_STORE"] = store
            process.environment = environment
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }

        var pid: Int32 { process.processIdentifier }
        var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        /// The `host:pid` prefix the process's leases carry.
        var owner: String { "\(ProcessInfo.processInfo.hostName):\(pid)" }

        func kill9() {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }

        func stop() {
            guard process.isRunning else { return }
            kill(pid, SIGTERM)
            process.waitUntilExit()
        }
    }

    static func freePort() -> Int { Int.random(in: 20_000...45_000) }

    static func server(_ name: String, manifest: String, store: String, folder: URL, batchWorkers: Int) async throws
        -> Node
    {
        for _ in 0..<5 {
            let port = freePort()
            let node = try Node(
                name,
                ["serve", manifest, "--port", "\(port)", "--batch-workers", "\(batchWorkers)"],
                store: store, folder: folder, port: port)
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline && node.process.isRunning {
                if await isLive(port) { return node }
                try await Task.sleep(for: .milliseconds(50))
            }
            if node.process.isRunning {
                node.stop()
                throw ClusterError("\(name) did not start: \(node.output)")
            }
            // Most likely the port was taken: try another.
        }
        throw ClusterError("\(name) could not start on any port")
    }

    static func worker(_ name: String, manifest: String, store: String, folder: URL) throws -> Node {
        try Node(
            name, ["worker", manifest, "--concurrency", "1", "--batch-workers", "1"], store: store, folder: folder)
    }

    static func isLive(_ port: Int) async -> Bool {
        let request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/healthz/live")
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)) else { return false }
        _ = try? await response.body.collect(upTo: 1 << 16)
        return response.status == .ok
    }

    @discardableResult
    static func get(_ port: Int, _ path: String) async throws -> JSONValue {
        try await call(port, path, method: .GET, body: nil)
    }

    @discardableResult
    static func post(_ port: Int, _ path: String, _ body: String) async throws -> JSONValue {
        try await call(port, path, method: .POST, body: body)
    }

    static func call(_ port: Int, _ path: String, method: HTTPMethod, body: String?) async throws -> JSONValue {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let value = try JSONValue.parse(Array(bytes.readableBytesView))
        guard (200..<300).contains(Int(response.status.code)) else {
            throw ClusterError("\(method) \(path) → \(response.status.code): \(value)")
        }
        return value
    }

    static func string(_ value: JSONValue, _ key: String) -> String? {
        if case .object(let o) = value, case .string(let s)? = o[key] { return s }
        return nil
    }

    static func manifest(rows: Int, rangeRows: Int, schedule: String? = nil) throws -> String {
        let path = try TestManifest.write(
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
                  \(schedule.map { "schedule: \"\($0)\"\n      catch_up: once" } ?? "catch_up: skip")
                  source: {csv: users.csv}
                  columns:
                    X: [\((0..<16).map { "f\($0)" }.joined(separator: ", "))]
                  chunk_rows: 1000
                  range_rows: \(rangeRows)
                  threads: 1
                  cold_start: error
              report:
                model: gbdt
                pattern: async
                async: {visibility_timeout: 5s, max_attempts: 5}
            server:
              job_workers: 0
              max_body_bytes: 16777216
            store: state.sqlite
            """)
        let here = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FreshlineProcess.writeCSV(here.appendingPathComponent("users.csv").path, rows: rows)
        return path
    }

    /// Processes of one test on a fresh database: servers (each with its batch-worker count), `freshline worker`
    /// processes, and the test's own store on the same database.
    struct Cluster {
        let servers: [Node]
        let workers: [Node]
        let store: PostgresStore
    }

    /// Starts a cluster over a manifest of `rows` users, runs `body`, then stops every process and drops the database.
    static func withCluster(
        rows: Int, rangeRows: Int, schedule: String? = nil, serverBatchWorkers: [Int], workers: Int,
        _ body: (Cluster) async throws -> Void
    ) async throws {
        try await withDatabase { url in
            let manifest = try Self.manifest(rows: rows, rangeRows: rangeRows, schedule: schedule)
            let here = URL(fileURLWithPath: manifest).deletingLastPathComponent()
            var nodes: [Node] = []
            defer { for node in nodes { node.stop() } }
            // Servers start together (as after a deploy), each on a port of its own.
            let servers = try await withThrowingTaskGroup(of: (Int, Node).self) { group in
                for (index, batchWorkers) in serverBatchWorkers.enumerated() {
                    group.addTask {
                        let node = try await server(
                            "server-\(index + 1)", manifest: manifest, store: url, folder: here,
                            batchWorkers: batchWorkers)
                        return (index, node)
                    }
                }
                var started: [(Int, Node)] = []
                for try await item in group { started.append(item) }
                return started.sorted { $0.0 < $1.0 }.map(\.1)
            }
            nodes += servers
            var started: [Node] = []
            for index in 0..<workers {
                started.append(try worker("worker-\(index + 1)", manifest: manifest, store: url, folder: here))
                nodes.append(started[index])
            }
            let store = try PostgresStore(url: url, logger: logger)
            let service = Task { try await store.run() }
            defer { service.cancel() }
            try await body(Cluster(servers: servers, workers: started, store: store))
        }
    }

    // MARK: Tests

    @Test("a snapshot published through one server is served by the other within a second")
    func snapshotReachesTheOtherServer() async throws {
        try await Self.withCluster(rows: 3000, rangeRows: 1000, serverBatchWorkers: [1, 0], workers: 0) { cluster in
            let (a, b, store) = (cluster.servers[0], cluster.servers[1], cluster.store)
            let body = #"{"key": "u7"}"#
            for version in 1...2 {
                let run = try await Self.post(a.port!, "/v1/features/churn/runs", "{}")
                let runID = try #require(Self.string(run, "id"))
                // Poll both servers until each answers from the new snapshot; note when each first did.
                let served = try await withThrowingTaskGroup(of: (String, Double?).self) { group in
                    for node in [a, b] {
                        group.addTask {
                            let deadline = ContinuousClock.now + .seconds(60)
                            while ContinuousClock.now < deadline {
                                if let answer = try? await Self.post(node.port!, "/v1/features/churn/predict", body),
                                    Self.string(answer, "snapshot") == "v\(version)"
                                {
                                    #expect(Self.string(answer, "source") == "batch")
                                    return (node.name, Date().timeIntervalSince1970)
                                }
                                try await Task.sleep(for: .milliseconds(10))
                            }
                            return (node.name, nil)
                        }
                    }
                    var times: [String: Double?] = [:]
                    for try await (name, time) in group { times[name] = time }
                    return times
                }
                let snapshot = try #require(
                    try await store.snapshots(feature: "churn", limit: 5).first {
                        $0.runID == runID && $0.state == .published
                    })
                let published = try #require(snapshot.publishedAt)
                #expect(snapshot.keyCount == 3000)
                for node in [a, b] {
                    let time = try #require(
                        served[node.name] ?? nil, "\(node.name) never served v\(version): \(node.output)")
                    // Server A published it (its worker completed the last range); server B learned of it by NOTIFY.
                    #expect(
                        time - published < 1.0,
                        "\(node.name) served v\(version) \(time - published) s after the publish")
                }
            }
            // The run was computed by server A alone (B has no range workers).
            let runs = try await store.runs(feature: "churn", limit: 5)
            for run in runs {
                let owners = Set(try await store.ranges(runID: run.id).compactMap(\.owner))
                #expect(owners == [a.owner], "ranges of \(run.id) owned by \(owners)")
            }
            await #expect(try store.publishedSnapshot(feature: "churn")?.version == 2)
        }
    }

    @Test("servers that all find a missed schedule slot at start-up run it once between them")
    func missedSlotRunsOnce() async throws {
        // Two servers, each with a range worker, both catching up the same yearly slot as they start; each runs its
        // catch-up while the other may already have: the store lets one run per slot start.
        try await Self.withCluster(
            rows: 20_000, rangeRows: 5000, schedule: "0 0 1 1 *", serverBatchWorkers: [1, 1], workers: 0
        ) { cluster in
            let store = cluster.store
            let deadline = ContinuousClock.now + .seconds(60)
            var runs: [BatchRun] = []
            while ContinuousClock.now < deadline {
                runs = try await store.runs(feature: "churn", limit: 10)
                if !runs.isEmpty && runs.allSatisfy({ $0.state != .running }) { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(runs.count == 1, "runs: \(runs.map { "\($0.id) \($0.trigger) \($0.state)" })")
            let run = try #require(runs.first)
            #expect(run.trigger == .catchUp && run.state == .succeeded)
            let logs = cluster.servers.map(\.output).joined(separator: "\n")
            // Both servers usually see the slot missed (they start together) and one of them is refused by the store;
            // either way, one run.
            #expect(logs.contains("catching up once now"), "\(logs)")
        }
    }

    @Test("two workers share a sharded run; kill -9 of one mid-run: its range is re-leased, the run publishes once")
    func shardedRunSurvivesAWorker() async throws {
        let total = 120_000
        try await Self.withCluster(rows: total, rangeRows: 6000, serverBatchWorkers: [0, 0], workers: 2) { cluster in
            let (a, b, w1, w2) = (cluster.servers[0], cluster.servers[1], cluster.workers[0], cluster.workers[1])
            let store = cluster.store
            let run = try await Self.post(b.port!, "/v1/features/churn/runs", "{}")
            let runID = try #require(Self.string(run, "id"))
            // Wait until both workers are on the run, then kill worker 1 in the middle of a range.
            var victimRange: RunRange?
            let deadline = ContinuousClock.now + .seconds(120)
            while ContinuousClock.now < deadline && victimRange == nil {
                let ranges = try await store.ranges(runID: runID)
                let leased = ranges.filter { $0.state == .leased }
                // Worker 1 has finished a range, holds another with rows checkpointed; worker 2 holds one too.
                if leased.contains(where: { $0.owner == w2.owner }),
                    ranges.contains(where: { $0.owner == w1.owner && $0.state == .done }),
                    let mine = leased.first(where: { $0.owner == w1.owner && $0.rowsDone > 0 && $0.rowsDone < $0.rows })
                {
                    w1.kill9()
                    victimRange = mine
                }
                try await Task.sleep(for: .milliseconds(5))
            }
            let killed = try #require(victimRange, "never saw both workers on the run: \(w1.output)\n\(w2.output)")

            // The run finishes on worker 2 and publishes once.
            let finish = ContinuousClock.now + .seconds(240)
            var finished: BatchRun?
            while ContinuousClock.now < finish {
                if let current = try await store.run(id: runID), current.state != .running {
                    finished = current
                    break
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            let done = try #require(finished, "the run did not finish: \(w2.output)")
            #expect(done.state == .succeeded, "\(done)")
            #expect(done.rowsDone == total && done.rowsWritten == total && done.rowsFailed == 0, "\(done)")
            #expect(done.resumes >= 1)
            let ranges = try await store.ranges(runID: runID)
            #expect(ranges.allSatisfy { $0.state == .done })
            let retaken = try #require(ranges.first { $0.index == killed.index })
            #expect(retaken.owner == w2.owner)
            #expect(retaken.leases >= 2)
            #expect(ranges.contains { $0.owner == w1.owner }, "worker 1 finished no range before it was killed")
            let published = try await store.snapshots(feature: "churn", limit: 10).filter { $0.runID == runID }
            #expect(published.count == 1)
            let snapshot = try #require(published.first)
            #expect(snapshot.state == .published && snapshot.keyCount == total)
            // Every row exactly once, with the model's answer (rows around the killed range's checkpoint included).
            // The worker that published sealed it: the file, in parts in PostgreSQL, materialised here as a new
            // host would, holds each row once.
            try await Wait.until("the publishing worker seals v\(snapshot.version)") {
                try await store.snapshot(id: snapshot.id)?.file != nil
            }
            let sealed = try #require(try await store.snapshot(id: snapshot.id))
            #expect(try await store.chunks(snapshotID: snapshot.id).isEmpty)
            let host = FileManager.default.temporaryDirectory.appendingPathComponent("host-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: host) }
            let file = try await SnapshotRows.file(store, sealed, directory: host)
            #expect(file.metadata.rows == total && file.metadata.keyCount == total)
            let table = SnapshotTable(info: sealed, file: file)
            let model = try Model(contentsOf: TestManifest.zoo.appendingPathComponent("gbc_binary.onnx"))
            let checkpoint = killed.rowStart + killed.rowsDone
            for i in [0, checkpoint - 1, checkpoint, killed.rowEnd - 1, total - 1] {
                let feeds = try RowBatch.tensors(
                    rows: [["X": .array(FreshlineProcess.features(i).map { .number(Double($0)) })]],
                    inputs: model.metadata.inputs)
                let expected = try RowBatch.rows(outputs: try model.run(feeds), count: 1)[0]
                #expect(table.outputs(for: "u\(i)") == expected, "row u\(i)")
            }
            // Both servers serve it. Until a server has swapped the snapshot in (on the store's announcement or its
            // next poll) it answers 404, as for a key it does not have: keep asking until the deadline.
            for server in [a, b] {
                let deadlineServe = ContinuousClock.now + .seconds(20)
                var version: String?
                while ContinuousClock.now < deadlineServe && version != "v1" {
                    version = Self.string(
                        (try? await Self.post(server.port!, "/v1/features/churn/predict", #"{"key":"u1"}"#)) ?? .null,
                        "snapshot")
                    if version != "v1" { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(version == "v1", "\(server.name) serves \(version ?? "nothing")")
            }
        }
    }

    @Test("kill -9 of the worker holding a job: it is re-leased to the other worker; every job ends with one result")
    func jobsSurviveAWorker() async throws {
        try await Self.withCluster(rows: 10, rangeRows: 1000, serverBatchWorkers: [0, 0], workers: 2) { cluster in
            let (a, b, w1, w2) = (cluster.servers[0], cluster.servers[1], cluster.workers[0], cluster.workers[1])
            let store = cluster.store
            func rows(_ range: Range<Int>) -> String {
                let items = range.map { i in
                    #"{"key":"u\#(i)","inputs":{"X":[\#(FreshlineProcess.features(i).map { String($0) }.joined(separator: ","))]}}"#
                }
                return #"{"rows":[\#(items.joined(separator: ","))]}"#
            }
            // One large job, then small ones through both servers.
            let big = try await Self.post(a.port!, "/v1/features/report/jobs", rows(0..<20_000))
            let bigID = try #require(Self.string(big, "id"))
            var ids = [bigID]
            for i in 0..<24 {
                let server = i % 2 == 0 ? a : b
                let job = try await Self.post(server.port!, "/v1/features/report/jobs", rows(i * 10..<(i * 10 + 10)))
                ids.append(try #require(Self.string(job, "id")))
            }
            // Kill the worker holding the large job once it has reported progress.
            var victim: Node?
            let deadline = ContinuousClock.now + .seconds(120)
            while ContinuousClock.now < deadline && victim == nil {
                if let job = try await store.job(id: bigID), job.state == .running, job.rowsDone > 0,
                    let owner = job.leaseOwner
                {
                    victim = owner.hasPrefix(w1.owner + "/") ? w1 : owner.hasPrefix(w2.owner + "/") ? w2 : nil
                    victim?.kill9()
                }
                try await Task.sleep(for: .milliseconds(5))
            }
            let killed = try #require(victim, "the large job never ran on a worker: \(w1.output)\n\(w2.output)")
            let survivor = killed === w1 ? w2 : w1

            let finish = ContinuousClock.now + .seconds(240)
            var jobs: [Job] = []
            while ContinuousClock.now < finish {
                jobs = try await ids.asyncMap { try await store.job(id: $0) }.compactMap { $0 }
                if jobs.count == ids.count && jobs.allSatisfy({ $0.state.isFinal }) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(jobs.count == ids.count)
            var workers: [String: Int] = [:]
            for job in jobs {
                #expect(job.state == .succeeded, "\(job.id): \(job.state) \(job.lastError ?? "")")
                guard let result = job.result, case .object(let object) = try JSONValue.parse(result),
                    case .array(let answers)? = object["results"], case .string(let worker)? = object["worker"]
                else {
                    Issue.record("\(job.id) has no result")
                    continue
                }
                #expect(answers.count == job.rowsTotal, "\(job.id): \(answers.count) answers for \(job.rowsTotal) rows")
                workers[String(worker.prefix { $0 != "/" }), default: 0] += 1
            }
            let bigJob = try #require(jobs.first { $0.id == bigID })
            #expect(bigJob.attempts >= 2, "the large job ran \(bigJob.attempts) time(s)")
            #expect(Self.resultWorker(bigJob)?.hasPrefix(survivor.owner + "/") == true)
            #expect(workers.values.reduce(0, +) == ids.count)
            #expect(workers.keys.allSatisfy { $0 == w1.owner || $0 == w2.owner }, "\(workers)")
        }
    }

    static func resultWorker(_ job: Job) -> String? {
        guard let result = job.result, case .object(let object)? = try? JSONValue.parse(result),
            case .string(let worker)? = object["worker"]
        else { return nil }
        return worker
    }
}

extension Sequence where Element: Sendable {
    /// Maps in order, one element at a time.
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
