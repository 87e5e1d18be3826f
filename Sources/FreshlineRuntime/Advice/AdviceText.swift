public import Foundation
public import FreshlineCore

/// The advisor's report as a terminal table, Markdown or JSON: the seed's spreadsheet (one row per feature, one
/// column per axis, then the verdict, the current and recommended pattern and the monthly cost of each), then
/// each feature's evidence, what would change its verdict and the what-if replays.
public enum AdviceText {
    /// The formats `freshline advise` writes.
    public enum Format: String, Sendable, CaseIterable {
        case table, markdown, json, html
    }

    public static func render(_ report: AdviceReport, format: Format) throws -> String {
        switch format {
        case .table: table(report)
        case .markdown: markdown(report)
        case .json: try json(report)
        case .html: AdviceHTML.render(report)
        }
    }

    /// The spreadsheet's header.
    static let columns = [
        "feature", "freshness", "cardinality", "cost × volume", "tail latency", "failure mode", "verdict",
        "current → recommended", "cost/month",
    ]

    /// The spreadsheet's row for one feature.
    static func cells(_ a: FeatureAdvice, currency: String) -> [String] {
        let x = a.axes
        let f = x.freshness
        var freshness = (f.sensitive ? "sensitive" : "tolerant") + " (\(f.basis))"
        if let p = f.points.last(where: { $0.ageSeconds <= f.referenceAgeSeconds }) ?? f.points.first {
            freshness += ": \(CostModel.percent(p.changeRate)) @\(CostModel.formatAge(p.ageSeconds))"
        }
        let c = x.cardinality
        let cardinality =
            (c.unbounded ? "unbounded" : "bounded") + ": \(CostModel.format(c.distinctKeysPerDay)) keys/day, "
            + "\(c.predictableShare.map(CostModel.percent) ?? "—") known"
        let cost =
            "\(CostModel.format(x.cost.callsPerDay))/day, peak \(CostModel.format(x.cost.peakToAverage))×, "
            + perPrediction(x.cost)
        let latency =
            "model p99 \(CostModel.formatSeconds(x.latency.modelP99Seconds)), end to end "
            + "\(CostModel.formatSeconds(x.latency.realtimeP99Seconds)) / \(CostModel.formatSeconds(x.latency.budgetSeconds))"
            + (x.latency.userBlocking ? " blocking" : "")
        let failure =
            "\(x.failure.declared); fallback \(CostModel.percent(x.failure.fallbackRate)), unanswered "
            + CostModel.percent(x.failure.unansweredRate)
        let current = x.cost.monthly(a.current) ?? 0
        let recommended = x.cost.monthly(a.verdict.recommended) ?? 0
        if a.verdict.rule == 0 {
            let dash = "—"
            let feeds = a.feeds.isEmpty ? dash : "feeds " + a.feeds.joined(separator: ", ")
            return [a.feature, dash, feeds, dash, dash, dash, a.verdict.label, "\(a.current.rawValue) (stays)", dash]
        }
        return [
            a.feature.replacingOccurrences(of: "\n", with: " "), freshness, cardinality, cost, latency, failure,
            a.verdict.label,
            "\(a.current.rawValue) → \(a.verdict.recommended.rawValue)",
            "\(CostModel.money(current)) → \(CostModel.money(recommended)) \(currency)",
        ]
    }

