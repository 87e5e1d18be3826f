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
    @Option(help: "Prometheus' address (http://host:9090): traffic of the features of --feature-map served elsewhere.")
    var prometheus: String?
    @Option(
        name: .customLong("feature-map"),
        help: "A YAML map of features served elsewhere: their Prometheus selectors and declarations.")
    var featureMap: String?
    @Option(help: "Answers of a feature served elsewhere (JSON Lines or CSV); with --feature-map.")
    var requests: String?
    @Option(help: "The window read from Prometheus (e.g. 7d; default the map's, else advisor.window).")
    var window: String?

    func run() async throws {
        guard let format = AdviceText.Format(rawValue: format) else {
            throw ValidationError("--format must be one of table, markdown, json, html")
        }
        let report: AdviceReport
        if let sheet {
            report = try sheetReport(sheet)
        } else if let featureMap {
            report = try await elsewhereReport(featureMap)
        } else if prometheus != nil || requests != nil || window != nil {
            throw ValidationError("--prometheus, --requests and --window need --feature-map FILE")
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

    /// Thresholds and prices from the manifest when one is given, else the defaults.
    private func thresholdsAndPrices() throws -> (AdvisorSettings, Pricing) {
        guard let manifest else { return (AdvisorSettings(), Pricing()) }
        let m = try loadManifest(manifest)
        return (m.advisor, m.pricing)
    }

    private func sheetReport(_ path: String) throws -> AdviceReport {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("\(path): cannot read the file")
        }
        let (settings, pricing) = try thresholdsAndPrices()
        do {
            return try AdviceSheet.advise(
                csv: String(decoding: data, as: UTF8.self), file: path, settings: settings, pricing: pricing,
                now: SystemWallClock().now)
        } catch {
            throw CLIError(error.description)
        }
    }

    /// Features served elsewhere: numbers from Prometheus and requests files, declarations from the map.
    private func elsewhereReport(_ path: String) async throws -> AdviceReport {
        let map: FeatureMap
        do { map = try FeatureMapLoader.load(path: path) } catch { throw CLIError(error.description) }
        if let feature, !map.features.contains(where: { $0.name == feature }) {
            throw CLIError("\(path): no feature named '\(feature)'")
        }
        let (settings, pricing) = try thresholdsAndPrices()
        var advice = ServedElsewhereAdvice(map: map, prometheus: prometheus, settings: settings, pricing: pricing)
        if let window {
            guard let d = DurationText.parse(window), d > .zero else {
                throw ValidationError("--window '\(window)' is not a duration such as 1h or 7d")
            }
            advice.windowSeconds = d.seconds
        }
        if let requests {
            guard let name = feature ?? (map.features.count == 1 ? map.features[0].name : nil) else {
                throw ValidationError("--requests needs --feature F when the map has several features")
            }
            advice.requestsFiles[name] = requests
        }
        do {
            return try await advice.report(features: feature.map { [$0] })
        } catch let error as RequestsFile.ParseError {
            throw CLIError(error.description)
        } catch let error as PrometheusError {
            throw CLIError(error.description)
        } catch let error as AdviceError {
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
