internal import Foundation
internal import FreshlineJSON

/// A load test's requests file (`freshline load --requests FILE`): JSON Lines, one request per line, in any order —
/// `{"time": 1733616000.25, "key": "u42", "inputs": {"X": [0.1, 0.2]}}`. `time` is seconds (only the gaps between
/// requests matter) or an RFC 3339 timestamp; `key` (string or integer) and `inputs` (an object of named inputs) are
/// optional. Blank lines and lines starting with `#` are skipped. Unlike the request log it holds real keys and
/// input values, so the replay sends them as they are.
public enum LoadScript {
    /// The file's requests, oldest first. Mistakes are reported as `FILE:LINE: message`.
    public static func read(path: String) throws -> [RecordedArrival] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LoadScriptError("\(path): cannot read the file")
        }
        return try parse(String(decoding: data, as: UTF8.self), file: path)
    }

    /// Parses the text of a requests file named `file` (for messages).
    public static func parse(_ text: String, file: String) throws -> [RecordedArrival] {
        var arrivals: [RecordedArrival] = []
        var number = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            func fail(_ message: String) -> LoadScriptError { LoadScriptError("\(file):\(number): \(message)") }
            let value: JSONValue
            do { value = try JSONValue.parse(Array(trimmed.utf8)) } catch {
                throw fail("not a JSON object: \(error)")
            }
            guard case .object(let object) = value else { throw fail("expected a JSON object") }
            let time: Double
            switch object["time"] {
            case .number(let seconds)? where seconds.isFinite: time = seconds
            case .integer(let seconds)?: time = Double(seconds)
            case .string(let text)?:
                guard let seconds = timestamp(text) else {
                    throw fail("time: '\(text)' is not an RFC 3339 timestamp (2026-12-08T10:00:00Z) or seconds")
                }
                time = seconds
            case nil: throw fail("time: missing (seconds, or an RFC 3339 timestamp)")
            default: throw fail("time: expected seconds or an RFC 3339 timestamp")
            }
            var key: String?
            switch object["key"] {
            case nil, .null?: key = nil
            case .string(let s)?: key = s
            case .integer(let i)?: key = String(i)
            case .number(let n)? where n == n.rounded() && abs(n) < 1e15: key = String(Int64(n))
            default: throw fail("key: expected a string or an integer")
            }
            var inputs: [String: JSONValue] = [:]
            switch object["inputs"] {
            case nil, .null?: break
            case .object(let named)?: inputs = named
            default: throw fail("inputs: expected an object of named inputs")
            }
            arrivals.append(RecordedArrival(at: time, key: key, inputs: inputs))
        }
        guard !arrivals.isEmpty else { throw LoadScriptError("\(file): no requests in the file") }
        return arrivals.sorted { $0.at < $1.at }
    }

    static func timestamp(_ text: String) -> Double? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date.timeIntervalSince1970 }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)?.timeIntervalSince1970
    }
}

/// A mistake in a load test's requests file, with its file and line.
public struct LoadScriptError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
