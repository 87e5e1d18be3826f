import ArgumentParser
import Foundation
import FreshlineEngine
import FreshlineJSON
import FreshlineSnapshot

/// `freshline snapshot …`: look into a snapshot file (docs/snapshots.md).
struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Inspect a snapshot file, read one key, or export it as JSON Lines.",
        subcommands: [Inspect.self, Get.self, Export.self]
    )

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a snapshot file's feature, version, keys, columns and sizes.")

        @Argument(help: "The snapshot file (.snap).") var file: String
        @Flag(help: "Also read every byte and check the data checksum.") var verify = false
        @Flag(help: "Print JSON instead of text.") var json = false

        func run() throws {
            let snapshot = try open(file)
            let m = snapshot.metadata
            let checked: Bool? = verify ? snapshot.verify() : nil
            if json {
                var object: [String: JSONValue] = [
                    "file": .string(file), "feature": .string(m.feature), "snapshot_id": .integer(m.snapshotID),
                    "version": .integer(Int64(m.version)), "run_id": .string(m.runID),
                    "model_version": .string(m.modelVersion), "key_count": .integer(Int64(m.keyCount)),
                    "rows": .integer(Int64(m.rows)), "layout": .string(m.layout),
                    "file_bytes": .integer(Int64(snapshot.fileBytes)),
                    "index_bytes": .integer(Int64(m.index.length)), "record_bytes": .integer(Int64(m.records.length)),
                    "columns": .array(
                        m.columns.map {
                            .object([
                                "name": .string($0.name), "kind": .string($0.kind.rawValue),
                                "elements": .integer(Int64($0.elements)),
                            ])
                        }),
                ]
                if let checked { object["checksum_ok"] = .bool(checked) }
                print(encodeLine(.object(object)))
            } else {
                print("file       \(file)")
                print("feature    \(m.feature), snapshot v\(m.version) (id \(m.snapshotID)), run \(m.runID)")
                print("model      \(m.modelVersion)")
                print("keys       \(m.keyCount) (\(m.rows) rows), index of \(m.indexSlots) slots")
                print(
                    "size       \(snapshot.fileBytes) bytes (index \(m.index.length), records \(m.records.length)), layout \(m.layout)"
                )
                for c in m.columns {
                    let shape = c.kind == .json ? "JSON text" : c.scalar ? "scalar" : "\(c.elements) per row"
                    print(
                        "  column \(c.name.isEmpty ? "(whole rows)" : c.name): \(c.kind.rawValue), \(shape)"
                    )
                }
                if let checked { print("checksum   \(checked ? "ok" : "MISMATCH")") }
            }
            if checked == false { throw CLIError("\(file): the data checksum does not match: the file is damaged") }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print one key's outputs as JSON.")

        @Argument(help: "The snapshot file (.snap).") var file: String
        @Argument(help: "The entity key.") var key: String

        func run() throws {
            let snapshot = try open(file)
            guard let row = snapshot.row(for: key) else {
                throw CLIError("\(file): no key '\(key)' among \(snapshot.metadata.keyCount) keys")
            }
            print(String(decoding: snapshot.json(row: row), as: UTF8.self))
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write every key with its outputs as JSON Lines ({\"key\": …, \"outputs\": {…}}), in row order.")

        @Argument(help: "The snapshot file (.snap).") var file: String

        func run() throws {
            let snapshot = try open(file)
            var line: [UInt8] = []
            let out = FileHandle.standardOutput
            var buffer: [UInt8] = []
            buffer.reserveCapacity(1 << 16)
            for row in snapshot.rows where snapshot.isLive(row: row) {
                line.removeAll(keepingCapacity: true)
                line += Array(#"{"key":"#.utf8)
                JSONValue.writeString(snapshot.key(row: row), into: &line)
                line += Array(#","outputs":"#.utf8)
                line += snapshot.json(row: row)
                line += Array("}\n".utf8)
                buffer += line
                if buffer.count >= 1 << 16 {
                    out.write(Data(buffer))
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            out.write(Data(buffer))
        }
    }
}

private func open(_ file: String) throws -> SnapshotFile {
    do { return try SnapshotFile(path: file) } catch { throw CLIError("\(error)") }
}
