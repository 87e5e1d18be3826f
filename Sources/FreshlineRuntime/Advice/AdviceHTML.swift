public import FreshlineCore

/// The advisor's report as one self-contained HTML page for a product team: the thresholds and prices used, a
/// summary table (one row per feature, one column per axis, the verdict and the monthly costs), and per feature
/// the verdict's reasoning, three inline SVG charts (latency, decision change against age, cost per pattern), the
/// five axes with their evidence and the what-if replays.
public enum AdviceHTML {
    /// Renders `report` as a complete HTML5 document: inline CSS and SVG, no scripts, no external resources.
    /// Every text that comes from the report is escaped; missing or non-finite figures are shown as "—".
    public static func render(_ report: AdviceReport) -> String {
        var h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        h += "<title>Freshline advice</title>\n<style>\n\(style)</style>\n</head>\n<body>\n<main>\n"
        h += header(report) + summary(report)
        for (index, feature) in report.features.enumerated() { h += section(feature, index: index, report: report) }
        return h + "</main>\n</body>\n</html>\n"
    }
}

// MARK: - Page parts

extension AdviceHTML {
    private static let style = """
        :root{--ink:#1f2933;--muted:#52606d;--line:#d5dbe1;--bg:#f5f7f9;--card:#fff;--accent:#1d4ed8;\
        --good:#0f766e;--warn:#9a3412;--bad:#b91c1c}
        *{box-sizing:border-box}a{color:var(--accent)}.scroll{overflow-x:auto}
        body{margin:0;background:var(--bg);color:var(--ink);\
        font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
        main{max-width:1240px;margin:0 auto;padding:24px}
        h1{font-size:26px;margin:0 0 2px}h2{font-size:20px;margin:0 0 4px}h3{font-size:15px;margin:0 0 8px}
        .meta,.small,.evidence{color:var(--muted)}.small,.evidence{font-size:12px}
        .card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:18px 20px;margin:20px 0}
        table{border-collapse:collapse;width:100%;background:var(--card)}
        th,td{border:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
        th{background:#eef1f5;font-weight:600}th small{font-weight:400;color:var(--muted)}
        .num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
        .badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600;\
        border:1px solid;white-space:nowrap}
        .b-yes{color:var(--warn);background:#fff7ed;border-color:#fdba74}\
        .b-no{color:var(--good);background:#f0fdfa;border-color:#5eead4}
        .b-bad{color:var(--bad);background:#fef2f2;border-color:#fca5a5}\
        .b-pat{color:var(--accent);background:#eff6ff;border-color:#93c5fd}
        .settings{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:2px 24px;margin:0}
        .settings div{display:flex;justify-content:space-between;border-bottom:1px dotted var(--line)}
        .settings dt{color:var(--muted)}.settings dd{margin:0 0 0 12px;font-variant-numeric:tabular-nums}
        .verdict{border-left:4px solid var(--good);background:#f0fdfa;padding:10px 14px;margin:12px 0}
        .verdict p{margin:0 0 6px}.verdict ul{margin:0;padding-left:20px}
        .charts,.axes{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:14px;margin:14px 0;\
        align-items:start}
        figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:8px 10px}\
        figcaption{font-weight:600;font-size:13px}svg{width:100%;height:auto;display:block}
        svg text{font-size:10.5px;fill:#52606d;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;\
        paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
        .empty{border:1px dashed var(--line);border-radius:6px;padding:28px 12px;text-align:center;\
        color:var(--muted);margin:8px 0}
        .axis{border:1px solid var(--line);border-radius:6px;padding:12px 14px}
        .axis dl{display:grid;grid-template-columns:max-content 1fr;gap:1px 12px;margin:0 0 8px}
        .axis dt{color:var(--muted)}.axis dd{margin:0}
        .axis table{font-size:12px;margin:6px 0}.axis th,.axis td{padding:2px 6px}
        .summary td,.summary th{font-size:13px}ul.small{margin:4px 0;padding-left:18px}
        .note{font-size:13px;background:#fffbeb;border-left:3px solid #d97706;padding:4px 8px;margin:6px 0}

        """

