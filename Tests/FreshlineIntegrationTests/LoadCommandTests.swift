import AsyncHTTPClient
import Foundation
import FreshlineCore
import FreshlineRuntime
import FreshlineStore
import FreshlineTestSupport
import NIOCore
import NIOHTTP1
import Testing

/// `freshline load FEATURE --replay` against a real `freshline serve` of the real-time example: the printed
/// percentiles and counts, a request log that the load did not grow, and the run in `freshline advise`.
@Suite("freshline load")
struct LoadCommandTests {
    /// The real-time example's manifest in a folder of its own, on `port`, logging every request.
    static func exampleManifest(port: Int) throws -> URL {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        var yaml = try String(
            contentsOf: root.appendingPathComponent("examples/realtime/freshline.yaml"), encoding: .utf8)
        yaml = yaml.replacingOccurrences(
            of: "../../demo/models/fraud.onnx", with: root.appendingPathComponent("demo/models/fraud.onnx").path)
        yaml = yaml.replacingOccurrences(of: "store: .freshline/freshline.sqlite", with: "store: state.sqlite")
        yaml = yaml.replacingOccurrences(of: "latency_budget: 50ms", with: "latency_budget: 2s")
        yaml += "\nserver:\n  port: \(port)\n  request_log_sample_rate: 1\n"
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("load-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try yaml.write(to: folder.appendingPathComponent("freshline.yaml"), atomically: true, encoding: .utf8)
        return folder
    }

    /// Runs `freshline ARGUMENTS` to its end: its exit status, standard output, and standard error (through a file,
    /// so that a full pipe cannot block the process).
    static func run(_ arguments: [String], in folder: URL) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: FreshlineProcess.binary)
        process.arguments = arguments
        process.currentDirectoryURL = folder
        let errPath = folder.appendingPathComponent("stderr-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let errHandle = try #require(FileHandle(forWritingAtPath: errPath))
        process.standardError = errHandle
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        try? pipe.fileHandleForReading.close()
        process.waitUntilExit()
        try? errHandle.close()
        let err = FileManager.default.contents(atPath: errPath) ?? Data()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    static func requestLogCount(_ store: SQLiteStore) async throws -> Int {
        try await store.samples(feature: "fraud_check", since: 0, until: .infinity, limit: 100_000).count
    }

    @Test("replays recorded traffic at 4× for 5 s: percentiles per source, counts, no request-log growth, advised")
    func replay() async throws {
        guard FileManager.default.isExecutableFile(atPath: FreshlineProcess.binary) else {
            Issue.record(
                "no freshline binary at \(FreshlineProcess.binary): build it (swift build --build-tests) first")
            return
        }
        let port = Int.random(in: 20_000..<60_000)
        let folder = try Self.exampleManifest(port: port)
        let server = try FreshlineProcess.start(["serve", "freshline.yaml"], in: folder)
        defer { if server.isRunning { kill(server.processIdentifier, SIGKILL) } }
        let base = "http://127.0.0.1:\(port)"
        var up = false
        let start = ContinuousClock.now
        while !up && server.isRunning && ContinuousClock.now - start < .seconds(60) {
            if let r = try? await HTTPClient.shared.execute(
                HTTPClientRequest(url: "\(base)/healthz/live"), timeout: .seconds(2))
            {
                up = r.status.code == 200
                _ = try? await r.body.collect(upTo: 1 << 16)
            }
            if !up { try await Task.sleep(for: .milliseconds(200)) }
        }
        try #require(up, "the server did not start: \(FreshlineProcess.output(server))")

        // Production traffic: 30 transactions, 100 ms apart.
        for i in 0..<30 {
            var request = HTTPClientRequest(url: "\(base)/v1/features/fraud_check/predict")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            let tx = (0..<7).map { String(Double((i * 7 + $0) % 11) / 10) }.joined(separator: ",")
            request.body = .bytes(
                ByteBuffer(string: #"{"key": "t\#(i)", "inputs": {"tx": [\#(tx)], "risk": [0.8, 0.2]}}"#))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 20)
            #expect(response.status.code == 200, "\(String(buffer: body))")
            try await Task.sleep(for: .milliseconds(100))
        }
        let store = try SQLiteStore(path: folder.appendingPathComponent("state.sqlite").path)
        let waitStart = ContinuousClock.now
        while try await Self.requestLogCount(store) < 30 && ContinuousClock.now - waitStart < .seconds(20) {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try await Self.requestLogCount(store) == 30)

        let load = try Self.run(
            [
                "load", "fraud_check", "freshline.yaml", "--replay", "--speed", "4", "--duration", "5s", "--url", base,
            ], in: folder)
        #expect(load.status == 0, "\(load.out)\n\(load.err)")
        let out = load.out
        #expect(out.contains("load test load_") && out.contains("fraud_check at 4× for 5 s"), "\(out)")
        #expect(out.contains("30 distinct logged keys: 0 resolved to real keys, 30 synthesized"), "\(out)")
        #expect(
            out.contains("inputs: synthesized from the model's input metadata (tx: float[7], risk: float[2])"), "\(out)"
        )
        let counts = try #require(
            out.firstMatch(of: /sent (\d+), answered (\d+) \(.*\); shed (\d+), fallback (\d+), errors (\d+)/), "\(out)")
        let (sent, answered, shed, fallback, errors) = (
            Int(counts.1)!, Int(counts.2)!, Int(counts.3)!, Int(counts.4)!, Int(counts.5)!
        )
        // Open loop: every scheduled request is sent. 30 recorded over a pass of P seconds, at 4× for 5 s: about
        // 30 × 20 / P of them (P is about 3 s: the recording's pace, slower on a busy machine).
        let plan = try #require(out.firstMatch(of: /: (\d+) requests \(.*; 30 recorded over ([\d.]+) s,/), "\(out)")
        let (planned, pass) = (Int(plan.1)!, Double(plan.2)!)
        #expect(sent == planned, "\(out)")
        #expect(abs(Double(planned) - 30 * 20 / pass) <= 31, "\(out)")
        #expect(answered + shed + errors == sent && fallback <= answered, "\(out)")
        #expect(answered > 0, "\(out)")
        #expect(out.contains(/\nsource\s+count\s+p50\s+p95\s+p99\s+p99\.9\n/), "\(out)")
        #expect(out.contains(/\n(realtime|default)\s+\d+\s+[\d.]+ (µs|ms|s)/), "\(out)")
        let id = try #require(out.firstMatch(of: /recorded as (load_[0-9a-f]{16})/).map { String($0.1) }, "\(out)")
        // Not a terminal: the progress line is a plain line every few seconds on standard error.
        #expect(load.err.contains("\(id): [") && load.err.contains(" sent, "), "\(load.err)")

        // The load's requests were answered but never sampled: the log holds the 30 production requests only.
        try await Task.sleep(for: .milliseconds(2_500))
        #expect(try await Self.requestLogCount(store) == 30)
        let recorded = try await store.loadTests(feature: "fraud_check", since: 0, limit: 10)
        #expect(recorded.map(\.id) == [id])
        #expect(recorded.first?.sent == sent && recorded.first?.speed == 4)

        // A requests file: its real keys and inputs, also kept out of the request log.
        let lines = (0..<10).map { i in
            #"{"time": \#(Double(i) / 5), "key": "file-\#(i)", "inputs": {"tx": [0,0,0,0,0,0,0], "risk": [0.5,0.5]}}"#
        }
        try lines.joined(separator: "\n").write(
            to: folder.appendingPathComponent("requests.jsonl"), atomically: true, encoding: .utf8)
        let scripted = try Self.run(
            [
                "load", "fraud_check", "freshline.yaml", "--replay", "--requests", "requests.jsonl", "--speed", "2",
                "--duration", "2s", "--url", base, "--concurrency-limit", "4",
            ], in: folder)
        #expect(scripted.status == 0, "\(scripted.out)\n\(scripted.err)")
        #expect(scripted.out.contains("traffic: 10 requests from requests.jsonl"), "\(scripted.out)")
        #expect(scripted.out.contains("sent 20, answered "), "\(scripted.out)")
        try await Task.sleep(for: .milliseconds(2_500))
        #expect(try await Self.requestLogCount(store) == 30)
        // A typo in the file is reported with its line.
        try "{\"time\": 1}\n{\"key\": \"x\"}\n".write(
            to: folder.appendingPathComponent("bad.jsonl"), atomically: true, encoding: .utf8)
        let bad = try Self.run(
            ["load", "fraud_check", "freshline.yaml", "--replay", "--requests", "bad.jsonl", "--url", base], in: folder)
        #expect(bad.status != 0 && bad.err.contains("bad.jsonl:2: time: missing"), "\(bad.err)")

        let advise = try Self.run(["advise", "freshline.yaml", "--format", "json"], in: folder)
        #expect(advise.status == 0, "\(advise.err)")
        let report = try AdviceText.decode(AdviceReport.self, from: Data(advise.out.utf8))
        let latency = try #require(report.features.first { $0.feature == "fraud_check" }?.axes.latency)
        #expect(latency.loadTests.map(\.speed) == [2, 4])
        #expect(latency.loadTests.last?.id == id && latency.loadTests.last?.sent == sent)
        // The production percentiles count the 30 production requests only.
        #expect(latency.sources.reduce(0) { $0 + $1.count } == 30, "\(latency.sources)")
        #expect(latency.loadHeadroom?.runs == 2)
        #expect(advise.out.contains("\"load_tests\""))

        kill(server.processIdentifier, SIGTERM)
        server.waitUntilExit()
    }
}
