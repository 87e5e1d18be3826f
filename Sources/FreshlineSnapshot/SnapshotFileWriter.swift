internal import Foundation
public import FreshlineCore
internal import FreshlineEngine

/// Writes a snapshot file from the rows a run stored (`SnapshotChunk`s: keys and each key's outputs as JSON text).
///
/// Each output becomes a typed column when every row's value for it is a number or a flat array of numbers of one
/// length, and writing it back gives exactly the row's text (checked row by row); otherwise the file keeps whole rows
/// as JSON text (the `rows` layout). Either way a lookup answers the same bytes the run stored.
///
/// The file is written under a temporary name in the same folder, flushed to disk, then renamed: a reader never
/// maps a torn file, and a process killed while writing leaves only a temporary file (removed by the next prune).
/// Sections go to the file as they are, one after the other (no copy of the whole file in memory): besides the
/// chunks, the writer holds the index, the keys and the columns, about the file's size.
public enum SnapshotFileWriter {
    /// Why a file could not be written.
    public struct WriteError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Writes `chunks` (in order: a later row of a key wins) of snapshot `info` to `path`.
    public static func write(to path: String, info: SnapshotInfo, chunks: [SnapshotChunk]) throws {
        // The sections are written from memory as they are: the format is little-endian, and so is every
        // platform this builds for (x86-64, arm64).
        guard UInt64(1).littleEndian == 1 else { throw WriteError(description: "a big-endian host cannot write") }
        let body = try build(chunks)
        try persist(body, info: info, to: path)
    }

    // MARK: Building

    /// The sections, before their offsets are known.
    struct Body {
        var layout: String
        var keyCount: Int
        var rows: Int
        var slots: Int
        var index: [UInt64]
        var keyOffsets: [UInt64]
        var keyBytes: [UInt8]
        var columns: [(column: SnapshotLayout.Column, bytes: [UInt8], offsets: [UInt64])]
    }

    /// A column's shape while the schema is inferred.
    private struct Candidate {
        var kind: SnapshotLayout.ColumnKind
        var elements: Int
        var scalar: Bool
    }

    /// Every row in order: its key and its outputs' text.
    private static func forEachRow(_ chunks: [SnapshotChunk], _ body: (String, [UInt8]) throws -> Bool) rethrows
        -> Bool
    {
        for chunk in chunks {
            for (key, json) in zip(chunk.keys, chunk.packedOutputs.rows) where try !body(key, json) { return false }
        }
        return true
    }

    static func build(_ chunks: [SnapshotChunk]) throws -> Body {
        let rowCount = chunks.reduce(0) { $0 + $1.keys.count }
        guard rowCount < Int(UInt32.max) else {
            throw WriteError(description: "a snapshot file holds fewer than 2³² rows; this one has \(rowCount)")
        }
        let slots = SnapshotLayout.slots(rows: rowCount)
        var index = [UInt64](repeating: 0, count: slots)
        var keyOffsets: [UInt64] = [0]
        keyOffsets.reserveCapacity(rowCount + 1)
        var keyBytes: [UInt8] = []
        var keyCount = 0
        var row = 0
        _ = forEachRow(chunks) { key, _ in
            let start = keyBytes.count
            keyBytes.append(contentsOf: key.utf8)
            keyOffsets.append(UInt64(keyBytes.count))
            let hash = keyBytes.withUnsafeBytes { KeyHash.value(bytes: UnsafeRawBufferPointer(rebasing: $0[start...])) }
            var slot = Int(truncatingIfNeeded: hash) & (slots - 1)
            while true {
                let entry = index[slot]
                if entry == 0 {
                    index[slot] = SnapshotLayout.entry(hash: hash, row: row)
                    keyCount += 1
                    break
                }
                let other = Int(entry & 0xFFFF_FFFF) - 1
                if entry >> 32 == hash >> 32,
                    keyBytes[Int(keyOffsets[other])..<Int(keyOffsets[other + 1])].elementsEqual(keyBytes[start...])
                {
                    index[slot] = SnapshotLayout.entry(hash: hash, row: row)  // the later row wins
                    break
                }
                slot = (slot + 1) & (slots - 1)
            }
            row += 1
            return true
        }
        let columns = try typedColumns(chunks, rows: rowCount) ?? [wholeRows(chunks, rows: rowCount)]
        return Body(
            layout: columns.first?.column.name == "" ? "rows" : "columns", keyCount: keyCount, rows: rowCount,
            slots: slots, index: index, keyOffsets: keyOffsets, keyBytes: keyBytes, columns: columns)
    }

    /// The `rows` layout's one column: each row's JSON text.
    private static func wholeRows(_ chunks: [SnapshotChunk], rows: Int) -> (
        column: SnapshotLayout.Column, bytes: [UInt8], offsets: [UInt64]
    ) {
        var bytes: [UInt8] = []
        var offsets: [UInt64] = [0]
        offsets.reserveCapacity(rows + 1)
        _ = forEachRow(chunks) { _, json in
            bytes += json
            offsets.append(UInt64(bytes.count))
            return true
        }
        return (.init(name: "", kind: .json, elements: 0, scalar: true, offset: 0, length: 0), bytes, offsets)
    }