    private static func header(_ report: AdviceReport) -> String {
        let s = report.settings
        let p = report.pricing
        let items: [(String, String)] = [
            ("window", age(s.windowSeconds)),
            ("unbounded: request-input share ≥", pct(s.unboundedInputShare)),
            ("unbounded: predictable share <", pct(s.predictableShare)),
            ("real-time p99 limit (rule 1)", sec(s.realtimeP99Limit)),
            ("decision-change limit (rule 2)", pct(s.decisionChangeLimit)),
            ("reference age (no schedule)", age(s.referenceAgeSeconds)),
            ("batch from calls/day (rule 3)", num(s.minCallsPerDay)),
            ("… and real time ≥ × batch cost", times(s.minCostRatio)),
            ("… and batch saves ≥ a month", money(s.minMonthlySaving)),
            ("real-time instances always on", "\(p.minInstances) × \(num(p.instanceCores)) cores"),
            ("batch pipeline operations a month", money(p.batchOverheadPerMonth)),
            ("target utilisation", pct(s.targetUtilization)),
            ("min answer pairs per age", String(s.minPairs)),
            ("stable input share (hybrid)", pct(s.stableInputShare)),
            ("ages compared", s.ages.map(age).joined(separator: ", ")),
            ("core-hour price", "\(money(p.coreHour)) \(p.currency)"),
            ("spot discount (batch)", pct(p.spotDiscount)),
            ("currency", p.currency),
        ]
        var h = "<header>\n<h1>Freshline advice</h1>\n"
        h += "<p class=\"meta\">Generated \(esc(timestamp(report.generatedAt))) · \(report.features.count) "
        h += "feature\(report.features.count == 1 ? "" : "s")</p>\n</header>\n"
        h += "<section class=\"card\">\n<h3>Thresholds and prices used</h3>\n<dl class=\"settings\">\n"
        for (name, value) in items { h += "<div><dt>\(esc(name))</dt><dd>\(esc(value))</dd></div>\n" }
        return h + "</dl>\n</section>\n"
    }

    private static func summary(_ report: AdviceReport) -> String {
        let currency = esc(report.pricing.currency)
        var h =
            "<section class=\"card\">\n<h2>Summary</h2>\n<div class=\"scroll\"><table class=\"summary\">\n<thead><tr>"
        h += "<th>Feature</th><th>Freshness<br><small>sensitive? · change at reference age</small></th>"
        h += "<th>Cardinality<br><small>unbounded? · request inputs · predictable</small></th>"
        h += "<th>Cost × volume<br><small>calls/day · peak-to-average</small></th>"
        h += "<th>Tail latency<br><small>real-time p99 vs budget</small></th>"
        h += "<th>Failure mode<br><small>declared · fallback · errors</small></th>"
        h += "<th>Verdict</th><th>Pattern<br><small>current → recommended</small></th>"
        h += "<th class=\"num\">Monthly<br><small>current, \(currency)</small></th>"
        h += "<th class=\"num\">Monthly<br><small>recommended, \(currency)</small></th></tr></thead>\n<tbody>\n"
        if report.features.isEmpty {
            h += "<tr><td colspan=\"10\" class=\"small\">No features in this report.</td></tr>\n"
        }
        for (index, f) in report.features.enumerated() {
            let a = f.axes
            let point = referencePoint(a.freshness)
            let change =
                point.map { "\(pct($0.changeRate)) at \(age($0.ageSeconds))" }
                ?? "not measured (\(a.freshness.basis))"
            let c = a.cardinality
            let l = a.latency
            h += "<tr><td><a href=\"#feature-\(index + 1)\"><b>\(esc(f.feature))</b></a></td>"
            h += "<td>\(yesNo(a.freshness.sensitive))<br><span class=\"small\">\(esc(change))</span></td>"
            h += "<td>\(yesNo(c.unbounded))<br><span class=\"small\">inputs \(pct(c.requestInputsShare)) · "
            h += "predictable \(pct(c.predictableShare))</span></td>"
            h += "<td class=\"num\">\(num(a.cost.callsPerDay))<br><span class=\"small\">peak "
            h += "\(times(a.cost.peakToAverage))</span></td>"
            h += "<td class=\"num\">\(esc(sec(l.modelP99Seconds))) / \(esc(sec(l.budgetSeconds)))<br>"
            h += l.overBudget ? badge("over budget", "b-bad") : "<span class=\"small\">within budget</span>"
            h += "</td><td>\(esc(a.failure.declared.isEmpty ? "—" : a.failure.declared))<br><span class=\"small\">"
            h += "fallback \(pct(a.failure.fallbackRate)) · unanswered \(pct(a.failure.unansweredRate))</span></td>"
            h += "<td>\(esc(f.verdict.label))</td>"
            h += "<td>\(badge(f.current.rawValue, "b-pat")) →<br>\(badge(f.verdict.recommended.rawValue, "b-pat"))"
            h += f.current == f.verdict.recommended ? " <span class=\"small\">keep</span>" : ""
            h += "</td><td class=\"num\">\(money(a.cost.monthly(f.current)))</td>"
            h += "<td class=\"num\">\(money(a.cost.monthly(f.verdict.recommended)))</td></tr>\n"
        }
        return h + "</tbody></table></div>\n</section>\n"
    }

