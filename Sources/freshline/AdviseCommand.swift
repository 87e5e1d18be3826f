import ArgumentParser
import Foundation
import FreshlineCore
import FreshlineRuntime
import FreshlineStores
import Logging

/// `freshline advise FILE`: the five axes of every feature measured from the store's request log, the decision
/// rules applied in order, and the monthly cost per pattern — as a table, Markdown, JSON or a self-contained HTML
/// report. `--sheet features.csv` gives the same verdicts for features described in the seed's spreadsheet.
struct AdviseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "advise",
        abstract: "Recommend a serving pattern per feature from measured traffic (or from a spreadsheet).")

    @Argument(help: "The manifest (default: $FRESHLINE_MANIFEST, else freshline.yaml).") var manifest: String?
    @Option(help: "table, markdown, json or html.") var format: String = "table"
    @Option(name: .shortAndLong, help: "Write the report to this file instead of standard output.")
    var output: String?
    @Option(help: "A CSV of features and their axes (the seed's spreadsheet) instead of measured traffic.")
    var sheet: String?
    @Option(help: "Only this feature.") var feature: String?
    @Option(
        name: .customLong("what-if"),
        help: "Replay the request log under another pattern: FEATURE=batch:6h (repeatable).")
    var whatIf: [String] = []

    func run() async throws {
        guard let format = AdviceText.Format(rawValue: format) else {
            throw ValidationError("--format must be one of table, markdown, json, html")
        }
        let report: AdviceReport
        if let sheet {
            report = try sheetReport(sheet)
        } else {
            report = try await liveReport()
        }
        let text = try AdviceText.render(report, format: format)
        if let output {
            do { try text.write(toFile: output, atomically: true, encoding: .utf8) } catch {
                throw CLIError("\(output): cannot write the report: \(error.localizedDescription)")
            }
            print("wrote \(output) (\(report.features.count) features)")
        } else {
            print(text, terminator: "")
        }
    }

    private func loadManifest(_ path: String) throws -> Manifest {
        do { return try ManifestLoader.load(path: path) } catch let errors as ManifestErrors {
            throw CLIError(errors.description)
        }
    }

    private func sheetReport(_ path: String) throws -> AdviceReport {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("\(path): cannot read the file")
        }
        // Thresholds and prices from the manifest when one is given, else the defaults.
        var settings = AdvisorSettings()
        var pricing = Pricing()
        if let manifest {
            let m = try loadManifest(manifest)
            settings = m.advisor
            pricing = m.pricing
        }
        do {
            return try AdviceSheet.advise(
                csv: String(decoding: data, as: UTF8.self), file: path, settings: settings, pricing: pricing,
                now: SystemWallClock().now)
        } catch {
            throw CLIError(error.description)
        }
    }

    private func liveReport() async throws -> AdviceReport {
        let path = ManifestArgument.path(manifest, deprecatedOption: nil) { $0 }
        let manifest = try loadManifest(path)
        if let feature, manifest.features[feature] == nil {
            throw CLIError(
                "\(path): no feature named '\(feature)' (features: "
                    + manifest.features.keys.sorted().joined(separator: ", ") + ")")
        }
        var scenarios: [String: [WhatIfScenario]] = [:]
        for text in whatIf {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, manifest.features[parts[0]] != nil, let s = WhatIfScenario(parsing: parts[1]) else {
                throw CLIError("--what-if '\(text)': expected FEATURE=PATTERN[:INTERVAL], e.g. churn=batch:6h")
            }
            scenarios[parts[0], default: []].append(s)
        }
        let (models, problems) = ServingModel.loadAll(manifest)
        if !problems.isEmpty { throw CLIError(ManifestErrors(problems).description) }
        let stores = try StoreSet.open(for: manifest, logger: Logger(label: "freshline-advise"))
        let service = AdviceService(
            manifest: manifest, models: models, requestLog: stores.requestLog, batchStore: stores.batch,
            snapshotDirectory: stores.snapshotDirectory, loadTests: stores.loadTests)
        let features = feature.map { [$0] }
        return try await stores.whileRunning {
            try await service.report(features: features, whatIf: scenarios)
        }
    }
}