    /// One column per output, or `nil` when the rows do not all have the same outputs or one would not write back
    /// to its text.
    private static func typedColumns(_ chunks: [SnapshotChunk], rows: Int) throws -> [(
        column: SnapshotLayout.Column, bytes: [UInt8], offsets: [UInt64]
    )]? {
        guard rows > 0 else { return nil }
        // Pass 1: the schema.
        var names: [String] = []
        var candidates: [String: Candidate] = [:]
        var first = true
        let consistent = forEachRow(chunks) { _, json in
            guard case .object(let object) = try? JSONValue.parse(json) else { return false }
            if first {
                first = false
                names = object.keys.sorted()
                for name in names { candidates[name] = candidate(object[name]!) }
                return true
            }
            guard object.count == names.count else { return false }
            for name in names {
                guard let value = object[name] else { return false }
                candidates[name] = merge(candidates[name]!, candidate(value))
            }
            return true
        }
        guard consistent else { return nil }
        // Pass 2: the values, each row checked against its text.
        let specs = names.map { name -> SnapshotLayout.Column in
            let c = candidates[name]!
            return .init(name: name, kind: c.kind, elements: c.elements, scalar: c.scalar, offset: 0, length: 0)
        }
        var stored: [[UInt8]] = specs.map { c in
            var bytes: [UInt8] = []
            bytes.reserveCapacity(c.kind == .json ? rows * 16 : rows * c.elements * c.kind.width)
            return bytes
        }
        var offsets: [[UInt64]] = specs.map { $0.kind == .json ? [0] : [] }
        var rendered: [UInt8] = []
        let exact = forEachRow(chunks) { _, json in
            guard case .object(let object) = try? JSONValue.parse(json) else { return false }
            rendered.removeAll(keepingCapacity: true)
            rendered.append(UInt8(ascii: "{"))
            for (i, column) in specs.enumerated() {
                if i > 0 { rendered.append(UInt8(ascii: ",")) }
                JSONValue.writeString(column.name, into: &rendered)
                rendered.append(UInt8(ascii: ":"))
                let before = stored[i].count
                guard append(object[column.name]!, column, to: &stored[i], offsets: &offsets[i]) else { return false }
                // Written back from what was just stored.
                stored[i].withUnsafeBytes { bytes in
                    let value = UnsafeRawBufferPointer(rebasing: bytes[before...])
                    if column.kind == .json {
                        rendered += value
                    } else {
                        SnapshotRender.typed(column, value, into: &rendered)
                    }
                }
            }
            rendered.append(UInt8(ascii: "}"))
            return rendered == json
        }
        guard exact else { return nil }
        return specs.indices.map { (specs[$0], stored[$0], offsets[$0]) }
    }

    private static func candidate(_ value: JSONValue) -> Candidate {
        func kind(_ v: JSONValue) -> SnapshotLayout.ColumnKind? {
            switch v {
            case .integer: .i64
            case .number(let d): Double(Float(d)) == d ? .f32 : .f64
            default: nil
            }
        }
        switch value {
        case .integer, .number: return Candidate(kind: kind(value)!, elements: 1, scalar: true)
        case .array(let items) where !items.isEmpty:
            var merged: SnapshotLayout.ColumnKind?
            for item in items {
                guard let k = kind(item) else { return Candidate(kind: .json, elements: 0, scalar: false) }
                merged = merged.map { widen($0, k) } ?? k
            }
            return Candidate(kind: merged ?? .json, elements: items.count, scalar: false)
        default: return Candidate(kind: .json, elements: 0, scalar: false)
        }
    }

    private static func widen(_ a: SnapshotLayout.ColumnKind, _ b: SnapshotLayout.ColumnKind)
        -> SnapshotLayout
        .ColumnKind
    {
        if a == b { return a }
        if Set([a, b]) == [.f32, .f64] { return .f64 }
        return .json
    }

    private static func merge(_ a: Candidate, _ b: Candidate) -> Candidate {
        guard a.kind != .json, b.kind != .json, a.elements == b.elements, a.scalar == b.scalar else {
            return Candidate(kind: .json, elements: 0, scalar: false)
        }
        return Candidate(kind: widen(a.kind, b.kind), elements: a.elements, scalar: a.scalar)
    }