    private static func section(_ f: FeatureAdvice, index: Int, report: AdviceReport) -> String {
        let v = f.verdict
        var h = "<section class=\"card\" id=\"feature-\(index + 1)\">\n<h2>\(esc(f.feature))</h2>\n"
        h += "<p class=\"meta\">current \(badge(f.current.rawValue, "b-pat")) · recommended "
        h += "\(badge(v.recommended.rawValue, "b-pat")) · axes from \(esc(f.origin))</p>\n"
        h +=
            "<div class=\"verdict\"><p><b>\(esc(v.label.prefix(1).uppercased() + v.label.dropFirst())).</b> \(esc(v.reason))</p>\n"
        if v.recommended == .hybrid || !v.precompute.isEmpty || !v.requestTime.isEmpty {
            h += "<p>Precompute per key: <b>\(esc(list(v.precompute)))</b> · at request time: "
            h += "<b>\(esc(list(v.requestTime)))</b></p>\n"
        }
        if !v.wouldChange.isEmpty {
            h += "<p>What would change it:</p><ul>"
            for line in v.wouldChange { h += "<li>\(esc(line))</li>" }
            h += "</ul>\n"
        }
        if !v.notMeasured.isEmpty {
            h += "<p>Not measured:</p><ul>"
            for line in v.notMeasured { h += "<li>\(esc(line))</li>" }
            h += "</ul>\n"
        }
        for finding in f.findings { h += "<p class=\"note\">\(esc(finding))</p>\n" }
        h += "</div>\n<div class=\"charts\">\n"
        h += figure("Latency by source (log scale)", latencyChart(f.axes.latency))
        h += figure("Decision change against age", freshnessChart(f.axes.freshness, settings: report.settings))
        h += figure(
            "Monthly cost per pattern (\(report.pricing.currency))", costChart(f, currency: report.pricing.currency))
        h += "</div>\n<div class=\"axes\">\n"
        h += freshnessCard(f.axes.freshness)
        h += cardinalityCard(f.axes.cardinality)
        h += costCard(f.axes.cost, currency: report.pricing.currency)
        h += latencyCard(f.axes.latency)
        h += failureCard(f.axes.failure)
        h += "</div>\n<h3>What if</h3>\n" + whatIfTable(f.whatIf, currency: report.pricing.currency)
        return h + "</section>\n"
    }

    private static func figure(_ caption: String, _ body: String) -> String {
        "<figure><figcaption>\(esc(caption))</figcaption>\n\(body)</figure>\n"
    }

    // MARK: - Axis cards

    private static func card(_ title: String, _ rows: [(String, String)], extra: String = "", evidence: String)
        -> String
    {
        var h = "<div class=\"axis\"><h3>\(esc(title))</h3><dl>"
        for (name, value) in rows { h += "<dt>\(esc(name))</dt><dd>\(value)</dd>" }
        h += "</dl>\(extra)"
        return h + "<p class=\"evidence\">Evidence: \(esc(evidence))</p></div>\n"
    }

    private static func freshnessCard(_ f: FreshnessAxis) -> String {
        var extra = ""
        if let note = f.note { extra += "<p class=\"note\">\(esc(note))</p>" }
        if !f.points.isEmpty {
            let rows = f.points.map { p in
                [esc(age(p.ageSeconds)), String(p.pairs), pct(p.changeRate), pct(p.meanRelativeError)]
            }
            extra += table(["age", "pairs", "changed", "mean rel. error"], rows, numeric: [1, 2, 3])
        }
        if !f.inputStability.isEmpty {
            let rows = f.inputStability.map { [esc($0.input), pct($0.unchangedShare), String($0.pairs)] }
            extra += table(["request input", "unchanged per key", "pairs"], rows, numeric: [1, 2])
        }
        return card(
            "1 · Freshness",
            [
                ("sensitive", yesNo(f.sensitive)), ("basis", esc(f.basis)),
                ("reference age", esc(age(f.referenceAgeSeconds))),
                ("declared max_staleness", esc(age(f.declaredMaxStalenessSeconds))),
                ("decisions hold for", esc(f.holdsForSeconds.map { "≥ " + age($0) } ?? "—")),
            ], extra: extra, evidence: f.evidence)
    }

    private static func cardinalityCard(_ c: CardinalityAxis) -> String {
        card(
            "2 · Cardinality",
            [
                ("unbounded", yesNo(c.unbounded)), ("requests", num(c.requests)),
                ("distinct keys", num(c.distinctKeys)), ("distinct keys/day", num(c.distinctKeysPerDay)),
                ("carry request inputs", pct(c.requestInputsShare)),
                (
                    "predictable share",
                    "\(pct(c.predictableShare)) <span class=\"small\">(\(esc(c.predictableBasis)))</span>"
                ),
            ], evidence: c.evidence)
    }

