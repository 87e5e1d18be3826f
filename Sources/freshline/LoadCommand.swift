import ArgumentParser
import Foundation
import FreshlineCore
import FreshlineRuntime
import FreshlineStores
import Logging

/// `freshline load FEATURE [MANIFEST] --replay`: replays the feature's recorded traffic shape (arrival times, keys,
/// inputs; from the request log or `--requests FILE`) at `--speed`× against a server for `--duration`, open loop,
/// with a live progress line; prints p50/p95/p99/p99.9 per source and the shed and fallback counts, and records the
/// run in the manifest's store for the advisor (marked as a load test, never mixed with production traffic).
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Replay a feature's recorded traffic at N× against a server and measure its tail latency.")

    @Argument(help: "The feature to load.") var feature: String
    @Argument(help: "The manifest (default: $FRESHLINE_MANIFEST, else freshline.yaml).") var manifest: String?
    @Flag(help: "Replay the recorded traffic shape (the request log, or --requests FILE).") var replay = false
    @Option(help: "The server (default: http://127.0.0.1:<server.port of the manifest>).") var url: String?
    @Option(help: "A bearer token with the predict scope (default: $FRESHLINE_TOKEN).") var token: String?
    @Option(help: "Replay speed: recorded gaps divided by it (4 sends four times the recorded rate).")
    var speed: Double = 1
    @Option(help: "How long to send (the recorded shape repeats until then): 60s, 5m.") var duration: String = "60s"
    @Option(help: "A JSON Lines file of requests (time, key, inputs) instead of the request log.") var requests: String?
    @Option(
        name: .customLong("concurrency-limit"),
        help: "The most requests in flight (and connections); a request due beyond it waits, and the wait counts.")
    var concurrencyLimit: Int = 256

    func validate() throws {
        guard replay else { throw ValidationError("give --replay (the only load mode: replay recorded traffic)") }
        guard speed > 0, speed <= 10_000, speed.isFinite else {
            throw ValidationError("--speed must be a number in (0, 10000]")
        }
        guard (1...100_000).contains(concurrencyLimit) else {
            throw ValidationError("--concurrency-limit must be in 1…100000")
        }
        guard let d = DurationText.parse(duration), d > .zero, d <= .seconds(86_400) else {
            throw ValidationError("--duration must be a duration such as 30s or 5m, at most 24h")
        }
    }

    func run() async throws {
        let path = ManifestArgument.path(manifest, deprecatedOption: nil) { $0 }
        let manifest: Manifest
        do { manifest = try ManifestLoader.load(path: path) } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
        guard let spec = manifest.features[feature] else {
            throw CLIError(
                "\(path): no feature named '\(feature)' (features: "
                    + manifest.features.keys.sorted().joined(separator: ", ") + ")")
        }
        guard spec.pattern != .async else {
            throw CLIError("feature '\(feature)' is async: a load test replays requests answered now")
        }
        let durationSeconds = DurationText.parse(duration)!.seconds
        let host = ["0.0.0.0", "::", ""].contains(manifest.server.host) ? "127.0.0.1" : manifest.server.host
        let target = LoadRunner.Target(
            url: url ?? "http://\(host):\(manifest.server.port)",
            token: token ?? ProcessInfo.processInfo.environment["FRESHLINE_TOKEN"],
            concurrencyLimit: concurrencyLimit)
        let stores: StoreSet
        do { stores = try StoreSet.open(for: manifest, logger: Logger(label: "freshline-load")) } catch let errors
            as ManifestErrors
        {
            throw CLIError(errors.description)
        }
        let id = LoadRunner.newID()
        let result = try await stores.whileRunning {
            let plan: LoadPlan
            do {
                if let requests {
                    plan = try LoadPlan.script(path: requests, speed: speed, durationSeconds: durationSeconds)
                } else {
                    // Only the feature's model, for its input metadata (a model on another server has none here:
                    // the feature's declared inputs stand in).
                    var own = manifest
                    own.models = manifest.models.filter { $0.key == spec.model }
                    let (models, _) = ServingModel.loadAll(own)
                    plan = try await LoadPlan.recorded(
                        spec, manifest: manifest, stores: stores, metadata: models[spec.model]?.metadata,
                        speed: speed, durationSeconds: durationSeconds, now: SystemWallClock().now)
                }
            } catch let error as LoadPlanError {
                throw CLIError(error.description)
            } catch let error as LoadScriptError {
                throw CLIError(error.description)
            }
            let s = plan.schedule
            print(
                "load test \(id): \(feature) at \(CostModel.format(speed))× for \(CostModel.formatSeconds(durationSeconds)) "
                    + "against \(target.url): \(s.requests.count) requests (\(CostModel.format(s.targetRate))/s; "
                    + "\(s.recorded) recorded over \(CostModel.formatSeconds(s.passSeconds)), \(s.passes) "
                    + (s.passes == 1 ? "pass" : "passes") + ")")
            for note in plan.notes { print("  \(note)") }
            let progress = ProgressLine(terminal: isatty(STDERR_FILENO) == 1, plainInterval: 5)
            let result = try await LoadRunner(feature: feature, target: target).run(s, id: id) { p in
                let finished = p.sent == p.scheduled && p.inFlight == 0
                let fraction = finished || p.durationSeconds <= 0 ? 1 : p.elapsedSeconds / p.durationSeconds
                progress.show(
                    "\(ProgressLine.bar(fraction)) \(Int(min(1, fraction) * 100))% \(p.sent)/\(p.scheduled) sent, "
                        + "\(p.answered) answered, \(p.inFlight) in flight, \(p.shed) shed, \(p.failed) failed",
                    label: id)
            }
            progress.finish()
            if result.achievedRate < 0.9 * s.targetRate {
                print(
                    "note: sent \(CostModel.format(result.achievedRate))/s of the schedule's "
                        + "\(CostModel.format(s.targetRate))/s: the sender fell behind (latency still counts from each "
                        + "request's scheduled time); run it from another machine, or raise --concurrency-limit")
            }
            try await stores.loadTests.record(result)
            return result
        }
        print(Self.summary(result, budget: spec.latencyBudget.seconds))
        print("recorded as \(result.id) in \(stores.location): freshline advise shows it beside production traffic")
    }

    /// The run's figures: counts, then p50/p95/p99/p99.9 per source, then every outcome.
    static func summary(_ r: LoadTestResult, budget: Double) -> String {
        var out =
            "sent \(r.sent), answered \(r.answered) (\(CostModel.format(r.achievedRate)) requests/s achieved); "
            + "shed \(r.shed), fallback \(r.fallback), errors \(r.errors)\n"
        let rows =
            [["source", "count", "p50", "p95", "p99", "p99.9"]]
            + r.sources.map {
                [
                    $0.source, String($0.count), CostModel.formatSeconds($0.p50), CostModel.formatSeconds($0.p95),
                    CostModel.formatSeconds($0.p99), CostModel.formatSeconds($0.p999),
                ]
            }
        var widths = [Int](repeating: 0, count: 6)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        for row in rows {
            out +=
                row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }
        if r.sources.isEmpty { out += "(nothing answered)\n" }
        out +=
            "outcomes: " + r.outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        if let p99 = r.servedP99 {
            out +=
                "\np99 \(CostModel.formatSeconds(p99)) against the \(CostModel.formatSeconds(budget)) latency budget: "
                + (p99 <= budget && r.shed == 0 ? "within it, none shed" : r.shed > 0 ? "\(r.shed) shed" : "over it")
        }
        return out
    }
}