    static func table(_ report: AdviceReport) -> String {
        let rows = [columns] + report.features.map { cells($0, currency: report.pricing.currency) }
        var widths = [Int](repeating: 0, count: columns.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        for (n, row) in rows.enumerated() {
            out +=
                row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
            if n == 0 { out += widths.map { String(repeating: "─", count: $0) }.joined(separator: "  ") + "\n" }
        }
        if report.features.isEmpty { out += "(no features)\n" }
        for a in report.features {
            out += "\n\(a.feature): \(a.verdict.label) — \(a.verdict.reason)\n"
            if a.origin != "live traffic" { out += "  numbers from: \(a.origin)\n" }
            for change in a.verdict.wouldChange { out += "  · \(change)\n" }
            // Load tests: their own lines, never merged into the production percentiles.
            for t in a.axes.latency.loadTests { out += "  \(loadTestLine(t))\n" }
            if let h = a.axes.latency.loadHeadroom { out += "  headroom: \(h.finding)\n" }
            if a.verdict.rule == 0 { continue }
            for note in notes(a) { out += "  ! \(note)\n" }
            for missing in a.verdict.notMeasured { out += "  ? not measured: \(missing)\n" }
            // The terminal shows the current and recommended patterns' terms; Markdown, HTML and JSON show all.
            let shown: Set<ServingPattern> = [a.current, a.verdict.recommended]
            for line in costLines(a.axes.cost, currency: report.pricing.currency, patterns: shown) {
                out += "  $ \(line)\n"
            }
            for w in a.whatIf { out += "  what if \(whatIfLine(w, currency: report.pricing.currency))\n" }
        }
        out += "\n" + thresholds(report) + "\n"
        return out
    }

    static func markdown(_ report: AdviceReport) -> String {
        func row(_ cells: [String]) -> String {
            "| "
                + cells.map {
                    $0.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "<", with: "&lt;")
                        .replacingOccurrences(of: "\n", with: " ")
                }.joined(separator: " | ") + " |"
        }
        var out = "# Freshline advice\n\n"
        out += row(columns) + "\n" + row(columns.map { _ in "---" }) + "\n"
        for a in report.features { out += row(cells(a, currency: report.pricing.currency)) + "\n" }
        for a in report.features {
            let x = a.axes
            out +=
                "\n## \(a.feature): \(a.current.rawValue) → \(a.verdict.recommended.rawValue) (\(a.verdict.label))\n\n"
            out += a.verdict.reason + "\n\n"
            if a.origin != "live traffic" { out += "Numbers from: \(a.origin).\n\n" }
            if !a.verdict.precompute.isEmpty {
                out +=
                    "Precompute per key: \(a.verdict.precompute.joined(separator: ", ")); at request time: "
                    + "\(a.verdict.requestTime.joined(separator: ", ")).\n\n"
            }
            for change in a.verdict.wouldChange { out += "- \(change)\n" }
            for missing in a.verdict.notMeasured { out += "- not measured: \(missing)\n" }
            out += "\n| axis | figures | evidence |\n| --- | --- | --- |\n"
            let points = x.freshness.points.map {
                "\(CostModel.formatAge($0.ageSeconds)): \(CostModel.percent($0.changeRate)) (\($0.pairs))"
            }
            out +=
                row([
                    "freshness",
                    (points.isEmpty ? "no pairs" : points.joined(separator: ", "))
                        + "; \(x.freshness.sensitive ? "sensitive" : "tolerant") (\(x.freshness.basis))",
                    x.freshness.evidence,
                ]) + "\n"
            out +=
                row([
                    "cardinality",
                    "\(CostModel.format(x.cardinality.distinctKeys)) keys, "
                        + "\(CostModel.percent(x.cardinality.requestInputsShare)) with request inputs, "
                        + "\(x.cardinality.predictableShare.map(CostModel.percent) ?? "—") predictable",
                    x.cardinality.evidence + "; " + x.cardinality.predictableBasis,
                ]) + "\n"
            out +=
                row([
                    "cost × volume",
                    "\(CostModel.format(x.cost.callsPerDay)) calls/day, peak \(CostModel.format(x.cost.peakToAverage))×"
                        + (x.cost.tokens == nil ? "" : ", \(perPrediction(x.cost))") + "; "
                        + x.cost.costs.map { "\($0.pattern.rawValue) \(CostModel.money($0.monthly))" }.joined(
                            separator: ", ")
                        + " \(report.pricing.currency)/month",
                    x.cost.evidence,
                ]) + "\n"
            out +=
                row([
                    "tail latency",
                    x.latency.sources.map {
                        "\($0.source) p50 \(CostModel.formatSeconds($0.p50)) p99 \(CostModel.formatSeconds($0.p99)) "
                            + "p99.9 \(CostModel.formatSeconds($0.p999)) (\($0.count))"
                    }.joined(separator: "; ") + "; budget \(CostModel.formatSeconds(x.latency.budgetSeconds))",
                    x.latency.evidence + "; end-to-end p99 \(x.latency.realtimeP99Basis); model p99 "
                        + "\(CostModel.formatSeconds(x.latency.modelP99Seconds)): \(x.latency.modelP99Basis)",
                ]) + "\n"
            // Load tests: their own rows, never merged into the production percentiles above.
            for t in x.latency.loadTests {
                out += row([t.label, loadTestFigures(t), loadTestEvidence(t)]) + "\n"
            }
            if let h = x.latency.loadHeadroom {
                out += row(["headroom", h.speed.map { "\(CostModel.format($0))×" } ?? "none", h.finding]) + "\n"
            }
            out +=
                row([
                    "failure mode",
                    "\(x.failure.declared); errors \(CostModel.percent(x.failure.errorRate)), timeouts "
                        + "\(CostModel.percent(x.failure.timeoutRate)), shed \(CostModel.percent(x.failure.shedRate)), "
                        + "fallback \(CostModel.percent(x.failure.fallbackRate))",
                    x.failure.evidence,
                ]) + "\n"
            for note in notes(a) { out += "\n> \(note)\n" }
            out += "\nCosts a month:\n\n"
            for line in costLines(x.cost, currency: report.pricing.currency) { out += "- \(line)\n" }
            out += "\nWhat if:\n\n"
            for w in a.whatIf { out += "- \(whatIfLine(w, currency: report.pricing.currency))\n" }
        }
        out += "\n" + thresholds(report) + "\n"
        return out
    }