    private static func costCard(_ k: CostAxis, currency: String) -> String {
        let rows = k.costs.map { [esc($0.pattern.rawValue), money($0.monthly), num($0.coreHoursPerMonth)] }
        let bases = k.costs.map { cost in
            let terms =
                cost.terms.isEmpty
                ? esc(cost.basis)
                : "<ul>"
                    + cost.terms.map { "<li>\(esc($0.name)) \(money($0.monthly)): \(esc($0.basis))</li>" }.joined()
                    + "</ul>"
            return "<li>\(esc(cost.pattern.rawValue)) \(money(cost.monthly)): \(terms)</li>"
        }.joined()
        var figures = [
            ("calls/day", num(k.callsPerDay)),
            (
                "peak-to-average",
                "\(times(k.peakToAverage)) <span class=\"small\">over \(esc(age(k.peakBucketSeconds)))"
                    + " intervals</span>"
            ),
        ]
        if let t = k.tokens {
            figures += [
                ("priced by", "tokens (\(esc(t.model)))"),
                ("tokens per call", "\(num(t.perCall.input)) in + \(num(t.perCall.output)) out"),
                ("tokens per batch row", "\(num(t.perRow.input)) in + \(num(t.perRow.output)) out"),
            ]
        } else {
            figures += [
                ("real time, per prediction", esc(sec(k.realtimeSecondsPerPrediction)) + " at batch 1"),
                ("batch, per prediction", "\(esc(sec(k.batchSecondsPerPrediction))) at batch \(k.batchSize)"),
            ]
        }
        figures.append(("batch rows/run × runs/day", "\(num(k.batchRowsPerRun)) × \(num(k.runsPerDay))"))
        return card(
            "3 · Cost × volume", figures,
            extra: table(["pattern", "\(esc(currency))/month", "core-h/month"], rows, numeric: [1, 2])
                + (bases.isEmpty ? "" : "<ul class=\"small\">\(bases)</ul>"), evidence: k.evidence)
    }

    private static func latencyCard(_ l: LatencyAxis) -> String {
        let rows = l.sources.map { s in
            [esc(s.source), String(s.count), esc(sec(s.p50)), esc(sec(s.p95)), esc(sec(s.p99)), esc(sec(s.p999))]
        }
        var extra =
            rows.isEmpty ? "" : table(["source", "n", "p50", "p95", "p99", "p99.9"], rows, numeric: [1, 2, 3, 4, 5])
        // Load tests: their own table, never merged into the production percentiles.
        let loadRows = l.loadTests.flatMap { t in
            t.sources.map { s in
                [
                    esc(t.label), esc(s.source), String(s.count), esc(sec(s.p50)), esc(sec(s.p95)), esc(sec(s.p99)),
                    esc(sec(s.p999)), "\(t.shed)", "\(t.fallback)", "\(t.errors)",
                ]
            }
        }
        if !loadRows.isEmpty {
            extra += table(
                ["run", "source", "n", "p50", "p95", "p99", "p99.9", "shed", "fallback", "errors"], loadRows,
                numeric: [2, 3, 4, 5, 6, 7, 8, 9])
        }
        var figures: [(String, String)] = []
        if let h = l.loadHeadroom { figures.append(("load-test headroom", esc(h.finding))) }
        return card(
            "4 · Tail latency",
            [
                ("budget", esc(sec(l.budgetSeconds))), ("user-blocking", yesNo(l.userBlocking)),
                (
                    "model p99 (rules 1, 3)",
                    "\(esc(sec(l.modelP99Seconds))) <span class=\"small\">(\(esc(l.modelP99Basis)))</span>"
                ),
                (
                    "real-time p99, end to end",
                    "\(esc(sec(l.realtimeP99Seconds))) <span class=\"small\">(\(esc(l.realtimeP99Basis)))</span>"
                ),
                ("timed out or shed", pct(l.refusedShare)),
                ("over budget", l.overBudget ? badge("yes", "b-bad") : badge("no", "b-no")),
            ] + figures, extra: extra, evidence: l.evidence)
    }

    private static func failureCard(_ f: FailureAxis) -> String {
        card(
            "5 · Failure mode",
            [
                ("declared", esc(f.declared.isEmpty ? "—" : f.declared)), ("errors", pct(f.errorRate)),
                ("timeouts", pct(f.timeoutRate)), ("shed", pct(f.shedRate)), ("fallback answers", pct(f.fallbackRate)),
                ("missing or stale keys", pct(f.missRate)), ("refused (4xx)", pct(f.rejectedRate)),
            ], evidence: f.evidence)
    }

