import ArgumentParser
import Foundation
import FreshlineCore
import FreshlineRuntime
import FreshlineStores
import Logging
import Metrics
import Synchronization

/// `freshline run FEATURE [MANIFEST]`: runs a batch feature's precompute now and publishes its snapshot; a server on
/// the same store picks it up at once (PostgreSQL) or within seconds (SQLite). With a run already in progress it joins
/// it as one more worker (and takes over an interrupted one).
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a batch feature's precompute now and publish its snapshot (resumes an interrupted run).")

    @Argument(help: "The batch feature.") var feature: String
    @Argument(help: "The manifest (default: $FRESHLINE_MANIFEST, else freshline.yaml).") var manifest: String?
    @Option(
        name: [.customShort("m"), .customLong("manifest")], help: "Deprecated: give the manifest after the feature.")
    var manifestOption: String?

    func validate() throws { try ManifestArgument.validate(manifest, deprecatedOption: manifestOption) }

    func run() async throws {
        let path = ManifestArgument.path(manifest, deprecatedOption: manifestOption) {
            "freshline run \(feature) \($0)"
        }
        let context = try await BatchCLI(manifest: path, feature: feature)
        try await context.whileRunning {
            let runner = context.runner
            if let claimed = try await runner.claimInterrupted() {
                print("resuming interrupted run \(claimed.id)")
                try await context.execute(claimed)
                return
            }
            do {
                try await context.execute(try await runner.start(trigger: .manual))
            } catch let error as BatchStoreError where error.code == .runInProgress {
                let id = error.runID ?? ""
                guard let live = try await runner.store.run(id: id) else { throw CLIError("run \(id) vanished") }
                print(
                    "joining run \(id), in progress (\(live.rowsDone) of \(live.rowsTotal.map(String.init) ?? "?") rows)"
                )
                try await context.execute(live)
            }
        }
    }
}

/// `freshline backfill FEATURE [MANIFEST]`: re-runs a batch feature for a subset of keys (the other keys keep
/// their values) or with another model file.
struct BackfillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backfill",
        abstract: "Re-run a batch feature for chosen keys and/or another model version, and publish the result.")

    @Argument(help: "The batch feature.") var feature: String
    @Argument(help: "The manifest (default: $FRESHLINE_MANIFEST, else freshline.yaml).") var manifest: String?
    @Option(
        name: [.customShort("m"), .customLong("manifest")], help: "Deprecated: give the manifest after the feature.")
    var manifestOption: String?
    @Option(help: "Keys to recompute, comma-separated.") var keys: String?
    @Option(help: "A file of keys to recompute, one per line.") var keysFile: String?
    @Option(help: "An ONNX file to compute with instead of the feature's model (a new model version).")
    var model: String?

    func validate() throws {
        try ManifestArgument.validate(manifest, deprecatedOption: manifestOption)
        if keys == nil && keysFile == nil && model == nil {
            throw ValidationError("give --keys, --keys-file and/or --model: a backfill needs a subset or a model")
        }
    }

    func run() async throws {
        let path = ManifestArgument.path(manifest, deprecatedOption: manifestOption) {
            "freshline backfill \(feature) \($0)"
        }
        let context = try await BatchCLI(manifest: path, feature: feature)
        var subset: [String]?
        if let keys { subset = keys.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        if let keysFile {
            guard let text = try? String(contentsOfFile: keysFile, encoding: .utf8) else {
                throw CLIError("\(keysFile): cannot read the file")
            }
            subset = (subset ?? []) + text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
        }
        if subset?.isEmpty == true { throw CLIError("no keys given") }
        if let model, !FileManager.default.fileExists(atPath: model) { throw CLIError("\(model): no such file") }
        let modelPath = model.map { URL(fileURLWithPath: $0).path }
        try await context.whileRunning {
            try await context.execute(try await context.start(trigger: .backfill, keys: subset, modelPath: modelPath))
        }
    }
}

/// What `run` and `backfill` share: loading the manifest and the feature, and executing with progress output.
struct BatchCLI: Sendable {
    let runner: BatchRunner
    let stores: StoreSet
    /// The manifest's upstream models, connected; closed by `whileRunning` when the run ends.
    let upstreams: UpstreamSet

    /// Runs `body` with the stores running, then closes the upstream models' connections.
    func whileRunning(_ body: () async throws -> Void) async throws {
        do { try await stores.whileRunning(body) } catch {
            await upstreams.close()
            throw error
        }
        await upstreams.close()
    }

    init(manifest path: String, feature: String) async throws {
        let manifest: Manifest
        do { manifest = try ManifestLoader.load(path: path) } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
        guard let spec = manifest.features[feature] else {
            throw CLIError(
                "\(path): no feature named '\(feature)' (features: \(manifest.features.keys.sorted().joined(separator: ", ")))"
            )
        }
        guard spec.batch != nil else { throw CLIError("\(path): feature '\(feature)' has no batch section") }
        var logger = Logger(label: "freshline-run")
        logger.logLevel = .warning
        do {
            upstreams = try await UpstreamSet.connect(manifest, metrics: NOOPMetricsHandler.instance, logger: logger)
        } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
        let (models, loadErrors) = ServingModel.loadAll(manifest, remote: upstreams.models)
        let problems = loadErrors + ManifestValidator.problems(manifest, models: models)
        guard problems.isEmpty, let model = models[spec.model] else {
            await upstreams.close()
            throw CLIError(problems.map(\.description).joined(separator: "\n"))
        }
        do { stores = try StoreSet.open(for: manifest, logger: Logger(label: "freshline-run")) } catch let errors
            as ManifestErrors
        {
            await upstreams.close()
            throw CLIError(errors.description)
        }
        runner = BatchRunner(
            feature: spec, model: model, manifestPath: manifest.path, store: stores.batch, metrics: nil,
            snapshotDirectory: stores.snapshotDirectory)
    }

