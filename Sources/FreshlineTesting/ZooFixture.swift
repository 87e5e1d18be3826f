public import Foundation
internal import FreshlineEngine
public import FreshlineJSON

/// A model of the zoo (`Tests/Fixtures/zoo`, made by `scripts/make_zoo.py`) with its input rows and
/// onnxruntime's outputs for them.
public struct ZooFixture: Sendable, CustomStringConvertible {
    /// How an output is compared with onnxruntime's.
    public enum Comparison: String, Sendable, Decodable {
        /// Labels, indices and other integers or strings: equal.
        case exact
        /// Scores and probabilities: within tolerance.
        case close
        /// ZipMap rows: the same keys, values within tolerance.
        case map
    }

    struct Manifest: Decodable {
        struct Entry: Decodable {
            struct Output: Decodable {
                let name: String
                let compare: Comparison
            }
            let name: String
            let file: String
            let outputs: [Output]
            let inputs_file: String
            let expected_file: String
            let nan_rows: NaNRows?
        }
        struct NaNRows: Decodable {
            let inputs: String
            let expected: String
        }
        let models: [Entry]
    }

    /// The model's name in the manifest.
    public let name: String
    /// The ONNX file.
    public let modelURL: URL
    /// Output names with their comparison kind.
    public let outputs: [(name: String, comparison: Comparison)]
    /// Input rows.
    public let rows: [[String: JSONValue]]
    /// onnxruntime's output rows.
    public let expected: [[String: JSONValue]]

    public var description: String { name }

    /// Every model the manifest lists.
    public static func all(in directory: URL) throws -> [ZooFixture] {
        let manifest = try JSONDecoder().decode(
            Manifest.self, from: try Data(contentsOf: directory.appendingPathComponent("MANIFEST.json")))
        return try manifest.models.flatMap { entry in
            var fixtures = [
                ZooFixture(
                    name: entry.name,
                    modelURL: directory.appendingPathComponent(entry.file),
                    outputs: entry.outputs.map { ($0.name, $0.compare) },
                    rows: try jsonLines(directory.appendingPathComponent(entry.inputs_file)),
                    expected: try jsonLines(directory.appendingPathComponent(entry.expected_file))
                )
            ]
            // Rows with missing values (JSON null → NaN) for the models that route them.
            if let nan = entry.nan_rows {
                fixtures.append(
                    ZooFixture(
                        name: entry.name + " (missing values)",
                        modelURL: directory.appendingPathComponent(entry.file),
                        outputs: entry.outputs.map { ($0.name, $0.compare) },
                        rows: try jsonLines(directory.appendingPathComponent(nan.inputs)),
                        expected: try jsonLines(directory.appendingPathComponent(nan.expected))
                    ))
            }
            return fixtures
        }
    }

    /// Reads JSON Lines (NaN and Infinity allowed, as Python writes them).
    public static func jsonLines(_ url: URL) throws -> [[String: JSONValue]] {
        let decoder = JSONDecoder()
        decoder.allowsJSON5 = true
        return try String(decoding: try Data(contentsOf: url), as: UTF8.self)
            .split(separator: "\n")
            .map { try decoder.decode([String: JSONValue].self, from: Data($0.utf8)) }
    }

    /// Runs the rows through the engine as one batch (or in batches of `batchSize`) and returns the
    /// differences from onnxruntime's outputs, one line each; empty when everything matches.
    public func differences(batchSize: Int? = nil, tolerance: Tolerance = .parity) throws -> [String] {
        let model = try Model(contentsOf: modelURL)
        var actual: [[String: JSONValue]] = []
        let size = batchSize ?? rows.count
        for start in stride(from: 0, to: rows.count, by: size) {
            let batch = Array(rows[start..<min(start + size, rows.count)])
            let outputs = try model.run(try RowBatch.tensors(rows: batch, inputs: model.metadata.inputs))
            actual += try RowBatch.rows(outputs: outputs, count: batch.count)
        }
        var problems: [String] = []
        guard actual.count == expected.count else { return ["\(actual.count) rows, expected \(expected.count)"] }
        for (r, (got, want)) in zip(actual, expected).enumerated() {
            for output in outputs {
                guard let g = got[output.name], let w = want[output.name] else {
                    problems.append("row \(r + 1) \(output.name): missing")
                    continue
                }
                if let d = Self.difference(g, w, comparison: output.comparison, tolerance: tolerance) {
                    problems.append("row \(r + 1) \(output.name): \(d)")
                }
            }
        }
        return problems
    }

    static func difference(_ got: JSONValue, _ want: JSONValue, comparison: Comparison, tolerance: Tolerance) -> String?
    {
        switch (got, want) {
        case (.array(let g), .array(let w)):
            guard g.count == w.count else { return "\(g.count) elements, expected \(w.count)" }
            for (i, (a, b)) in zip(g, w).enumerated() {
                if let d = difference(a, b, comparison: comparison, tolerance: tolerance) { return "[\(i)] \(d)" }
            }
            return nil
        case (.object(let g), .object(let w)):
            guard Set(g.keys) == Set(w.keys) else { return "keys \(g.keys.sorted()), expected \(w.keys.sorted())" }
            for key in w.keys.sorted() {
                if let d = difference(g[key]!, w[key]!, comparison: .close, tolerance: tolerance) {
                    return "[\(key)] \(d)"
                }
            }
            return nil
        default:
            if comparison == .exact {
                if case .string = want { return got == want ? nil : "\(got), expected \(want)" }
                return got.doubleValue == want.doubleValue ? nil : "\(got), expected \(want)"
            }
            guard let a = got.doubleValue, let b = want.doubleValue else { return "\(got), expected \(want)" }
            return tolerance.accepts(a, b) ? nil : "\(a), expected \(b)"
        }
    }
}