    private static func whatIfTable(_ results: [WhatIfResult], currency: String) -> String {
        guard !results.isEmpty else { return "<p class=\"small\">No what-if replays.</p>\n" }
        let rows = results.map { r in
            [
                esc(r.label), num(r.requests), pct(r.hitRate), esc(age(r.servedAgeP50)), esc(age(r.servedAgeP95)),
                esc(age(r.servedAgeMax)), pct(r.decisionChangeRate), esc(sec(r.latencyP50)), esc(sec(r.latencyP99)),
                money(r.monthlyCost), r.notes.isEmpty ? "—" : r.notes.map(esc).joined(separator: "<br>"),
            ]
        }
        let head = [
            "scenario", "requests", "hit rate", "served age p50", "p95", "max", "decisions changed", "latency p50",
            "p99", "\(esc(currency))/month", "notes",
        ]
        return "<div class=\"scroll\">" + table(head, rows, numeric: Set(1...9)) + "</div>\n"
    }

    /// A table; `head` and `rows` are already escaped HTML.
    private static func table(_ head: [String], _ rows: [[String]], numeric: Set<Int>) -> String {
        func cell(_ tag: String, _ i: Int, _ text: String) -> String {
            numeric.contains(i) ? "<\(tag) class=\"num\">\(text)</\(tag)>" : "<\(tag)>\(text)</\(tag)>"
        }
        var h = "<table><thead><tr>"
        for (i, text) in head.enumerated() { h += cell("th", i, text) }
        h += "</tr></thead><tbody>"
        for row in rows {
            h += "<tr>"
            for (i, text) in row.enumerated() { h += cell("td", i, text) }
            h += "</tr>"
        }
        return h + "</tbody></table>"
    }
}

// MARK: - Charts

extension AdviceHTML {
    private static let percentileColours = ["#bfdbfe", "#60a5fa", "#2563eb", "#1e3a8a"]

    /// Grouped bars per source on a log scale, with the budget as a dashed line.
    private static func latencyChart(_ l: LatencyAxis) -> String {
        let names = ["p50", "p95", "p99", "p99.9"]
        let values = l.sources.map { [$0.p50, $0.p95, $0.p99, $0.p999] }
        let budget = positive(l.budgetSeconds)
        let all = values.flatMap { $0 }.compactMap(positive) + [budget].compactMap { $0 }
        guard !l.sources.isEmpty, let lowest = all.min(), let highest = all.max() else {
            return empty("no latency measured yet; budget \(sec(l.budgetSeconds))")
        }
        let (w, left, right, top, bottom) = (400.0, 52.0, 10.0, 30.0, 212.0)
        var lo = (log10(lowest) - 0.3).rounded(.down)
        var hi = (log10(highest) + 0.2).rounded(.up)
        if hi <= lo { (lo, hi) = (lo - 1, hi + 1) }
        func y(_ v: Double) -> Double { bottom - (log10(v) - lo) / (hi - lo) * (bottom - top) }
        var s = svgOpen(w, 250, label: "Latency percentiles per source on a log scale")
        let stepDecades = max(1, Int((hi - lo) / 5) + 1)
        for k in stride(from: Int(lo), through: Int(hi), by: stepDecades) {
            let ty = y(pow10(k))
            s += line(left, ty, w - right, ty, "#e5e9ee")
            s += text(left - 5, ty + 3, sec(pow10(k)), anchor: "end")
        }
        s += line(left, top, left, bottom, "#9aa5b1") + line(left, bottom, w - right, bottom, "#9aa5b1")
        for (i, name) in names.enumerated() {
            s += rect(left + Double(i) * 62, 8, 9, 9, fill: percentileColours[i], tip: name)
            s += text(left + Double(i) * 62 + 12, 16, name)
        }
        let group = (w - right - left) / Double(l.sources.count)
        let barWidth = min(20, group * 0.8 / 4)
        var labels = ""
        for (g, source) in l.sources.enumerated() {
            let start = left + Double(g) * group + (group - barWidth * 4) / 2
            for (i, value) in values[g].enumerated() {
                let barTop = positive(value).map { max(top, y($0)) } ?? bottom
                let tip = "\(source.source) \(names[i]): \(sec(value)) (\(source.count) answers)"
                s += rect(
                    start + Double(i) * barWidth, barTop, barWidth - 1, bottom - barTop, fill: percentileColours[i],
                    tip: tip)
            }
            var labelY = (values[g].compactMap(positive).max().map { max(top, y($0)) } ?? bottom) - 4
            if let budget, abs(labelY - y(budget)) < 10 { labelY = y(budget) - 4 }  // clear of the budget line
            labels += text(start + 2 * barWidth, labelY, "p99 " + sec(source.p99), anchor: "middle")
            let mid = left + (Double(g) + 0.5) * group
            s += text(mid, bottom + 14, source.source, anchor: "middle", weight: "600")
            s += text(mid, bottom + 26, "n=\(source.count)", anchor: "middle")
        }
        s += labels
        if let budget {
            let by = y(budget)
            s += line(left, by, w - right, by, "#b91c1c", dash: "6 4", tip: "latency budget \(sec(budget))")
            s += text(w - right, by - 4, "budget \(sec(budget))", anchor: "end", fill: "#b91c1c")
        }
        return s + "</svg>\n"
    }

