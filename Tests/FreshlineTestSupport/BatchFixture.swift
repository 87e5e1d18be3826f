import Foundation
import FreshlineEngine
import FreshlineJSON

/// The batch tests' source: the zoo's 36 `gbc_binary` rows as users of a `users.csv`, under a manifest over the zoo.
public enum BatchFixture {
    /// The CSV's feature columns, `f0` … `f15` (the model's 16-wide input `X`).
    public static let columns = (0..<16).map { "f\($0)" }

    /// A folder with `users.csv` (the zoo's 36 gbc_binary rows as users u0…u35, then one bad row) and a manifest.
    public static func write(features: String, extraRows: String = "") throws -> (manifest: String, rows: [[Double]]) {
        let inputs = try String(
            contentsOf: TestManifest.zoo.appendingPathComponent("gbc_binary.inputs.jsonl"), encoding: .utf8)
        var rows: [[Double]] = []
        for line in inputs.split(separator: "\n") {
            guard case .object(let object) = try JSONValue.parse(Array(line.utf8)), case .array(let x)? = object["X"]
            else { continue }
            rows.append(x.compactMap(\.doubleValue))
        }
        var csv = "user_id," + columns.joined(separator: ",") + "\n"
        for (index, row) in rows.enumerated() {
            csv += "u\(index)," + row.map { String($0) }.joined(separator: ",") + "\n"
        }
        csv += "bad," + Array(repeating: "oops", count: 16).joined(separator: ",") + "\n" + extraRows
        let manifest = try TestManifest.write(
            """
            version: 1
            models:
              gbdt: ZOO/gbc_binary.onnx
            features:
            \(features)
            tokens:
              - {name: app, token: app-secret, scopes: [predict]}
              - {name: ops, token: ops-secret, scopes: [admin]}
            """)
        let folder = URL(fileURLWithPath: manifest).deletingLastPathComponent()
        try csv.write(to: folder.appendingPathComponent("users.csv"), atomically: true, encoding: .utf8)
        return (manifest, rows)
    }

    /// `users.csv` with the fixture's keys but every cell unreadable.
    public static func brokenCSV(rows: Int) -> String {
        var csv = "user_id," + columns.joined(separator: ",") + "\n"
        for index in 0..<rows {
            csv += "u\(index)," + Array(repeating: "oops", count: 16).joined(separator: ",") + "\n"
        }
        return csv
    }
}