    /// Reads what `json` wrote.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return try decoder.decode(type, from: data)
    }

    /// Any advice value as JSON (snake_case keys, sorted; non-finite numbers as strings).
    public static func json(_ report: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase  // like the rest of the /v1 API
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return String(decoding: try encoder.encode(report), as: UTF8.self) + "\n"
    }

    /// What one prediction costs: engine time, or for a feature priced by tokens, its tokens per call.
    static func perPrediction(_ k: CostAxis) -> String {
        guard let t = k.tokens else { return "\(CostModel.formatSeconds(k.realtimeSecondsPerPrediction))/pred" }
        return "priced by tokens: \(CostModel.format(t.perCall.input)) in + \(CostModel.format(t.perCall.output)) "
            + "out/call"
    }

    /// `load test at 4× (2026-12-08): realtime p50 … p99 …; shed 0, fallback 2, errors 0 of 480 sent`.
    static func loadTestLine(_ t: LoadTestResult) -> String {
        "\(t.label): \(loadTestFigures(t))"
    }

    /// A load test's percentiles per source and its counts.
    static func loadTestFigures(_ t: LoadTestResult) -> String {
        let sources = t.sources.map {
            "\($0.source) p50 \(CostModel.formatSeconds($0.p50)) p95 \(CostModel.formatSeconds($0.p95)) p99 "
                + "\(CostModel.formatSeconds($0.p99)) p99.9 \(CostModel.formatSeconds($0.p999)) (\($0.count))"
        }
        return (sources.isEmpty ? "nothing answered" : sources.joined(separator: "; "))
            + "; shed \(t.shed), fallback \(t.fallback), errors \(t.errors) of \(t.sent) sent"
    }

    /// Where a load test's figures come from.
    static func loadTestEvidence(_ t: LoadTestResult) -> String {
        "load test \(t.id): recorded traffic replayed at \(CostModel.format(t.speed))× for "
            + "\(CostModel.formatSeconds(t.durationSeconds)) against \(t.server), open loop, "
            + "\(CostModel.format(t.achievedRate)) requests/s; latency from each request's scheduled time; "
            + "not part of the production percentiles"
    }

    static func notes(_ a: FeatureAdvice) -> [String] {
        [a.axes.freshness.note].compactMap { $0 } + a.findings
    }

    /// Each pattern's monthly cost with its terms: `batch 152 USD/month = pipeline operations 150 (…) + …`.
    static func costLines(_ k: CostAxis, currency: String, patterns: Set<ServingPattern>? = nil) -> [String] {
        k.costs.filter { patterns?.contains($0.pattern) ?? true }.map { cost in
            let terms =
                cost.terms.isEmpty
                ? cost.basis
                : cost.terms.map { "\($0.name) \(CostModel.money($0.monthly)) (\($0.basis))" }.joined(separator: " + ")
            return "\(cost.pattern.rawValue) \(CostModel.money(cost.monthly)) \(currency)/month = \(terms)"
        }
    }

    static func whatIfLine(_ w: WhatIfResult, currency: String) -> String {
        var parts = ["\(w.label):"]
        if let hit = w.hitRate { parts.append("hit rate \(CostModel.percent(hit))") }
        if let p50 = w.servedAgeP50, let p95 = w.servedAgeP95, w.hitRate != nil {
            parts.append("served age p50 \(CostModel.formatSeconds(p50)) p95 \(CostModel.formatSeconds(p95))")
        }
        if let change = w.decisionChangeRate { parts.append("decisions changed \(CostModel.percent(change))") }
        if let p99 = w.latencyP99 { parts.append("p99 \(CostModel.formatSeconds(p99))") }
        parts.append("\(CostModel.money(w.monthlyCost)) \(currency)/month")
        return parts.joined(separator: " ") + (w.notes.isEmpty ? "" : " (\(w.notes.joined(separator: "; ")))")
    }

    static func thresholds(_ report: AdviceReport) -> String {
        let s = report.settings
        return "Thresholds: unbounded when ≥ \(CostModel.percent(s.unboundedInputShare)) of requests carry inputs "
            + "and < \(CostModel.percent(s.predictableShare)) of keys are known; real time under "
            + "\(CostModel.formatSeconds(s.realtimeP99Limit)) p99; staleness matters from "
            + "\(CostModel.percent(s.decisionChangeLimit)) changed decisions at \(CostModel.formatAge(s.referenceAgeSeconds)); "
            + "batch from \(CostModel.format(s.minCallsPerDay)) calls/day, \(CostModel.format(s.minCostRatio))× "
            + "cheaper and \(CostModel.money(s.minMonthlySaving)) \(report.pricing.currency)/month saved. Prices: "
            + "\(CostModel.money(report.pricing.coreHour)) \(report.pricing.currency)/core-hour, "
            + "\(CostModel.percent(report.pricing.spotDiscount)) spot discount, \(report.pricing.minInstances) instances "
            + "of \(CostModel.format(report.pricing.instanceCores)) cores always on for real time, "
            + "\(CostModel.money(report.pricing.batchOverheadPerMonth)) \(report.pricing.currency)/month to operate a "
            + "batch pipeline." + tokenPrices(report.pricing)
    }

    /// ` Token prices: chat 2.50 input / 10.00 output per 1M tokens, 50% off through the batch API.`, or nothing.
    static func tokenPrices(_ pricing: Pricing) -> String {
        guard !pricing.models.isEmpty else { return "" }
        let each = pricing.models.sorted { $0.key < $1.key }.map {
            "\($0.key) \(CostModel.priceText($0.value)) \(pricing.currency), "
                + "\(CostModel.percent($0.value.batchDiscount)) off through the batch API"
        }
        return " Token prices: \(each.joined(separator: "; "))."
    }
}