    /// The decision-change curve against age (log x), with the limit, the reference age and max_staleness.
    private static func freshnessChart(_ f: FreshnessAxis, settings: AdvisorSettings) -> String {
        let points = f.points.filter { positive($0.ageSeconds) != nil && $0.changeRate.isFinite }
            .sorted { $0.ageSeconds < $1.ageSeconds }
        guard let first = points.first, let last = points.last else {
            return empty(
                "not enough answer pairs to measure (≥ \(settings.minPairs) per age); reference age "
                    + age(f.referenceAgeSeconds))
        }
        let reference = positive(f.referenceAgeSeconds)
        let declared = f.declaredMaxStalenessSeconds.flatMap(positive)
        let ages = [first.ageSeconds, last.ageSeconds] + [reference, declared].compactMap { $0 }
        let lo = log10(ages.min()!) - 0.25
        let hi = log10(ages.max()!) + 0.25
        let limit = min(1, max(0, settings.decisionChangeLimit.isFinite ? settings.decisionChangeLimit : 0))
        let peak = max(limit, points.map { min(1, max(0, $0.changeRate)) }.max() ?? 0) * 1.15
        let yMax = [0.1, 0.2, 0.25, 0.5].first { $0 >= peak } ?? 1
        let (w, left, right, top, bottom) = (400.0, 40.0, 12.0, 34.0, 212.0)
        func x(_ a: Double) -> Double { left + (log10(a) - lo) / (hi - lo) * (w - right - left) }
        func y(_ r: Double) -> Double { bottom - min(1, max(0, r)) / yMax * (bottom - top) }
        var s = svgOpen(w, 250, label: "Share of decisions that changed, against the answer's age")
        let step = yMax / 5
        for i in 0...5 {
            let ty = y(Double(i) * step)
            s += line(left, ty, w - right, ty, i == 0 ? "#9aa5b1" : "#e5e9ee")
            s += text(left - 5, ty + 3, pct(Double(i) * step), anchor: "end")
        }
        s += line(left, top, left, bottom, "#9aa5b1")
        var lastLabel = -100.0
        let ticks = Set(settings.ages + points.map(\.ageSeconds)).filter { $0 > 0 && $0.isFinite }.sorted()
        for a in ticks where log10(a) >= lo && log10(a) <= hi {
            let tx = x(a)
            s += line(tx, bottom, tx, bottom + 4, "#9aa5b1")
            if tx - lastLabel >= 26 {
                s += text(tx, bottom + 15, age(a), anchor: "middle")
                lastLabel = tx
            }
        }
        s += text((left + w - right) / 2, bottom + 32, "age of the answer (log scale)", anchor: "middle")
        let ly = y(limit)
        s += line(left, ly, w - right, ly, "#b91c1c", dash: "6 4", tip: "decision-change limit \(pct(limit))")
        s += text(w - right, ly - 4, "limit \(pct(limit))", anchor: "end", fill: "#b91c1c")
        if let reference { s += marker(x(reference), "reference \(age(reference))", top, bottom, w, row: 0, "#0f766e") }
        if let declared {
            s += marker(x(declared), "max_staleness \(age(declared))", top, bottom, w, row: 1, "#9a3412")
        }
        let path = points.map { "\(c(x($0.ageSeconds))),\(c(y($0.changeRate)))" }.joined(separator: " ")
        if points.count > 1 {
            s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"#1d4ed8\" stroke-width=\"2\"/>\n"
        }
        for p in points {
            let (px, py) = (x(p.ageSeconds), y(p.changeRate))
            let tip = "\(age(p.ageSeconds)): \(pct(p.changeRate)) of decisions changed (\(p.pairs) pairs)"
            s +=
                "<circle cx=\"\(c(px))\" cy=\"\(c(py))\" r=\"3.5\" fill=\"#1d4ed8\"><title>\(esc(tip))</title></circle>\n"
            s += text(px, py - 7, "n=\(p.pairs)", anchor: "middle")
        }
        return s + "</svg>\n"
    }