    func start(trigger: BatchRun.Trigger, keys: [String]?, modelPath: String?) async throws -> BatchRun {
        do {
            return try await runner.start(trigger: trigger, keys: keys, modelPath: modelPath)
        } catch let error as BatchStoreError {
            throw CLIError("\(runner.feature.name): \(error)")
        }
    }

    func execute(_ run: BatchRun) async throws {
        let progress = ProgressLine(terminal: isatty(STDERR_FILENO) == 1)
        let clock = ContinuousClock()
        let started = clock.now
        let snapshot: SnapshotInfo
        do {
            snapshot = try await runner.execute(run) { report in progress.update(report) }
        } catch let failed as BatchRunFailed {
            // The reason says what failed (rows over `max_failed_share`, an empty run) and that nothing was published.
            progress.finish()
            throw CLIError("run \(run.id) failed: \(failed.reason)")
        } catch {
            progress.finish()
            throw CLIError("run \(run.id) failed: \(error)")
        }
        progress.finish()
        let elapsed = (clock.now - started).seconds
        let final = try await runner.store.run(id: run.id) ?? run
        // Until the publish, then the seal: the publish was `now - finishedAt` ago (the store's wall-clock times; a
        // joined run started before this process did).
        let sealing = final.finishedAt.map { max(0, min(elapsed, SystemWallClock().now - $0)) } ?? 0
        let toPublish = elapsed - sealing
        // Rows per second of wall time, from counting the source to publishing (other workers' rows included).
        let rate = toPublish > 0 ? Double(final.rowsDone) / toPublish : 0
        var line =
            "run \(run.id): \(final.rowsWritten) rows written, \(final.rowsFailed) failed, \(String(format: "%.2f", toPublish)) s (\(Int(rate)) rows/s); published \(runner.feature.name) v\(snapshot.version) with \(snapshot.keyCount) keys"
        if let file = snapshot.file {
            line +=
                "; sealed as one file of \(String(format: "%.1f", Double(file.size) / 1e6)) MB in \(String(format: "%.2f", sealing)) s"
        }
        print(line)
        if final.rowsFailed > 0 {
            for failure in try await runner.store.failures(runID: run.id, limit: 10) {
                print("  \(failure.location): \(failure.reason)")
            }
            if final.rowsFailed > 10 { print("  … \(final.rowsFailed - 10) more: GET /v1/runs/\(run.id)") }
        }
    }
}

/// A progress bar on a terminal (rewritten in place), plain lines at most once every `plainInterval` seconds
/// otherwise. `run` and `backfill` draw a batch run's report; `load` draws its own line (`show`).
final class ProgressLine: Sendable {
    private let terminal: Bool
    private let plainInterval: Double
    /// When a line was last printed, and whether a bar is on screen to end with a line feed.
    private let state = Mutex((lastPrint: 0.0, drawn: false))

    init(terminal: Bool, plainInterval: Double = 1) {
        self.terminal = terminal
        self.plainInterval = plainInterval
    }

    func update(_ report: BatchRunner.Report) {
        let run = report.run
        let rate = "\(Int(report.rowsPerSecond)) rows/s"
        let eta = report.secondsLeft.map { "ETA \(Self.format($0))" } ?? ""
        var line: String
        if let total = run.rowsTotal, total > 0 {
            let fraction = min(1, Double(run.rowsDone) / Double(total))
            line = "\(Self.bar(fraction)) \(Int(fraction * 100))% \(run.rowsDone)/\(total) rows  \(rate)  \(eta)"
        } else {
            line = "\(run.rowsDone) rows  \(rate)"
        }
        if run.rowsFailed > 0 { line += "  (\(run.rowsFailed) failed)" }
        show(line, label: run.id)
    }

    /// Draws `line` (on a terminal, in place; otherwise as `label: line`, at most once per interval).
    func show(_ line: String, label: String) {
        state.withLock { state in
            let now = SystemWallClock().now
            guard terminal || now - state.lastPrint >= plainInterval else { return }
            state.lastPrint = now
            if terminal {
                FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K").utf8))
                state.drawn = true
            } else {
                FileHandle.standardError.write(Data((label + ": " + line + "\n").utf8))
            }
        }
    }

    /// `[#####-----]`, 30 wide.
    static func bar(_ fraction: Double) -> String {
        let width = 30
        let filled = Int(min(1, max(0, fraction)) * Double(width))
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
    }

    func finish() {
        state.withLock { state in
            if state.drawn { FileHandle.standardError.write(Data("\n".utf8)) }
            state.drawn = false
        }
    }

    static func format(_ seconds: Double) -> String {
        seconds < 60 ? "\(Int(seconds.rounded(.up))) s" : "\(Int(seconds / 60)) min \(Int(seconds) % 60) s"
    }
}
