import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineSnapshot
import Testing

@Suite("Snapshot files")
struct SnapshotFileTests {
    static func info(keys: Int) -> SnapshotInfo {
        SnapshotInfo(
            id: 42, feature: "churn", version: 7, runID: "run_abc", modelVersion: "gbdt:3", inputTime: 1_700_000_000,
            createdAt: 1_700_000_100, publishedAt: nil, keyCount: keys, state: .published)
    }

    static func path() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("snap-\(UUID().uuidString).snap").path
    }

    /// Rows as a GBDT's outputs are stored: an int64 label and two float32 probabilities per key.
    static func gbdtChunks(keys: Int, chunkRows: Int = 1000) throws -> [SnapshotChunk] {
        var chunks: [SnapshotChunk] = []
        for start in stride(from: 0, to: keys, by: chunkRows) {
            let count = min(chunkRows, keys - start)
            let labels = (0..<count).map { Int64((start + $0) % 2) }
            let probabilities = (0..<count).flatMap { i -> [Float] in
                let p = Float((start + i) % 997) / 997
                return [1 - p, p]
            }
            let outputs: [String: Value] = [
                "label": .tensor(try Tensor(shape: [count], data: .int64(labels))),
                "probabilities": .tensor(try Tensor(shape: [count, 2], data: .float(probabilities))),
            ]
            let packed = try #require(PackedRows(packed: try RowBatch.packedRows(outputs: outputs, count: count)))
            chunks.append(
                SnapshotChunk(index: start, keys: (0..<count).map { "u\(start + $0)" }, packedOutputs: packed))
        }
        return chunks
    }

    @Test("numeric outputs become typed columns; every key answers the bytes the run stored")
    func typedRoundTrip() throws {
        let chunks = try Self.gbdtChunks(keys: 5_000)
        let path = Self.path()
        try SnapshotFileWriter.write(to: path, info: Self.info(keys: 5_000), chunks: chunks)
        let file = try SnapshotFile(path: path)
        #expect(file.metadata.layout == "columns")
        #expect(file.metadata.columns.map(\.name) == ["label", "probabilities"])
        #expect(file.metadata.columns.map(\.kind) == [.i64, .f32])
        #expect(file.metadata.keyCount == 5_000 && file.metadata.rows == 5_000)
        #expect(file.info.id == 42 && file.info.version == 7 && file.info.modelVersion == "gbdt:3")
        for chunk in chunks {
            for (key, stored) in zip(chunk.keys, chunk.packedOutputs.rows) {
                let row = try #require(file.row(for: key), "\(key)")
                #expect(file.key(row: row) == key)
                #expect(file.json(row: row) == stored, "\(key)")
                // Decoded from the typed columns: the values the stored text parses to.
                #expect(file.outputs(row: row).map { JSONValue.object($0) } == (try JSONValue.parse(stored)))
            }
        }
        #expect(file.row(for: "u5000") == nil && file.row(for: "") == nil)
        #expect(file.outputs(for: "u3")?["label"] == .integer(1))
        #expect(file.verify())
        // 8 bytes of label + 8 of probabilities per key, plus the index and the keys.
        #expect(file.fileBytes < 5_000 * 60, "\(file.fileBytes) bytes")
    }

    @Test("a key written twice answers its later row; earlier rows stay but are not live")
    func laterRowWins() throws {
        func chunk(_ index: Int, _ keys: [String], _ texts: [String]) -> SnapshotChunk {
            SnapshotChunk(index: index, keys: keys, packedOutputs: PackedRows(texts.map { Array($0.utf8) }))
        }
        let chunks = [
            chunk(0, ["a", "b"], [#"{"score":1.5}"#, #"{"score":2.5}"#]),
            chunk(2, ["a", "c"], [#"{"score":3.5}"#, #"{"score":4.5}"#]),
        ]
        let path = Self.path()
        try SnapshotFileWriter.write(to: path, info: Self.info(keys: 3), chunks: chunks)
        let file = try SnapshotFile(path: path)
        #expect(file.metadata.keyCount == 3 && file.metadata.rows == 4)
        #expect(file.json(row: try #require(file.row(for: "a"))) == Array(#"{"score":3.5}"#.utf8))
        #expect(file.rows.map(file.isLive) == [false, true, true, true])
        #expect(file.rows.map(file.key) == ["a", "b", "a", "c"])
    }

    @Test(
        "the fast path (numbers only) and the general path give the same answers: kinds, widening, order, doubles")
    func fastAndGeneralPaths() throws {
        func write(_ texts: [String]) throws -> SnapshotFile {
            let path = Self.path()
            try SnapshotFileWriter.write(
                to: path, info: Self.info(keys: texts.count),
                chunks: [
                    SnapshotChunk(
                        index: 0, keys: texts.indices.map { "k\($0)" },
                        packedOutputs: PackedRows(texts.map { Array($0.utf8) }))
                ])
            let file = try SnapshotFile(path: path)
            for (i, text) in texts.enumerated() {
                #expect(file.json(row: try #require(file.row(for: "k\(i)"))) == Array(text.utf8), "\(text)")
                #expect(
                    file.outputs(for: "k\(i)").map { JSONValue.object($0) } == (try JSONValue.parse(Array(text.utf8))))
            }
            return file
        }
        // Names in the run's order (not sorted), a double that is not a float32, negative and large integers.
        let flat = try write([#"{"z":-3,"a":[0.1,2.5e-07]}"#, #"{"z":9007199254740993,"a":[-0.0,1]}"#])
        #expect(flat.metadata.columns.map(\.kind) == [.json])  // `1` among doubles: the general path, one JSON row
        let typed = try write([#"{"z":-3,"a":[0.1,2.5e-07]}"#, #"{"z":9007199254740993,"a":[-0.5,1.5]}"#])
        #expect(typed.metadata.layout == "columns")
        #expect(typed.metadata.columns.map(\.name) == ["z", "a"])
        #expect(typed.metadata.columns.map(\.kind) == [.i64, .f64])
        // An integer in one row and a number in another: widened by the general path to JSON text.
        let mixed = try write([#"{"a":1,"b":0.5}"#, #"{"a":1.5,"b":0.25}"#])
        #expect(mixed.metadata.columns.map(\.kind) == [.json, .f32])
        // Whitespace, escapes and other values never reach typed columns with a different text.
        _ = try write([#"{"a": 1}"#, #"{"a":2}"#])
        _ = try write([#"{"a\"b":1}"#, #"{"a\"b":2}"#])
        _ = try write([#"{"a":null}"#, #"{"a":true}"#, #"{"a":"1"}"#])
    }

    @Test("damaged records answer no key and end iteration; nothing reads past the records")
    func damagedRecords() throws {
        let path = Self.path()
        try SnapshotFileWriter.write(to: path, info: Self.info(keys: 200), chunks: try Self.gbdtChunks(keys: 200))
        let good = try SnapshotFile(path: path)
        let records = good.metadata.records
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        // Every key length in the records made huge: each record then claims to run past the section.
        for row in good.rows {
            let varint = records.offset + row.offsetForTesting
            bytes[varint] = 0xFF
        }
        let damaged = Self.path()
        _ = FileManager.default.createFile(atPath: damaged, contents: bytes)
        let file = try SnapshotFile(path: damaged)  // the metadata is intact: it opens; verify finds the damage
        #expect(!file.verify())
        for i in 0..<200 { #expect(file.row(for: "u\(i)") == nil) }
        #expect(Array(file.rows).isEmpty)
    }

    @Test("outputs that are not plain numbers keep their JSON text, byte for byte")
    func jsonColumnsAndRows() throws {
        let texts = [
            #"{"label":"yes","probabilities":{"no":0.25,"yes":0.75},"tags":["a","b"]}"#,
            #"{"label":"no","probabilities":{"no":0.5,"yes":0.5},"tags":[]}"#,
            #"{"label":"no","probabilities":{"no":1.0,"yes":0.0},"tags":["c"]}"#,
        ]
        let path = Self.path()
        try SnapshotFileWriter.write(
            to: path, info: Self.info(keys: 3),
            chunks: [
                SnapshotChunk(
                    index: 0, keys: ["k1", "k2", "k3"], packedOutputs: PackedRows(texts.map { Array($0.utf8) }))
            ])
        let file = try SnapshotFile(path: path)
        #expect(file.metadata.layout == "columns")
        #expect(file.metadata.columns.allSatisfy { $0.kind == .json })
        for (i, text) in texts.enumerated() {
            #expect(file.json(row: try #require(file.row(for: "k\(i + 1)"))) == Array(text.utf8))
        }

        // Rows without the same outputs, and a number JSON text cannot round-trip: whole rows as text.
        let odd = [#"{"a":1}"#, #"{"b":2.0}"#, #"{"a":"NaN"}"#]
        let other = Self.path()
        try SnapshotFileWriter.write(
            to: other, info: Self.info(keys: 3),
            chunks: [
                SnapshotChunk(index: 0, keys: ["x", "y", "z"], packedOutputs: PackedRows(odd.map { Array($0.utf8) }))
            ])
        let rows = try SnapshotFile(path: other)
        #expect(rows.metadata.layout == "rows")
        #expect(["x", "y", "z"].map { rows.row(for: $0).map(rows.json) } == odd.map { Array($0.utf8) })
    }

    @Test("the streaming writer gives the answers the in-memory writer gives, with later rows winning across chunks")
    func streamingWriter() throws {
        var chunks = try Self.gbdtChunks(keys: 5_000, chunkRows: 700)
        // u3 and u4000 again, in a last chunk: the later rows win.
        chunks.append(
            SnapshotChunk(
                index: 9_999, keys: ["u3", "u4000"],
                outputs: [
                    Array(#"{"label":7,"probabilities":[0.5,0.5]}"#.utf8),
                    Array(#"{"label":8,"probabilities":[0.25,0.75]}"#.utf8),
                ]))
        let memory = Self.path()
        try SnapshotFileWriter.write(to: memory, info: Self.info(keys: 5_000), chunks: chunks)
        let streamed = Self.path()
        let writer = try SnapshotStreamWriter(path: streamed, info: Self.info(keys: 5_000))
        for chunk in chunks { #expect(try writer.add(chunk)) }
        try writer.finish()
        let (a, b) = (try SnapshotFile(path: memory), try SnapshotFile(path: streamed))
        #expect(b.verify())
        #expect(b.metadata.keyCount == 5_000 && b.metadata.rows == 5_002)
        #expect(b.metadata.columns == a.metadata.columns)
        for i in 0..<5_000 {
            let key = "u\(i)"
            #expect(b.row(for: key).map(b.json) == a.row(for: key).map(a.json), "\(key)")
        }
        #expect(b.outputs(for: "u3")?["label"] == .integer(7))
        #expect(b.rows.filter(b.isLive).count == 5_000)
        #expect(b.row(for: "u5000") == nil)
    }

    @Test("the streaming writer asks for a retry with doubles when a float32 output is not, and refuses other rows")
    func streamingRetriesAndRefusals() throws {
        func rows(_ texts: [String]) -> SnapshotChunk {
            SnapshotChunk(index: 0, keys: texts.indices.map { "k\($0)" }, outputs: texts.map { Array($0.utf8) })
        }
        let path = Self.path()
        let floats = rows([#"{"p":0.5}"#, #"{"p":0.1}"#])  // 0.1 is not a float32
        let first = try SnapshotStreamWriter(path: path, info: Self.info(keys: 2))
        #expect(try !first.add(floats))
        #expect(first.retryWithDoubles == ["p"])
        let second = try SnapshotStreamWriter(path: path, info: Self.info(keys: 2), doubles: ["p"])
        #expect(try second.add(floats))
        try second.finish()
        let file = try SnapshotFile(path: path)
        #expect(file.metadata.columns.map(\.kind) == [.f64])
        #expect(file.outputs(for: "k1") == ["p": .number(0.1)])
        // Strings, and a row with other outputs: the general writer's job.
        for texts in [[#"{"t":"a"}"#], [#"{"p":1}"#, #"{"q":1}"#]] {
            let writer = try SnapshotStreamWriter(path: Self.path(), info: Self.info(keys: texts.count))
            #expect(try !writer.add(rows(texts)))
            #expect(writer.retryWithDoubles.isEmpty)
        }
        // No temporary file stays behind a writer that was dropped.
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let name = URL(fileURLWithPath: path).lastPathComponent
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix(name + ".tmp") }.isEmpty)
    }

    @Test("an empty snapshot opens and answers no key")
    func empty() throws {
        let path = Self.path()
        try SnapshotFileWriter.write(to: path, info: Self.info(keys: 0), chunks: [])
        let file = try SnapshotFile(path: path)
        #expect(file.metadata.keyCount == 0)
        #expect(file.row(for: "anything") == nil)
        let streamed = Self.path()
        try SnapshotStreamWriter(path: streamed, info: Self.info(keys: 0)).finish()
        let empty = try SnapshotFile(path: streamed)
        #expect(empty.metadata.keyCount == 0 && empty.verify() && empty.row(for: "anything") == nil)
    }

    @Test("a damaged file is refused at open (header, metadata, size) or by verify (data)")
    func damaged() throws {
        let path = Self.path()
        try SnapshotFileWriter.write(to: path, info: Self.info(keys: 100), chunks: try Self.gbdtChunks(keys: 100))
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        func open(_ bytes: Data) -> String {
            let damaged = Self.path()
            _ = FileManager.default.createFile(atPath: damaged, contents: bytes)
            do {
                let file = try SnapshotFile(path: damaged)
                return file.verify() ? "" : "verify failed"
            } catch { return "\(error)" }
        }
        #expect(open(good) == "")
        #expect(open(good.prefix(good.count - 8)).contains("torn file"))
        #expect(open(Data("not a snapshot at all, just some text".utf8)).contains("not a snapshot file"))
        var metadata = good
        metadata[40] ^= 0x01
        #expect(open(metadata).contains("checksum"))
        var data = good
        data[data.count - 3] ^= 0x10
        #expect(open(data) == "verify failed")
        #expect(open(Data()).contains("too short"))
    }
}