    /// A vertical marker with its label at the top (row 0) or just below (row 1).
    private static func marker(
        _ mx: Double, _ label: String, _ top: Double, _ bottom: Double, _ w: Double, row: Int, _ colour: String
    ) -> String {
        let ty = row == 0 ? top - 18 : top - 6
        let anchor = mx > w * 0.6 ? "end" : "start"
        let tx = anchor == "end" ? mx - 3 : mx + 3
        return line(mx, ty - 8, mx, bottom, colour, dash: row == 0 ? "4 3" : "2 3", tip: label)
            + text(tx, ty, label, anchor: anchor, fill: colour)
    }

    /// Horizontal bars per pattern; the recommended one highlighted, the current one outlined.
    private static func costChart(_ f: FeatureAdvice, currency: String) -> String {
        let costs = f.axes.cost.costs
        guard !costs.isEmpty else { return empty("no costs computed") }
        let (w, left, right, top, rowHeight) = (400.0, 70.0, 80.0, 6.0, 44.0)
        let height = top + Double(costs.count) * rowHeight + 24
        let highest = costs.compactMap { positive($0.monthly) }.max() ?? 0
        let scale = niceCeiling(highest)
        func x(_ v: Double) -> Double { left + (positive(v) ?? 0) / scale * (w - left - right) }
        var s = svgOpen(w, height, label: "Monthly cost of each serving pattern")
        let bottom = top + Double(costs.count) * rowHeight
        for i in 0...2 {
            let v = scale * Double(i) / 2
            s += line(x(v), top, x(v), bottom, i == 0 ? "#9aa5b1" : "#e5e9ee")
            s += text(x(v), bottom + 14, highest > 0 || i == 0 ? money(v) : "", anchor: "middle")
        }
        for (i, cost) in costs.enumerated() {
            let rowTop = top + Double(i) * rowHeight
            let recommended = cost.pattern == f.verdict.recommended
            let current = cost.pattern == f.current
            let role = [recommended ? "recommended" : nil, current ? "current" : nil].compactMap { $0 }
            let weight = recommended ? "700" : "400"
            s += text(left - 8, rowTop + 29, cost.pattern.rawValue, anchor: "end", weight: weight)
            if !role.isEmpty {
                s += text(
                    left + 1, rowTop + 11, role.joined(separator: " · "), fill: recommended ? "#0f766e" : "#1f2933")
            }
            let barWidth = max(x(cost.monthly) - left, cost.monthly > 0 ? 1.5 : 0)
            let tip =
                "\(cost.pattern.rawValue): \(money(cost.monthly)) \(currency)/month, "
                + "\(num(cost.coreHoursPerMonth)) core-h; \(cost.basis)"
            s += "<rect x=\"\(c(left))\" y=\"\(c(rowTop + 15))\" width=\"\(c(barWidth))\" height=\"20\" rx=\"2\" "
            s += "fill=\"\(recommended ? "#0f766e" : "#cbd5e1")\""
            s += current ? " stroke=\"#1f2933\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\"" : ""
            s += "><title>\(esc(tip))</title></rect>\n"
            s += text(left + barWidth + 5, rowTop + 29, "\(money(cost.monthly)) \(currency)", weight: weight)
        }
        return s + "</svg>\n"
    }

    private static func svgOpen(_ w: Double, _ h: Double, label: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(c(w)) \(c(h))\" role=\"img\" "
            + "aria-label=\"\(esc(label))\">\n"
    }

    private static func empty(_ message: String) -> String { "<div class=\"empty\">\(esc(message))</div>\n" }

    private static func line(
        _ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, _ colour: String, dash: String? = nil,
        tip: String? = nil
    ) -> String {
        var s = "<line x1=\"\(c(x1))\" y1=\"\(c(y1))\" x2=\"\(c(x2))\" y2=\"\(c(y2))\" stroke=\"\(colour)\""
        if let dash { s += " stroke-width=\"1.5\" stroke-dasharray=\"\(dash)\"" }
        guard let tip else { return s + "/>\n" }
        return s + "><title>\(esc(tip))</title></line>\n"
    }

    private static func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String, tip: String) -> String {
        "<rect x=\"\(c(x))\" y=\"\(c(y))\" width=\"\(c(max(0, w)))\" height=\"\(c(max(0, h)))\" fill=\"\(fill)\">"
            + "<title>\(esc(tip))</title></rect>\n"
    }

    private static func text(
        _ x: Double, _ y: Double, _ content: String, anchor: String = "start", weight: String = "400",
        fill: String? = nil
    ) -> String {
        let colour = fill.map { " style=\"fill:\($0)\"" } ?? ""
        return "<text x=\"\(c(x))\" y=\"\(c(y))\" text-anchor=\"\(anchor)\" font-weight=\"\(weight)\"\(colour)>"
            + "\(esc(content))</text>\n"
    }
}

