/// The seed's spreadsheet, for teams whose features do not run on Freshline yet: one CSV row per feature with
/// the five axes as numbers and declarations. The same rules and cost model as live advice apply.
///
/// Columns (header names, any order; only `feature`, `calls_per_day` and `ms_per_prediction` are required):
/// `feature`, `pattern` (current; default realtime), `unbounded_input` (yes/no; default no),
/// `decision_change` (share of decisions that change at `refresh`, `0.12` or `12%`), `max_staleness` (duration),
/// `refresh` (the batch interval and rule 2's reference age; default: daily runs, the advisor's reference age),
/// `calls_per_day`, `peak_to_average` (default 3), `ms_per_prediction` (compute at batch 1),
/// `batch_ms_per_prediction` (default a fifth of it, stated as assumed), `batch_rows` (rows a run computes;
/// default the calls of a day), `p99_ms` (default `ms_per_prediction`), `latency_budget_ms` (default 100),
/// `user_blocking` (yes/no; default yes), `failure_mode` (text), `stable_inputs` and `request_inputs`
/// (`;`-separated input names: stable per key vs changing per request, for the hybrid split).
public enum AdviceSheet {
    /// A problem in the sheet, with its file and line.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var message: String
        public var description: String { "\(file):\(line): \(message)" }
    }

    static let known: Set<String> = [
        "feature", "pattern", "unbounded_input", "decision_change", "max_staleness", "refresh", "calls_per_day",
        "peak_to_average", "ms_per_prediction", "batch_ms_per_prediction", "batch_rows", "p99_ms",
        "latency_budget_ms", "user_blocking", "failure_mode", "stable_inputs", "request_inputs",
    ]

    /// Advice for every row of the sheet.
    public static func advise(
        csv text: String, file: String, settings: AdvisorSettings, pricing: Pricing, now: Double
    ) throws(ParseError) -> AdviceReport {
        let records = try parseCSV(text, file: file)
        guard let header = records.first else { throw ParseError(file: file, line: 1, message: "the sheet is empty") }
        let names = header.cells.map { $0.trimmingWhitespace().lowercased() }
        for (i, name) in names.enumerated() where !known.contains(name) {
            throw ParseError(
                file: file, line: header.line,
                message: "unknown column '\(name)' (column \(i + 1)); known: \(known.sorted().joined(separator: ", "))")
        }
        for required in ["feature", "calls_per_day", "ms_per_prediction"] where !names.contains(required) {
            throw ParseError(file: file, line: header.line, message: "the column '\(required)' is required")
        }
        var features: [FeatureAdvice] = []
        var seen: [String: Int] = [:]
        for record in records.dropFirst() where !record.cells.allSatisfy({ $0.trimmingWhitespace().isEmpty }) {
            var row: [String: String] = [:]
            for (i, cell) in record.cells.enumerated() where i < names.count {
                let v = cell.trimmingWhitespace()
                if !v.isEmpty { row[names[i]] = v }
            }
            if let name = row["feature"] {
                if let first = seen[name] {
                    throw ParseError(
                        file: file, line: record.line, message: "feature '\(name)' is already on line \(first)")
                }
                if name.contains(where: \.isNewline) {
                    throw ParseError(file: file, line: record.line, message: "feature: a name cannot span lines")
                }
                seen[name] = record.line
            }
            features.append(try advice(row, file: file, line: record.line, settings: settings, pricing: pricing))
        }
        return AdviceReport(generatedAt: now, settings: settings, pricing: pricing, features: features)
    }

    static func advice(
        _ row: [String: String], file: String, line: Int, settings: AdvisorSettings, pricing: Pricing
    ) throws(ParseError) -> FeatureAdvice {
        func fail(_ column: String, _ message: String) -> ParseError {
            ParseError(file: file, line: line, message: "\(column): \(message)")
        }
        func number(_ column: String, default value: Double? = nil, min: Double = 0) throws(ParseError) -> Double {
            guard let text = row[column] else {
                if let value { return value }
                throw fail(column, "is required")
            }
            guard let v = Double(text.replacingUnderscores()), v.isFinite, v >= min else {
                throw fail(column, "'\(text)' is not a number ≥ \(CostModel.format(min))")
            }
            return v
        }
        func flag(_ column: String, default value: Bool) throws(ParseError) -> Bool {
            guard let text = row[column]?.lowercased() else { return value }
            switch text {
            case "yes", "y", "true", "1": return true
            case "no", "n", "false", "0": return false
            default: throw fail(column, "'\(text)' is not yes or no")
            }
        }
        func duration(_ column: String) throws(ParseError) -> Double? {
            guard let text = row[column] else { return nil }
            guard let d = DurationText.parse(text), d > .zero else { throw fail(column, "'\(text)' is not a duration") }
            return d.seconds
        }
        guard let name = row["feature"] else { throw fail("feature", "is required") }
        let origin = "\(file):\(line)"
        var current = ServingPattern.realtime
        if let text = row["pattern"] {
            guard let p = ServingPattern(rawValue: text.lowercased()) else {
                throw fail("pattern", "'\(text)' is not one of realtime, async, batch, hybrid")
            }
            current = p
        }
        let interval = try duration("refresh")
        let refresh = interval ?? settings.referenceAgeSeconds
        let runsPerDay = 86_400 / (interval ?? 86_400)
        let declared = try duration("max_staleness")
        var change: Double?
        if let text = row["decision_change"] {
            let percent = text.hasSuffix("%")
            guard var v = Double(percent ? String(text.dropLast()) : text), v >= 0 else {
                throw fail("decision_change", "'\(text)' is not a share (0.12 or 12%)")
            }
            if percent { v /= 100 }
            guard v <= 1 else { throw fail("decision_change", "'\(text)' is more than 100%") }
            change = v
        }
        let unbounded = try flag("unbounded_input", default: false)
        let calls = try number("calls_per_day")
        let peak = try number("peak_to_average", default: 3, min: 1)
        let ms = try number("ms_per_prediction")
        let batchMs = try number("batch_ms_per_prediction", default: ms / 5)
        let rows = try number("batch_rows", default: calls)
        let p99 = try number("p99_ms", default: ms)
        let budget = try number("latency_budget_ms", default: 100)
        let blocking = try flag("user_blocking", default: true)
        func list(_ column: String) -> [String] {
            (row[column] ?? "").split(separator: ";").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
        }
        let stable = list("stable_inputs")
        let changing = list("request_inputs")
        let limit = settings.decisionChangeLimit
        let sensitive: Bool
        let basis: String
        if let change {
            sensitive = change >= limit
            basis = "sheet"
        } else if let declared {
            sensitive = declared < refresh
            basis = "declared"
        } else {
            sensitive = false
            basis = "none"
        }
        let points =
            change.map { [FreshnessPoint(ageSeconds: refresh, pairs: 0, changeRate: $0, meanRelativeError: nil)] } ?? []
        let stability =
            stable.map { InputStability(input: $0, unchangedShare: 1, pairs: 0) }
            + changing.map { InputStability(input: $0, unchangedShare: 0, pairs: 0) }
        let freshness = FreshnessAxis(
            points: points, referenceAgeSeconds: refresh, declaredMaxStalenessSeconds: declared, sensitive: sensitive,
            basis: basis, holdsForSeconds: change.flatMap { $0 < limit ? refresh : nil }, inputStability: stability,
            note: nil, evidence: "\(origin): decision_change \(change.map(CostModel.percent) ?? "not given")")
        let cardinality = CardinalityAxis(
            requests: calls, distinctKeys: rows, distinctKeysPerDay: rows, requestInputsShare: unbounded ? 1 : 0,
            predictableShare: unbounded ? 0 : 1, predictableBasis: "declared unbounded_input", unbounded: unbounded,
            evidence: "\(origin): unbounded_input \(unbounded ? "yes" : "no")")
        let volume = CostModel.Volume(
            callsPerDay: calls, peakToAverage: peak, realtimeSecondsPerPrediction: ms / 1000,
            batchSecondsPerPrediction: batchMs / 1000, batchRowsPerRun: rows, runsPerDay: runsPerDay,
            coverage: unbounded ? 0 : 1)
        let assumed = row["batch_ms_per_prediction"] == nil ? " (assumed a fifth of batch 1)" : ""
        let cost = CostAxis(
            callsPerDay: calls, peakToAverage: peak, peakBucketSeconds: 3_600, realtimeSecondsPerPrediction: ms / 1000,
            batchSecondsPerPrediction: batchMs / 1000, batchSize: 0, batchRowsPerRun: rows,
            runsPerDay: runsPerDay, costs: CostModel.costs(volume, pricing: pricing, settings: settings),
            evidence: "\(origin): \(CostModel.format(calls)) calls/day, \(CostModel.format(ms)) ms/prediction, "
                + "\(CostModel.format(batchMs)) ms in batch\(assumed)")
        let latency = LatencyAxis(
            sources: [], budgetSeconds: budget / 1000, userBlocking: blocking, realtimeP99Seconds: p99 / 1000,
            realtimeP99Basis: "from the sheet", overBudget: blocking && p99 > budget,
            evidence: "\(origin): p99 \(CostModel.format(p99)) ms, budget \(CostModel.format(budget)) ms")
        let failure = FailureAxis(
            declared: row["failure_mode"] ?? "not declared", errorRate: 0, timeoutRate: 0, shedRate: 0,
            fallbackRate: 0, evidence: "\(origin)")
        let axes = FeatureAxes(
            freshness: freshness, cardinality: cardinality, cost: cost, latency: latency, failure: failure)
        return FeatureAdvice(
            feature: name, current: current, axes: axes,
            verdict: Advisor.decide(axes, settings: settings, current: current),
            whatIf: [], origin: origin)
    }

    /// RFC 4180 records with the line each starts on (quoted fields may span lines, `""` is a quote).
    static func parseCSV(_ text: String, file: String) throws(ParseError) -> [(line: Int, cells: [String])] {
        var records: [(line: Int, cells: [String])] = []
        var cells: [String] = []
        var cell = ""
        var quoted = false
        var afterQuote = false
        var line = 1
        var recordLine = 1
        var chars = Array(text.unicodeScalars)
        if chars.first == "\u{FEFF}" { chars.removeFirst() }
        var i = 0
        func endRecord() {
            cells.append(cell)
            if !(cells.count == 1 && cells[0].isEmpty) { records.append((recordLine, cells)) }
            cells = []
            cell = ""
        }
        while i < chars.count {
            let c = chars[i]
            if quoted {
                if c == "\"" {
                    if i + 1 < chars.count && chars[i + 1] == "\"" {
                        cell.unicodeScalars.append("\"")
                        i += 1
                    } else {
                        quoted = false
                        afterQuote = true
                    }
                } else {
                    if c == "\n" { line += 1 }
                    cell.unicodeScalars.append(c)
                }
            } else if c == "," {
                cells.append(cell)
                cell = ""
                afterQuote = false
            } else if c == "\n" || c == "\r" {
                if c == "\r" && i + 1 < chars.count && chars[i + 1] == "\n" { i += 1 }
                endRecord()
                afterQuote = false
                line += 1
                recordLine = line
            } else if c == "\"" && cell.isEmpty && !afterQuote {
                quoted = true
            } else if afterQuote {
                throw ParseError(file: file, line: line, message: "text after a closing quote")
            } else {
                cell.unicodeScalars.append(c)
            }
            i += 1
        }
        if quoted { throw ParseError(file: file, line: recordLine, message: "a quoted field is not closed") }
        if !cell.isEmpty || !cells.isEmpty { endRecord() }
        return records
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}
