internal import FreshlineJSON

/// The answers of a feature served elsewhere (`freshline advise --requests FILE`), JSON Lines or CSV, one request a
/// line, read into request-log samples (sampling rate 1) so that the advisor measures freshness, cardinality and
/// failure from them as from its own log. Keys and input values are hashed on reading (`KeyHash`): no raw key is
/// kept.
///
/// Fields (JSON keys, or CSV header names):
/// - `time` (required): when the request arrived, RFC 3339 (`2026-12-08T09:30:00.250Z`, `+01:00`) or Unix seconds.
/// - `key`: the entity key (string or integer); absent for keyless requests.
/// - `decision`: the answer's decision — a string or integer is a label, a number with a fraction a score, an
///   array of strings or integers a ranking, an array of numbers a score; in CSV, items separated by `;` are a
///   ranking. The feature map's `decision` (`kind`, `threshold`) overrides the reading.
/// - `latency_ms`: the request's latency in milliseconds.
/// - `outcome`: `ok` (default), `error`, `timeout`, `shed`, `bad_request`, `unknown_key`, `stale`.
/// - `source`: `realtime` (default), `batch`, `async`, `fallback`, `default`.
/// - `inputs`: an object of input values (each hashed as its JSON text); in CSV, columns `input.NAME` (the cell's
///   text hashed).
/// - `input_hashes`: an object of precomputed 64-bit hashes (hex strings or integers); in CSV, `input_hash.NAME`.
/// - `request_inputs`: whether the request carried inputs no batch could know (default: it lists any input).
/// - `computed_at`: when the answer was computed (default `time`).
/// - `model_version`: counted; answers of different versions are compared all the same (reported).
public enum RequestsFile {
    /// A mistake in the file: `FILE:LINE: column: message`.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var column: String
        public var message: String
        public var description: String { "\(file):\(line): \(column): \(message)" }
    }

    /// What was read.
    public struct Contents: Sendable, Equatable {
        /// The requests, oldest first.
        public var samples: [RequestLogSample]
        /// The distinct `model_version` values.
        public var modelVersions: Set<String>
        /// `FILE (N requests, JSON Lines)` for the report.
        public var origin: String
    }

    /// The most bytes and lines a file may have.
    public static let maxBytes = 512 << 20
    public static let maxRows = 5_000_000

    static let fields: Set<String> = [
        "time", "key", "decision", "latency_ms", "outcome", "source", "inputs", "input_hashes", "request_inputs",
        "computed_at", "model_version",
    ]
    static let outcomes: Set<String> = ["ok", "error", "timeout", "shed", "bad_request", "unknown_key", "stale"]

    /// Reads `bytes` (the contents of `file`) for `feature`: JSON Lines when the file name ends in `.jsonl`,
    /// `.ndjson` or `.json`, or its first non-blank character is `{`; CSV otherwise.
    public static func parse(
        _ bytes: [UInt8], file: String, feature: String, decision: DecisionSpec = DecisionSpec()
    ) throws(ParseError) -> Contents {
        guard bytes.count <= maxBytes else {
            throw ParseError(file: file, line: 0, column: "(file)", message: "larger than \(maxBytes >> 20) MiB")
        }
        let lower = file.lowercased()
        let firstChar = bytes.first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D && $0 != 0xEF }
        let jsonLines =
            lower.hasSuffix(".jsonl") || lower.hasSuffix(".ndjson") || lower.hasSuffix(".json")
            || (!lower.hasSuffix(".csv") && firstChar == UInt8(ascii: "{"))
        var reader = Reader(file: file, feature: feature, decision: decision)
        if jsonLines {
            try reader.jsonLines(bytes)
        } else {
            try reader.csv(String(decoding: bytes, as: UTF8.self))
        }
        let samples = reader.samples.sorted { $0.at < $1.at }
        return Contents(
            samples: samples, modelVersions: reader.versions,
            origin: "\(file) (\(samples.count) requests, \(jsonLines ? "JSON Lines" : "CSV"))")
    }

    /// Seconds since 1970 from RFC 3339 text (`YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`, `T` or a space).
    public static func rfc3339(_ text: String) -> Double? {
        let b = Array(text.utf8)
        guard b.count >= 20 else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var v = 0
            for i in range {
                guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }
                v = v * 10 + Int(b[i] - 0x30)
            }
            return v
        }
        guard let year = number(0..<4), b[4] == UInt8(ascii: "-"), let month = number(5..<7),
            b[7] == UInt8(ascii: "-"), let day = number(8..<10),
            b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t") || b[10] == UInt8(ascii: " "),
            let hour = number(11..<13), b[13] == UInt8(ascii: ":"), let minute = number(14..<16),
            b[16] == UInt8(ascii: ":"), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60
        else { return nil }
        var i = 19
        var fraction = 0.0
        if b[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            let start = i
            while i < b.count, b[i] >= 0x30 && b[i] <= 0x39 {
                fraction += Double(b[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        guard i < b.count else { return nil }
        var offset = 0
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            guard i + 1 == b.count else { return nil }
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            guard i + 6 == b.count, let h = number(i + 1..<i + 3), b[i + 3] == UInt8(ascii: ":"),
                let m = number(i + 4..<i + 6), h < 24, m < 60
            else { return nil }
            offset = (h * 60 + m) * 60 * (b[i] == UInt8(ascii: "-") ? -1 : 1)
        } else {
            return nil
        }
        // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Double(days * 86_400 + hour * 3_600 + minute * 60 + second - offset) + fraction
    }

    /// One file's reading state.
    struct Reader {
        let file: String
        let feature: String
        let decision: DecisionSpec
        var samples: [RequestLogSample] = []
        var versions: Set<String> = []

        init(file: String, feature: String, decision: DecisionSpec) {
            self.file = file
            self.feature = feature
            self.decision = decision
        }

        func fail(_ line: Int, _ column: String, _ message: String) -> ParseError {
            ParseError(file: file, line: line, column: column, message: message)
        }

        mutating func append(_ sample: RequestLogSample, line: Int) throws(ParseError) {
            guard samples.count < RequestsFile.maxRows else {
                throw fail(line, "(file)", "more than \(RequestsFile.maxRows) requests")
            }
            samples.append(sample)
        }

        // MARK: JSON Lines

        mutating func jsonLines(_ bytes: [UInt8]) throws(ParseError) {
            var line = 0
            var start = 0
            while start <= bytes.count {
                line += 1
                var end = start
                while end < bytes.count && bytes[end] != 0x0A { end += 1 }
                var slice = bytes[start..<end]
                if line == 1, slice.starts(with: [0xEF, 0xBB, 0xBF]) { slice = slice.dropFirst(3) }
                start = end + 1
                if slice.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                let value: JSONValue
                do { value = try JSONValue.parse(slice) } catch {
                    throw fail(line, "(line)", error.message)
                }
                guard case .object(let object) = value else { throw fail(line, "(line)", "not a JSON object") }
                if case .string(let v)? = object["model_version"] { versions.insert(v) }
                try append(try row(object, line: line), line: line)
            }
        }

        func row(_ o: [String: JSONValue], line: Int) throws(ParseError) -> RequestLogSample {
            for name in o.keys.sorted() where !RequestsFile.fields.contains(name) {
                throw fail(
                    line, name, "unknown field (known: \(RequestsFile.fields.sorted().joined(separator: ", ")))")
            }
            func time(_ name: String) throws(ParseError) -> Double? {
                switch o[name] {
                case nil, .null?: return nil
                case .integer(let i)?: return try checkedTime(Double(i), name, line)
                case .number(let d)?: return try checkedTime(d, name, line)
                case .string(let s)?:
                    guard let t = RequestsFile.rfc3339(s) ?? Double(s) else {
                        throw fail(line, name, "'\(s)' is neither RFC 3339 nor Unix seconds")
                    }
                    return try checkedTime(t, name, line)
                default: throw fail(line, name, "must be RFC 3339 text or Unix seconds")
                }
            }
            func text(_ name: String) throws(ParseError) -> String? {
                switch o[name] {
                case nil, .null?: return nil
                case .string(let s)?: return s
                case .integer(let i)?: return String(i)
                default: throw fail(line, name, "must be a string")
                }
            }
            guard let at = try time("time") else { throw fail(line, "time", "is required") }
            var latency = -1.0
            switch o["latency_ms"] {
            case nil, .null?: break
            case .integer(let i)?: latency = try checkedLatency(Double(i), line)
            case .number(let d)?: latency = try checkedLatency(d, line)
            default: throw fail(line, "latency_ms", "must be a number of milliseconds")
            }
            var hashes: [String: UInt64] = [:]
            var bytes: [UInt8] = []
            switch o["inputs"] {
            case nil, .null?: break
            case .object(let inputs)?:
                for (name, value) in inputs {
                    bytes.removeAll(keepingCapacity: true)
                    value.write(into: &bytes)
                    hashes[name] = KeyHash.value(bytes: bytes)
                }
            default: throw fail(line, "inputs", "must be an object of input values")
            }
            switch o["input_hashes"] {
            case nil, .null?: break
            case .object(let given)?:
                for (name, value) in given {
                    switch value {
                    case .integer(let i): hashes[name] = UInt64(bitPattern: i)
                    case .string(let s):
                        guard let h = UInt64(s, radix: 16) else {
                            throw fail(line, "input_hashes.\(name)", "'\(s)' is not a hex hash")
                        }
                        hashes[name] = h
                    default: throw fail(line, "input_hashes.\(name)", "must be a hex string or an integer")
                    }
                }
            default: throw fail(line, "input_hashes", "must be an object of hashes")
            }
            var requestInputs = !hashes.isEmpty
            switch o["request_inputs"] {
            case nil, .null?: break
            case .bool(let b)?: requestInputs = b
            default: throw fail(line, "request_inputs", "must be true or false")
            }
            var decisionValue: DecisionValue?
            if let d = o["decision"], d != .null {
                decisionValue = try self.decision(json: d, line: line)
            }
            return try sample(
                at: at, key: try text("key"), decision: decisionValue, latency: latency, outcome: try text("outcome"),
                source: try text("source"), hashes: hashes, requestInputs: requestInputs,
                computedAt: try time("computed_at"), line: line)
        }

        func decision(json d: JSONValue, line: Int) throws(ParseError) -> DecisionValue {
            switch d {
            case .string(let s): return try decision(text: s, line: line, split: false)
            case .bool(let b): return .label(b ? "true" : "false")
            case .integer(let i): return try decision(number: Double(i), text: String(i), line: line)
            case .number(let v): return try decision(number: v, text: "\(v)", line: line)
            case .array(let items):
                var strings: [String] = []
                var numbers: [Double] = []
                var integral = true
                for item in items {
                    switch item {
                    case .string(let s): strings.append(s)
                    case .integer(let i):
                        strings.append(String(i))
                        numbers.append(Double(i))
                    case .number(let v):
                        guard v.isFinite else { throw fail(line, "decision", "an item is not a finite number") }
                        integral = false
                        numbers.append(v)
                    default: throw fail(line, "decision", "array items must be strings or numbers")
                    }
                }
                if decision.kind == .score || (!integral && decision.kind != .ranking) {
                    guard numbers.count == items.count else {
                        throw fail(line, "decision", "a score must be an array of numbers")
                    }
                    return .score(numbers)
                }
                guard strings.count == items.count else {
                    throw fail(line, "decision", "a ranking must be an array of strings or integers")
                }
                return .ranking(Array(strings.prefix(max(1, decision.topK))))
            default: throw fail(line, "decision", "must be a label, a number or an array")
            }
        }

        func decision(text: String, line: Int, split: Bool) throws(ParseError) -> DecisionValue {
            if decision.kind == .ranking || (decision.kind == nil && split && text.contains(";")) {
                let items = text.split(separator: ";").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
                return .ranking(Array(items.prefix(max(1, decision.topK))))
            }
            if decision.kind == .score || decision.threshold != nil || (decision.kind == nil && split) {
                if let v = Double(text) { return try decision(number: v, text: text, line: line) }
                if decision.kind == .score || decision.threshold != nil {
                    throw fail(line, "decision", "'\(text)' is not a number")
                }
            }
            return .label(text)
        }

        func decision(number v: Double, text: String, line: Int) throws(ParseError) -> DecisionValue {
            guard v.isFinite else { throw fail(line, "decision", "'\(text)' is not a finite number") }
            if let threshold = decision.threshold { return .label(v >= threshold ? "1" : "0") }
            switch decision.kind {
            case .score?: return .score([v])
            case .label?, .ranking?: return .label(text)
            case nil: return v == v.rounded() && abs(v) < 1e15 ? .label(String(Int64(v))) : .score([v])
            }
        }

        func checkedTime(_ t: Double, _ column: String, _ line: Int) throws(ParseError) -> Double {
            // 2000-01-01 to 2200-01-01: a time outside is a unit mistake (milliseconds) or garbage.
            guard t.isFinite, t >= 946_684_800, t < 7_258_118_400 else {
                throw fail(line, column, "\(t) is not a time between 2000 and 2200 in Unix seconds")
            }
            return t
        }

        func checkedLatency(_ ms: Double, _ line: Int) throws(ParseError) -> Double {
            guard ms.isFinite, ms >= 0, ms <= 86_400_000 else {
                throw fail(line, "latency_ms", "\(ms) is not a number of milliseconds from 0 to a day")
            }
            return ms / 1000
        }

        func sample(
            at: Double, key: String?, decision: DecisionValue?, latency: Double, outcome: String?, source: String?,
            hashes: [String: UInt64], requestInputs: Bool, computedAt: Double?, line: Int
        ) throws(ParseError) -> RequestLogSample {
            let outcome = outcome ?? "ok"
            guard RequestsFile.outcomes.contains(outcome) else {
                throw fail(
                    line, "outcome",
                    "'\(outcome)' is not one of \(RequestsFile.outcomes.sorted().joined(separator: ", "))")
            }
            var kind = PredictionSource.realtime
            if let source {
                guard let s = PredictionSource(rawValue: source) else {
                    throw fail(
                        line, "source",
                        "'\(source)' is not one of "
                            + PredictionSource.allCases.map(\.rawValue).joined(separator: ", "))
                }
                kind = s
            }
            return RequestLogSample(
                feature: feature, keyHash: key.map(KeyHash.hex), hasRequestInputs: requestInputs,
                source: outcome == "ok" ? kind : nil, outcome: outcome, latencySeconds: latency, ageSeconds: 0, at: at,
                sampleRate: 1, computedAt: outcome == "ok" ? (computedAt ?? at) : nil,
                decision: outcome == "ok" ? decision : nil, inputHashes: hashes)
        }

        // MARK: CSV

        mutating func csv(_ text: String) throws(ParseError) {
            let records: [(line: Int, cells: [String])]
            do { records = try AdviceSheet.parseCSV(text, file: file) } catch {
                throw fail(error.line, "(line)", error.message)
            }
            guard let header = records.first else { throw fail(1, "(file)", "the file is empty") }
            let names = header.cells.map { $0.trimmingWhitespace() }
            for name in names
            where !(RequestsFile.fields.contains(name) && name != "inputs" && name != "input_hashes")
                && !(name.hasPrefix("input.") && name.count > 6) && !(name.hasPrefix("input_hash.") && name.count > 11)
            {
                throw fail(
                    header.line, name,
                    "unknown column (known: time, key, decision, latency_ms, outcome, source, request_inputs, "
                        + "computed_at, model_version, input.NAME, input_hash.NAME)")
            }
            guard names.contains("time") else { throw fail(header.line, "time", "the column is required") }
            for record in records.dropFirst() where !record.cells.allSatisfy({ $0.trimmingWhitespace().isEmpty }) {
                let line = record.line
                guard record.cells.count <= names.count else {
                    throw fail(line, "(line)", "\(record.cells.count) cells for \(names.count) columns")
                }
                var row: [String: String] = [:]
                for (i, cell) in record.cells.enumerated() {
                    let v = cell.trimmingWhitespace()
                    if !v.isEmpty { row[names[i]] = v }
                }
                func time(_ name: String) throws(ParseError) -> Double? {
                    guard let s = row[name] else { return nil }
                    guard let t = RequestsFile.rfc3339(s) ?? Double(s) else {
                        throw fail(line, name, "'\(s)' is neither RFC 3339 nor Unix seconds")
                    }
                    return try checkedTime(t, name, line)
                }
                guard let at = try time("time") else { throw fail(line, "time", "is required") }
                var latency = -1.0
                if let s = row["latency_ms"] {
                    guard let v = Double(s) else { throw fail(line, "latency_ms", "'\(s)' is not a number") }
                    latency = try checkedLatency(v, line)
                }
                var hashes: [String: UInt64] = [:]
                for (name, value) in row {
                    if name.hasPrefix("input.") {
                        hashes[String(name.dropFirst(6))] = KeyHash.value(value)
                    } else if name.hasPrefix("input_hash.") {
                        guard let h = UInt64(value, radix: 16) else {
                            throw fail(line, name, "'\(value)' is not a hex hash")
                        }
                        hashes[String(name.dropFirst(11))] = h
                    }
                }
                var requestInputs = !hashes.isEmpty
                if let s = row["request_inputs"]?.lowercased() {
                    switch s {
                    case "yes", "true", "1": requestInputs = true
                    case "no", "false", "0": requestInputs = false
                    default: throw fail(line, "request_inputs", "'\(s)' is not yes or no")
                    }
                }
                let decisionValue = try row["decision"].map { (s: String) throws(ParseError) in
                    try decision(text: s, line: line, split: true)
                }
                if let v = row["model_version"] { versions.insert(v) }
                try append(
                    try sample(
                        at: at, key: row["key"], decision: decisionValue, latency: latency, outcome: row["outcome"],
                        source: row["source"], hashes: hashes, requestInputs: requestInputs,
                        computedAt: try time("computed_at"), line: line),
                    line: line)
            }
        }
    }
}
