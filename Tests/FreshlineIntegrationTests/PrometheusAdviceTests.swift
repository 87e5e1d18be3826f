import Foundation
import FreshlineCore
import FreshlineJSON
import FreshlineRuntime
import FreshlineTestSupport
import FreshlineTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `freshline advise --prometheus URL --feature-map FILE` against a real Prometheus (Debian's `prometheus`, started
/// here with a temporary config and storage, scraping every second) scraping a real exporter
/// (`Tests/UpstreamServers/traffic_exporter.py`, Debian's python3-prometheus-client) whose traffic is known exactly.
/// Fails, never skips, when either is missing (`make deps` installs them). Alone:
/// `swift test --skip-build --filter PrometheusAdviceTests`.
@Suite("PrometheusAdviceTests: advice from a real Prometheus", .serialized, .timeLimit(.minutes(3)))
struct PrometheusAdviceTests {
    static let prometheusBinary = "/usr/bin/prometheus"
    static let python = "/usr/bin/python3"

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// A port nobody listens on now (bound to 0 and released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) }
        }
        guard bound == 0 else { throw Failure("bind() failed") }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &size) }
        }
        guard named == 0 else { throw Failure("getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func start(_ executable: String, _ arguments: [String], log: URL) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    /// SIGTERM, then SIGKILL after 10 s; waits for the exit. (A child can inherit an ignored SIGTERM from the test
    /// runner: the exporter sets its own handler, and the kill covers the rest.)
    static func stop(_ process: Process) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// The totals the exporter wrote last before `time` (its stats file: one JSON line a second).
    static func totals(_ file: URL, before time: Double) throws -> (at: Double, requests: [String: Double]) {
        let text = try String(contentsOf: file, encoding: .utf8)
        var best: (Double, [String: Double])?
        for line in text.split(separator: "\n") {
            guard case .object(let o) = try JSONValue.parse(Array(line.utf8)), let t = o["time"]?.doubleValue,
                t <= time, case .object(let r)? = o["requests"]
            else { continue }
            best = (t, r.compactMapValues(\.doubleValue))
        }
        guard let best else { throw Failure("no stats before \(time) in \(text)") }
        return best
    }

    @Test("calls, peak, errors and percentiles read from Prometheus, within tolerance of the generated traffic")
    func adviceFromPrometheus() async throws {
        let fm = FileManager.default
        guard fm.isExecutableFile(atPath: Self.prometheusBinary) else {
            throw Failure("\(Self.prometheusBinary) is missing: apt-get install prometheus (make deps installs it)")
        }
        guard fm.isExecutableFile(atPath: FreshlineProcess.binary) else {
            throw Failure("no freshline binary at \(FreshlineProcess.binary): swift build --build-tests first")
        }
        let exporterScript = ScriptRunner.repository.appendingPathComponent("Tests/UpstreamServers/traffic_exporter.py")
        let folder = fm.temporaryDirectory.appendingPathComponent("prom-advice-\(UUID().uuidString)")
        try fm.createDirectory(at: folder.appendingPathComponent("tsdb"), withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: folder) }
        let portFile = folder.appendingPathComponent("exporter.port")
        let goFile = folder.appendingPathComponent("go")
        let statsFile = folder.appendingPathComponent("stats.jsonl")

        let exporter = try Self.start(
            Self.python,
            [
                exporterScript.path, "--port-file", portFile.path, "--go-file", goFile.path, "--stats-file",
                statsFile.path,
            ],
            log: folder.appendingPathComponent("exporter.log"))
        defer { Self.stop(exporter) }
        try await Wait.until("the exporter wrote its port", timeout: .seconds(30)) {
            guard exporter.isRunning else {
                let log = try String(contentsOf: folder.appendingPathComponent("exporter.log"), encoding: .utf8)
                throw Failure("the exporter exited (python3-prometheus-client missing?): \(log)")
            }
            return fm.fileExists(atPath: portFile.path)
        }
        let exporterPort = try String(contentsOf: portFile, encoding: .utf8)

        let port = try Self.freePort()
        try """
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        scrape_configs:
          - job_name: shop
            static_configs:
              - targets: ['127.0.0.1:\(exporterPort)']
        """.write(to: folder.appendingPathComponent("prometheus.yml"), atomically: true, encoding: .utf8)
        let prometheus = try Self.start(
            Self.prometheusBinary,
            [
                "--config.file=\(folder.appendingPathComponent("prometheus.yml").path)",
                "--storage.tsdb.path=\(folder.appendingPathComponent("tsdb").path)",
                "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
            ], log: folder.appendingPathComponent("prometheus.log"))
        defer { Self.stop(prometheus) }
        let url = "http://127.0.0.1:\(port)"
        let client = try PrometheusClient(baseURL: url)
        try await Wait.until("Prometheus scrapes the exporter", timeout: .seconds(60)) {
            guard prometheus.isRunning else {
                let log = try String(contentsOf: folder.appendingPathComponent("prometheus.log"), encoding: .utf8)
                throw Failure("prometheus exited: \(log)")
            }
            let up = try? await client.query("up{job=\"shop\"}", at: Date().timeIntervalSince1970)
            return up?.first?.points.first?.value == 1
        }
        // Traffic starts; the window read is 12 s inside it (the first 4 s and the end left out).
        _ = fm.createFile(atPath: goFile.path, contents: Data())
        let go = Date().timeIntervalSince1970
        try await Task.sleep(for: .seconds(17))

        try """
        step: 2s
        features:
          checkout_risk:
            prometheus:
              requests: 'shop_requests_total{job="shop",handler="/score"}'
              errors: 'shop_requests_total{job="shop",handler="/score",status=~"5.."}'
              latency: 'shop_request_duration_seconds_bucket{job="shop",handler="/score"}'
              cpu_seconds: 'process_cpu_seconds_total{job="shop"}'
            latency_budget: 100ms
            max_staleness: 24h
            entities: 200000
            failure_mode: fail closed
          search:
            prometheus:
              requests: 'shop_requests_total{handler="/search"}'
              errors: 'shop_requests_total{handler="/search",status="500"}'
              latency: 'shop_request_duration_seconds_bucket{handler="/search"}'
            unbounded_input: true
            ms_per_prediction: 3
        """.write(to: folder.appendingPathComponent("features.yaml"), atomically: true, encoding: .utf8)
        let started = Date().timeIntervalSince1970
        let run = try FreshlineProcess.start(
            ["advise", "--prometheus", url, "--feature-map", "features.yaml", "--window", "12s", "--format", "json"],
            in: folder)
        let output = FreshlineProcess.output(run)
        run.waitUntilExit()
        #expect(run.terminationStatus == 0, "\(output)")
        guard case .object(let report) = try JSONValue.parse(Array(output.utf8)),
            case .array(let features)? = report["features"]
        else { throw Failure("not a JSON report: \(output)") }
        func feature(_ name: String) throws -> [String: JSONValue] {
            for case .object(let f) in features where f["feature"] == .string(name) { return f }
            throw Failure("no \(name) in \(output)")
        }
        func value(_ f: [String: JSONValue], _ path: [String]) throws -> JSONValue {
            var v: JSONValue = .object(f)
            for key in path {
                guard case .object(let o) = v, let next = o[key] else { throw Failure("no \(path) in \(f)") }
                v = next
            }
            return v
        }
        func number(_ f: [String: JSONValue], _ path: String...) throws -> Double {
            guard let d = try value(f, path).doubleValue else { throw Failure("\(path) is not a number in \(f)") }
            return d
        }
        func text(_ f: [String: JSONValue], _ path: String...) throws -> String {
            guard case .string(let s) = try value(f, path) else { throw Failure("\(path) is not text in \(f)") }
            return s
        }
        // What the exporter generated, per second, in the 12 s ending when the advisor read (from its stats).
        let end = try Self.totals(statsFile, before: started)
        let begin = try Self.totals(statsFile, before: started - 12)
        #expect(begin.at > go, "the window should start inside the traffic")
        let seconds = end.at - begin.at

        let risk = try feature("checkout_risk")
        let generated = (end.requests["/score"]! - begin.requests["/score"]!) / seconds
        let calls = try number(risk, "axes", "cost", "calls_per_day")
        #expect(abs(calls / 86_400 - generated) / generated < 0.1, "calls/day \(calls), generated \(generated)/s")
        #expect(abs(calls / 86_400 - 50) < 5)
        let peak = try number(risk, "axes", "cost", "peak_to_average")
        #expect(peak >= 1 && peak < 1.6, "peak \(peak)")
        #expect(try number(risk, "axes", "cost", "peak_bucket_seconds") == 2)
        let errors = try number(risk, "axes", "failure", "error_rate")
        #expect(abs(errors - 0.05) < 0.01, "error rate \(errors)")
        let p99 = try number(risk, "axes", "latency", "realtime_p99_seconds")
        #expect(p99 > 0.25 && p99 <= 0.5, "p99 \(p99): 5% of answers take 300 ms, bucket 0.25 to 0.5")
        guard case .array(let sources) = try value(risk, ["axes", "latency", "sources"]),
            case .object(let realtime)? = sources.first
        else { throw Failure("no latency sources in \(risk)") }
        let p50 = try number(realtime, "p50")
        #expect(p50 > 0.01 && p50 <= 0.025, "p50 \(p50): 90% of answers take 20 ms, bucket 0.01 to 0.025")
        #expect(try number(risk, "axes", "cost", "realtime_seconds_per_prediction") > 0, "CPU per answer")
        #expect(try number(risk, "verdict", "rule") == 3)
        #expect(try text(risk, "verdict", "recommended") == "batch")
        let origin = try text(risk, "origin")
        #expect(origin.contains("Prometheus \(url)") && origin.contains("features.yaml:3"), "\(origin)")
        let failureEvidence = try text(risk, "axes", "failure", "evidence")
        #expect(failureEvidence.contains(#"status=~"5..""#), "\(failureEvidence)")
        #expect(try text(risk, "axes", "cost", "evidence").contains("Prometheus \(url)"))

        let search = try feature("search")
        let searchRate = (end.requests["/search"]! - begin.requests["/search"]!) / seconds
        #expect(abs(try number(search, "axes", "cost", "calls_per_day") / 86_400 - searchRate) / searchRate < 0.1)
        #expect(abs(try number(search, "axes", "failure", "error_rate") - 0.01) < 0.01)
        #expect(try number(search, "axes", "latency", "realtime_p99_seconds") < 0.025)
        #expect(try number(search, "verdict", "rule") == 1)
        #expect(try text(search, "verdict", "recommended") == "realtime")

        // A Prometheus that does not answer is an error naming it, not a verdict.
        let dead = try Self.freePort()
        let refused = try FreshlineProcess.start(
            [
                "advise", "--prometheus", "http://127.0.0.1:\(dead)", "--feature-map", "features.yaml", "--window",
                "12s",
            ],
            in: folder)
        let refusedOutput = FreshlineProcess.output(refused)
        refused.waitUntilExit()
        #expect(refused.terminationStatus != 0)
        #expect(refusedOutput.contains("Prometheus http://127.0.0.1:\(dead)"), "\(refusedOutput)")
    }
}
