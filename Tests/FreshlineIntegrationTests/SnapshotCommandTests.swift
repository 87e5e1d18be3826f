import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineSnapshot
import FreshlineTestSupport
import FreshlineTesting
import Testing

/// `freshline snapshot inspect|get|export`, run as the binary a user runs.
@Suite("freshline snapshot")
struct SnapshotCommandTests {
    /// Runs the binary and returns its exit status and output (stdout, then stderr).
    static func run(_ arguments: [String], in folder: URL) async throws -> (Int32, String) {
        let process = try FreshlineProcess.start(arguments, in: folder)
        // Read while it runs: an export larger than a pipe's buffer would otherwise block the process.
        let output = FreshlineProcess.output(process)
        await process.exited()
        return (process.terminationStatus, output)
    }

    @Test("inspect, get and export read a file as lookups do; a damaged file and a missing key are clear errors")
    func commands() async throws {
        guard FileManager.default.isExecutableFile(atPath: FreshlineProcess.binary) else {
            Issue.record(
                "no freshline binary at \(FreshlineProcess.binary): build it (swift build --build-tests) first")
            return
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snapcli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // 3,000 keys of a label and two probabilities; key u7 written twice (the later row wins).
        var keys = (0..<3_000).map { "u\($0)" }
        var texts = keys.indices.map { i in #"{"label":\#(i % 2),"probabilities":[\#(0.25),\#(0.75)]}"# }
        keys.append("u7")
        texts.append(#"{"label":5,"probabilities":[0.5,0.5]}"#)
        let info = SnapshotInfo(
            id: 9, feature: "churn", version: 3, runID: "run_x", modelVersion: "m:1", inputTime: 1_700_000_000,
            createdAt: 1_700_000_000, publishedAt: nil, keyCount: 3_000, state: .published)
        let path = folder.appendingPathComponent("churn-v3-9.snap").path
        try SnapshotFileWriter.write(
            to: path, info: info,
            chunks: [SnapshotChunk(index: 0, keys: keys, packedOutputs: PackedRows(texts.map { Array($0.utf8) }))])

        let (status, inspected) = try await Self.run(["snapshot", "inspect", path, "--verify", "--json"], in: folder)
        #expect(status == 0, "\(inspected)")
        guard case .object(let meta) = try JSONValue.parse(Array(inspected.utf8)) else {
            Issue.record("inspect --json printed no object: \(inspected)")
            return
        }
        #expect(meta["key_count"] == .integer(3_000) && meta["rows"] == .integer(3_001))
        #expect(meta["layout"] == .string("columns") && meta["checksum_ok"] == .bool(true))
        #expect(meta["version"] == .integer(3) && meta["feature"] == .string("churn"))

        let (getStatus, got) = try await Self.run(["snapshot", "get", path, "u7"], in: folder)
        #expect(getStatus == 0)
        #expect(got == #"{"label":5,"probabilities":[0.5,0.5]}"# + "\n")
        let (missingStatus, missing) = try await Self.run(["snapshot", "get", path, "nobody"], in: folder)
        #expect(missingStatus != 0 && missing.contains("no key 'nobody' among 3000 keys"), "\(missing)")

        let (exportStatus, exported) = try await Self.run(["snapshot", "export", path], in: folder)
        #expect(exportStatus == 0)
        let lines = exported.split(separator: "\n")
        #expect(lines.count == 3_000)
        #expect(lines.first == #"{"key":"u0","outputs":{"label":0,"probabilities":[0.25,0.75]}}"#)
        #expect(
            lines.filter { $0.hasPrefix(#"{"key":"u7","#) } == [
                #"{"key":"u7","outputs":{"label":5,"probabilities":[0.5,0.5]}}"#
            ])

        // One byte flipped in the data: inspect --verify names the file and fails; a torn copy does not open.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 5] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        let (damagedStatus, damaged) = try await Self.run(["snapshot", "inspect", path, "--verify"], in: folder)
        #expect(damagedStatus != 0 && damaged.contains(path) && damaged.contains("damaged"), "\(damaged)")
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
        let (tornStatus, torn) = try await Self.run(["snapshot", "get", path, "u1"], in: folder)
        #expect(tornStatus != 0 && torn.contains("torn file"), "\(torn)")
    }
}