    /// Appends one row's value to its column; `false` when it does not fit the column's kind.
    private static func append(
        _ value: JSONValue, _ column: SnapshotLayout.Column, to bytes: inout [UInt8], offsets: inout [UInt64]
    ) -> Bool {
        if column.kind == .json {
            value.write(into: &bytes)
            offsets.append(UInt64(bytes.count))
            return true
        }
        let items: [JSONValue]
        if column.scalar {
            items = [value]
        } else if case .array(let a) = value, a.count == column.elements {
            items = a
        } else {
            return false
        }
        for item in items {
            switch (column.kind, item) {
            case (.i64, .integer(let i)): withUnsafeBytes(of: i.littleEndian) { bytes += $0 }
            case (.f64, .number(let d)): withUnsafeBytes(of: d.bitPattern.littleEndian) { bytes += $0 }
            case (.f32, .number(let d)):
                let f = Float(d)
                guard Double(f) == d else { return false }
                withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes += $0 }
            default: return false
            }
        }
        return true
    }

    // MARK: Writing

    /// One section's bytes, written from the buffer it lives in.
    private enum Piece {
        case words([UInt64])
        case bytes([UInt8])

        var count: Int {
            switch self {
            case .words(let w): w.count * 8
            case .bytes(let b): b.count
            }
        }

        func withBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
            switch self {
            case .words(let w): try w.withUnsafeBytes(body)
            case .bytes(let b): try b.withUnsafeBytes(body)
            }
        }
    }

    /// The metadata and where each section's pieces go, the metadata's length settled (offsets depend on it, and
    /// it on their digits).
    private static func layout(_ body: Body, info: SnapshotInfo) throws -> (
        metadata: [UInt8], sections: [(offset: Int, pieces: [Piece])], total: Int
    ) {
        var metadataLength = 0
        for _ in 0..<5 {
            var at = SnapshotLayout.aligned(SnapshotLayout.headerBytes + metadataLength)
            var sections: [(offset: Int, pieces: [Piece])] = []
            func place(_ pieces: [Piece]) -> SnapshotLayout.Section {
                let length = pieces.reduce(0) { $0 + $1.count }
                let section = SnapshotLayout.Section(offset: at, length: length)
                sections.append((at, pieces))
                at = SnapshotLayout.aligned(at + length)
                return section
            }
            let index = place([.words(body.index)])
            let keyOffsets = place([.words(body.keyOffsets)])
            let keyBytes = place([.bytes(body.keyBytes)])
            var columns: [SnapshotLayout.Column] = []
            for (column, bytes, offsets) in body.columns {
                var c = column
                let section = place(column.kind == .json ? [.words(offsets), .bytes(bytes)] : [.bytes(bytes)])
                c.offset = section.offset
                c.length = section.length
                columns.append(c)
            }
            let metadata = SnapshotLayout.Metadata(
                feature: info.feature, snapshotID: info.id, version: info.version, runID: info.runID,
                modelVersion: info.modelVersion, inputTime: info.inputTime, createdAt: info.createdAt,
                keyCount: body.keyCount, rows: body.rows, layout: body.layout, indexSlots: body.slots, index: index,
                keyOffsets: keyOffsets, keyBytes: keyBytes, columns: columns, fileBytes: at
            ).json().serialized()
            if metadata.count == metadataLength { return (metadata, sections, at) }
            metadataLength = metadata.count
        }
        throw WriteError(description: "the snapshot metadata's length did not settle")
    }

    /// Writes the file under a temporary name beside `path`, section after section, flushes it, and renames it
    /// into place.
    static func persist(_ body: Body, info: SnapshotInfo, to path: String) throws {
        let (metadata, sections, total) = try layout(body, info: info)
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
            throw WriteError(description: "cannot create \(temporary)")
        }
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
            defer { try? handle.close() }
            var header = [UInt8](repeating: 0, count: SnapshotLayout.headerBytes)
            header.replaceSubrange(0..<8, with: SnapshotLayout.magic)
            put(UInt32(SnapshotLayout.formatVersion), at: 8, in: &header)
            put(UInt32(metadata.count), at: 12, in: &header)
            var metadataSum = Checksum()
            metadataSum.add(metadata)
            put(metadataSum.value, at: 16, in: &header)
            var dataSum = Checksum()
            var position = SnapshotLayout.headerBytes + metadata.count
            var head = header + metadata
            let dataStart = SnapshotLayout.aligned(position)
            head += [UInt8](repeating: 0, count: dataStart - position)
            position = dataStart
            try handle.write(contentsOf: head)  // the data checksum goes in once the data is written
            for (offset, pieces) in sections {
                let padding = [UInt8](repeating: 0, count: offset - position)
                dataSum.add(padding)
                try handle.write(contentsOf: padding)
                position = offset
                for piece in pieces {
                    try piece.withBytes { bytes in
                        dataSum.add(bytes)
                        if !bytes.isEmpty { try handle.write(contentsOf: bytes) }
                    }
                    position += piece.count
                }
            }
            let tail = [UInt8](repeating: 0, count: total - position)
            dataSum.add(tail)
            try handle.write(contentsOf: tail)
            var sum = [UInt8](repeating: 0, count: 8)
            put(dataSum.value, at: 0, in: &sum)
            try handle.seek(toOffset: 24)
            try handle.write(contentsOf: sum)
            try handle.synchronize()
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw WriteError(description: "cannot write \(temporary): \(error)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw WriteError(description: "cannot rename \(temporary) to \(path): \(reason)")
        }
    }

    private static func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for (i, byte) in raw.enumerated() { out[offset + i] = byte }
        }
    }
}