// MARK: - Formatting

extension AdviceHTML {
    /// Escapes text for HTML content and attribute values.
    static func esc(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A coordinate for an SVG attribute: one decimal, always finite.
    private static func c(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        let tenths = Int((min(max(v, -100_000), 100_000) * 10).rounded())
        let sign = tenths < 0 ? "-" : ""
        let a = abs(tenths)
        return a % 10 == 0 ? "\(sign)\(a / 10)" : "\(sign)\(a / 10).\(a % 10)"
    }

    private static func finite(_ v: Double?) -> Double? { v.flatMap { $0.isFinite ? $0 : nil } }
    private static func positive(_ v: Double) -> Double? { v.isFinite && v > 0 ? v : nil }

    private static func sec(_ v: Double?) -> String {
        finite(v).map { $0 < 0 ? "—" : $0 == 0 ? "0" : CostModel.formatSeconds($0) } ?? "—"
    }
    /// An age: `6h` for whole days and hours (and minutes under 2 h), else `22.5 h`.
    private static func age(_ v: Double?) -> String {
        guard let v = finite(v), v >= 0 else { return "—" }
        let whole =
            v.truncatingRemainder(dividingBy: 3_600) == 0 || (v < 7_200 && v.truncatingRemainder(dividingBy: 60) == 0)
        return v == 0 ? "0" : whole ? CostModel.formatAge(v) : CostModel.formatSeconds(v)
    }
    private static func pct(_ v: Double?) -> String { finite(v).map(CostModel.percent) ?? "—" }
    private static func num(_ v: Double?) -> String { finite(v).map(CostModel.format) ?? "—" }
    private static func money(_ v: Double?) -> String { finite(v).map(CostModel.money) ?? "—" }
    private static func times(_ v: Double?) -> String { finite(v).map { CostModel.format($0) + "×" } ?? "—" }
    private static func list(_ items: [String]) -> String { items.isEmpty ? "—" : items.joined(separator: ", ") }

    private static func badge(_ text: String, _ kind: String) -> String {
        "<span class=\"badge \(kind)\">\(esc(text))</span>"
    }
    private static func yesNo(_ flag: Bool) -> String { flag ? badge("yes", "b-yes") : badge("no", "b-no") }

    /// The measured point closest (on a log scale) to the reference age.
    private static func referencePoint(_ f: FreshnessAxis) -> FreshnessPoint? {
        let valid = f.points.filter { positive($0.ageSeconds) != nil && $0.changeRate.isFinite }
        guard let reference = positive(f.referenceAgeSeconds) else { return valid.first }
        return valid.min {
            abs(log10($0.ageSeconds / reference)) < abs(log10($1.ageSeconds / reference))
        }
    }

    /// `generatedAt` (seconds since 1970, UTC) as `YYYY-MM-DD HH:MM UTC`, by civil-date arithmetic.
    static func timestamp(_ t: Double) -> String {
        guard t.isFinite, abs(t) < 1e13 else { return "—" }
        let minutes = Int((t / 60).rounded(.down))
        let days = minutes >= 0 ? minutes / 1_440 : (minutes - 1_439) / 1_440
        let minuteOfDay = minutes - days * 1_440
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(year)-\(pad(month))-\(pad(day)) \(pad(minuteOfDay / 60)):\(pad(minuteOfDay % 60)) UTC"
    }

    /// log₁₀ without Foundation: the exponent plus a fast-converging series for the significand.
    private static func log10(_ x: Double) -> Double {
        guard x > 0, x.isFinite else { return 0 }
        let u = (x.significand - 1) / (x.significand + 1)
        let u2 = u * u
        var (term, sum, k) = (u, 0.0, 1.0)
        for _ in 0..<14 {
            sum += term / k
            term *= u2
            k += 2
        }
        return (2 * sum + Double(x.exponent) * 0.693_147_180_559_945_3) / 2.302_585_092_994_046
    }

    private static func pow10(_ k: Int) -> Double {
        var v = 1.0
        for _ in 0..<abs(k) { v *= 10 }
        return k < 0 ? 1 / v : v
    }

    /// The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above `v` (1 for nothing positive).
    private static func niceCeiling(_ v: Double) -> Double {
        guard let v = positive(v) else { return 1 }
        let base = pow10(Int((log10(v) + 1e-9).rounded(.down)))
        return [1.0, 2, 2.5, 5, 10].map { $0 * base }.first { $0 >= v * (1 - 1e-9) } ?? base * 10
    }
}
