import ArgumentParser
import Foundation
import FreshlineCore
import FreshlineDemo
import FreshlineHTTP
import FreshlineRuntime
import FreshlineStores
import Logging
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `freshline demo`: the seed's worked example end to end — a SaaS product with a live recommendation, a nightly
/// report and a fraud check. Generates the data set, writes the manifest, starts a server on loopback, runs the
/// nightly batch, drives a few minutes of mixed traffic, then prints the advisor's table and writes its report.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the worked example: data, manifest, server, nightly batch, traffic, then the advisor.")

    @Option(help: "Where the demo writes its data, manifest, store and report.") var dir = ".freshline-demo"
    @Option(help: "The example's models (scripts/make_demo_models.py).") var models = "demo/models"
    @Option(help: "Minutes of traffic (real time).") var minutes = 3.0
    @Option(help: "How much faster the server's wall clock runs than real time (3 min × 240 = 12 h).")
    var speed = 240.0
    @Option(help: "Loopback port.") var port = 18_080
    @Option(help: "Card transactions per second (fraud_check).") var fraudRate = 40.0
    @Option(help: "Recommendation requests per second.") var recommendationRate = 80.0
    @Option(help: "Account-report rows per second (dashboard reads).") var reportRate = 400.0
    @Option(help: "Probability that a shopper's intent changes between requests (0: sessions never change).")
    var sessionDrift = 0.7
    @Option(help: "Random seed of the data set and the traffic.") var seed: UInt64 = 7
    @Flag(help: "Only write the data set and the manifest (for benchmarks), then stop.") var prepareOnly = false

    func validate() throws {
        guard minutes > 0, minutes <= 60 else { throw ValidationError("--minutes must be in (0, 60]") }
        guard speed >= 1, speed <= 10_000 else { throw ValidationError("--speed must be in [1, 10000]") }
        guard (0...1).contains(sessionDrift) else { throw ValidationError("--session-drift must be in [0, 1]") }
        guard fraudRate >= 0, recommendationRate >= 0, reportRate >= 0 else {
            throw ValidationError("rates must not be negative")
        }
    }

    func run() async throws {
        let folder = URL(fileURLWithPath: dir)
        let modelFolder = URL(fileURLWithPath: models)
        for name in ["retrieval", "rerank", "user_risk", "fraud", "report"] {
            let file = modelFolder.appendingPathComponent("\(name).onnx").path
            guard FileManager.default.fileExists(atPath: file) else {
                throw CLIError("\(file): missing (run from the repository root, or pass --models)")
            }
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for stale in ["freshline.sqlite", "freshline.sqlite-wal", "freshline.sqlite-shm"] {
            try? FileManager.default.removeItem(at: folder.appendingPathComponent(stale))
        }
        step("1/5 Data: 2,000 users, 3,000 items, 5,000 accounts (seed \(seed))")
        let world = DemoWorld(seed: seed)
        try world.usersCSV().write(to: folder.appendingPathComponent("users.csv"), atomically: true, encoding: .utf8)
        try world.accountsCSV().write(
            to: folder.appendingPathComponent("accounts.csv"), atomically: true, encoding: .utf8)
        let manifestPath = folder.appendingPathComponent("freshline.yaml").path
        try Self.manifest(models: modelFolder.standardizedFileURL.path, port: port).write(
            toFile: manifestPath, atomically: true, encoding: .utf8)
        print("wrote \(dir)/users.csv, \(dir)/accounts.csv and the manifest \(manifestPath)")
        if prepareOnly { return }

        step("2/5 Server: \(manifestPath) on 127.0.0.1:\(port), wall clock ×\(Int(speed)) (a simulation)")
        let manifest: Manifest
        do { manifest = try ManifestLoader.load(path: manifestPath) } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
        var logger = Logger(label: "freshline-demo")
        logger.logLevel = .warning
        let registry = PrometheusCollectorRegistry()
        let stores = try StoreSet.open(for: manifest, environment: [:], logger: logger)
        let runtime: ServingRuntime
        do {
            runtime = try ServingRuntime(
                manifest: manifest, metricsFactory: PrometheusMetricsFactory(registry: registry), stores: stores,
                clock: AcceleratedWallClock(speed: speed), logger: logger)
        } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
        let app = FreshlineServer.application(
            runtime: runtime, registry: registry, host: "127.0.0.1", port: port, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [runtime, app], gracefulShutdownSignals: [.sigint], logger: logger))
        // The server runs as a child task for as long as the steps below take; on their end or their error it is
        // shut down gracefully and awaited.
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {

                step("3/5 The nightly batch: user risk scores and 200 candidates per user (two-tower retrieval)")
                guard let batch = runtime.batch else { throw CLIError("the demo manifest has no batch features") }
                for feature in ["user_risk", "candidates"] {
                    // The scheduler may already have started the night's run (catch-up at start-up): wait for that one.
                    let run: BatchRun
                    do { run = try await batch.trigger(feature: feature) } catch let error as BatchStoreError {
                        guard let live = try await batch.batchStore.runs(feature: feature, limit: 1).first else {
                            throw error
                        }
                        run = live
                    }
                    let started = ContinuousClock.now
                    while runtime.features[feature]?.snapshot?.info.runID != run.id {
                        if let done = try await batch.batchStore.run(id: run.id), done.state == .failed {
                            throw CLIError("the \(feature) run failed: \(done.error ?? "unknown error")")
                        }
                        guard ContinuousClock.now - started < .seconds(300) else {
                            throw CLIError("the \(feature) run did not publish within 5 minutes")
                        }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    let finished = try await batch.batchStore.run(id: run.id)
                    let rows = finished?.rowsWritten ?? 0
                    let seconds = max(1e-3, (finished?.finishedAt ?? 0) - (finished?.startedAt ?? 0))
                    print(
                        "  \(feature): \(rows) rows published as \(runtime.features[feature]?.snapshot?.label ?? "?") "
                            + "in \(String(format: "%.2f", seconds)) s")
                }

                let rates = DemoDriver.Rates(
                    fraud: fraudRate, recommendations: recommendationRate, reportRows: reportRate,
                    sessionDrift: sessionDrift)
                let simulated = minutes * 60 * speed / 3_600
                step(
                    "4/5 Traffic for \(Self.clock(minutes * 60)) (≈ \(String(format: "%.0f", simulated)) simulated hours): "
                        + "\(Int(fraudRate)) transactions/s, \(Int(recommendationRate)) recommendations/s, "
                        + "\(Int(reportRate)) report rows/s, session drift \(sessionDrift)")
                let driver = DemoDriver(world: world, port: port, token: "demo-admin", rates: rates, seed: seed)
                guard await driver.waitUntilLive() else {
                    throw CLIError("the demo server did not answer on 127.0.0.1:\(port)")
                }
                let begin = ContinuousClock.now
                await driver.run(for: .seconds(minutes * 60)) { sent in
                    let elapsed = (ContinuousClock.now - begin).seconds
                    var line =
                        "  [\(Self.clock(elapsed))] fraud_check \(sent.fraud) · recommendations \(sent.recommendations) · "
                        + "account_report \(sent.reportRows) rows · failures \(sent.failures)"
                    if let last = sent.lastFailure { line += " (last: \(last))" }
                    print(line)
                }

                step("5/5 The advisor: five axes per feature, from the traffic just recorded")
                await runtime.requestLogger?.flush()
                guard let advice = runtime.advice else { throw CLIError("the advisor needs the request log") }
                let report = try await advice.report()
                print(try AdviceText.render(report, format: .table))
                let html = folder.appendingPathComponent("advice.html")
                try AdviceText.render(report, format: .html).write(to: html, atomically: true, encoding: .utf8)
                try AdviceText.render(report, format: .markdown).write(
                    to: folder.appendingPathComponent("advice.md"), atomically: true, encoding: .utf8)
                print("The report with its charts: \(html.path) (and advice.md beside it)")
            } catch {
                await group.triggerGracefulShutdown()
                _ = try? await tasks.next()
                throw error
            }
            await group.triggerGracefulShutdown()
            _ = try? await tasks.next()
        }
    }

    private func step(_ text: String) { print("\n== \(text)") }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return "\(s / 60):" + String(format: "%02d", s % 60)
    }

    /// The example's manifest: three features a team would ship, and the two batch features behind them.
    static func manifest(models: String, port: Int) -> String {
        """
        # The worked example (docs/demo.md), written by `freshline demo`.
        version: 1
        models:
          retrieval: \(models)/retrieval.onnx
          rerank: \(models)/rerank.onnx
          user_risk: \(models)/user_risk.onnx
          fraud: \(models)/fraud.onnx
          report: \(models)/report.onnx
        features:
          # Batch: a risk score per user, every night.
          user_risk:
            model: user_risk
            pattern: batch
            key: user_id
            max_staleness: 36h
            batch:
              schedule: "0 2 * * *"
              source: {csv: users.csv}
              columns:
                X: [tenure_days, chargebacks_90d, disputes_90d, avg_ticket, countries_30d, failed_logins_7d]
          # Batch: 200 candidate items per user by two-tower score over the whole item table.
          candidates:
            model: retrieval
            pattern: batch
            key: user_id
            max_staleness: 36h
            batch:
              schedule: "0 3 * * *"
              source: {csv: users.csv}
              columns: {user_id: user_index}
              chunk_rows: 512
          # The fraud check: every transaction is new; the user's risk comes precomputed from user_risk.
          fraud_check:
            model: fraud
            pattern: hybrid
            key: transaction_id
            latency_budget: 50ms
            compose:
              risk:
                from: user_risk
                output: probabilities
                key: user_id
                on_missing: {default: [0.9, 0.1]}
          # The live recommendation: rerank the user's precomputed candidates with the current session.
          recommendations:
            model: rerank
            pattern: hybrid
            key: user_id
            latency_budget: 20ms
            compose:
              candidates: {from: candidates, output: candidates}
            advice:
              decision: {output: items, kind: ranking, top_k: 10}
          # The report: served on the real-time path because that is the path that existed.
          account_report:
            model: report
            key: account_id
            latency_budget: 200ms
            advice:
              keys: {csv: accounts.csv, key_column: account_id}   # what a nightly batch would enumerate
            on_failure:
              default: {label: 0}
        tokens:
          - {name: demo, token: demo-admin, scopes: [admin, predict]}
        server:
          port: \(port)
          request_log_sample_rate: 0.25
        store: freshline.sqlite
        """
    }
}
