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
/// maps a torn file, and a process killed while writing leaves only a temporary file (removed by the next write).
public enum SnapshotFileWriter {
    /// Why a file could not be written.
    public struct WriteError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Writes `chunks` (in order: a later row of a key wins) of snapshot `info` to `path`.
    public static func write(to path: String, info: SnapshotInfo, chunks: [SnapshotChunk]) throws {
        var rows: [(key: [UInt8], json: [UInt8])] = []
        rows.reserveCapacity(chunks.reduce(0) { $0 + $1.keys.count })
        for chunk in chunks {
            for (key, json) in zip(chunk.keys, chunk.packedOutputs.rows) { rows.append((Array(key.utf8), json)) }
        }
        let body = try build(rows)
        let bytes = try assemble(body, info: info)
        try persist(bytes, to: path)
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

    static func build(_ rows: [(key: [UInt8], json: [UInt8])]) throws -> Body {
        let slots = SnapshotLayout.slots(rows: rows.count)
        var index = [UInt64](repeating: 0, count: slots)
        var keyOffsets: [UInt64] = [0]
        keyOffsets.reserveCapacity(rows.count + 1)
        var keyBytes: [UInt8] = []
        var keyCount = 0
        for (row, item) in rows.enumerated() {
            keyBytes += item.key
            keyOffsets.append(UInt64(keyBytes.count))
            let hash = KeyHash.value(bytes: item.key)
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
                    keyBytes[Int(keyOffsets[other])..<Int(keyOffsets[other + 1])].elementsEqual(item.key)
                {
                    index[slot] = SnapshotLayout.entry(hash: hash, row: row)  // the later row wins
                    break
                }
                slot = (slot + 1) & (slots - 1)
            }
        }
        let columns = try typedColumns(rows) ?? [wholeRows(rows)]
        return Body(
            layout: columns.first?.column.name == "" ? "rows" : "columns", keyCount: keyCount, rows: rows.count,
            slots: slots, index: index, keyOffsets: keyOffsets, keyBytes: keyBytes, columns: columns)
    }

    /// The `rows` layout's one column: each row's JSON text.
    private static func wholeRows(_ rows: [(key: [UInt8], json: [UInt8])]) -> (
        column: SnapshotLayout.Column, bytes: [UInt8], offsets: [UInt64]
    ) {
        var bytes: [UInt8] = []
        var offsets: [UInt64] = [0]
        offsets.reserveCapacity(rows.count + 1)
        for row in rows {
            bytes += row.json
            offsets.append(UInt64(bytes.count))
        }
        return (.init(name: "", kind: .json, elements: 0, scalar: true, offset: 0, length: 0), bytes, offsets)
    }

    /// One column per output, or `nil` when the rows do not all have the same outputs or one would not write back
    /// to its text.
    private static func typedColumns(_ rows: [(key: [UInt8], json: [UInt8])]) throws -> [(
        column: SnapshotLayout.Column, bytes: [UInt8], offsets: [UInt64]
    )]? {
        guard !rows.isEmpty else { return nil }
        // Pass 1: the schema.
        var names: [String] = []
        var candidates: [String: Candidate] = [:]
        for (r, row) in rows.enumerated() {
            guard case .object(let object) = try? JSONValue.parse(row.json) else { return nil }
            if r == 0 {
                names = object.keys.sorted()
                for name in names { candidates[name] = candidate(object[name]!) }
            } else {
                guard object.count == names.count else { return nil }
                for name in names {
                    guard let value = object[name] else { return nil }
                    candidates[name] = merge(candidates[name]!, candidate(value))
                }
            }
        }
        // Pass 2: the values, each row checked against its text.
        let specs = names.map { name -> SnapshotLayout.Column in
            let c = candidates[name]!
            return .init(name: name, kind: c.kind, elements: c.elements, scalar: c.scalar, offset: 0, length: 0)
        }
        var stored: [[UInt8]] = specs.map { c in
            var bytes: [UInt8] = []
            bytes.reserveCapacity(c.kind == .json ? rows.count * 16 : rows.count * c.elements * c.kind.width)
            return bytes
        }
        var offsets: [[UInt64]] = specs.map { $0.kind == .json ? [0] : [] }
        var rendered: [UInt8] = []
        for row in rows {
            guard case .object(let object) = try? JSONValue.parse(row.json) else { return nil }
            rendered.removeAll(keepingCapacity: true)
            rendered.append(UInt8(ascii: "{"))
            for (i, column) in specs.enumerated() {
                if i > 0 { rendered.append(UInt8(ascii: ",")) }
                JSONValue.writeString(column.name, into: &rendered)
                rendered.append(UInt8(ascii: ":"))
                let before = stored[i].count
                guard append(object[column.name]!, column, to: &stored[i], offsets: &offsets[i]) else { return nil }
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
            guard rendered == row.json else { return nil }
        }
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

    // MARK: Assembling

    /// The file's bytes: header, metadata, sections at their offsets, checksums.
    static func assemble(_ body: Body, info: SnapshotInfo) throws -> [UInt8] {
        // Offsets depend on the metadata's length, which depends on the offsets' digits: lay out twice.
        var metadataLength = 0
        var layout: (metadata: [UInt8], sections: [(offset: Int, bytes: [UInt8])], total: Int) = ([], [], 0)
        for _ in 0..<5 {
            var at = SnapshotLayout.aligned(SnapshotLayout.headerBytes + metadataLength)
            var sections: [(offset: Int, bytes: [UInt8])] = []
            func place(_ bytes: [UInt8]) -> SnapshotLayout.Section {
                let section = SnapshotLayout.Section(offset: at, length: bytes.count)
                sections.append((at, bytes))
                at = SnapshotLayout.aligned(at + bytes.count)
                return section
            }
            let index = place(littleEndian(body.index))
            let keyOffsets = place(littleEndian(body.keyOffsets))
            let keyBytes = place(body.keyBytes)
            var columns: [SnapshotLayout.Column] = []
            for (column, bytes, offsets) in body.columns {
                var c = column
                if column.kind == .json {
                    let offsetBytes = littleEndian(offsets)
                    let start = at
                    _ = place(offsetBytes + bytes)
                    c.offset = start
                    c.length = offsetBytes.count + bytes.count
                } else {
                    let section = place(bytes)
                    c.offset = section.offset
                    c.length = section.length
                }
                columns.append(c)
            }
            let metadata = SnapshotLayout.Metadata(
                feature: info.feature, snapshotID: info.id, version: info.version, runID: info.runID,
                modelVersion: info.modelVersion, inputTime: info.inputTime, createdAt: info.createdAt,
                keyCount: body.keyCount, rows: body.rows, layout: body.layout, indexSlots: body.slots, index: index,
                keyOffsets: keyOffsets, keyBytes: keyBytes, columns: columns, fileBytes: at
            ).json().serialized()
            layout = (metadata, sections, at)
            if metadata.count == metadataLength { break }
            metadataLength = metadata.count
        }
        guard layout.metadata.count == metadataLength else {
            throw WriteError(description: "the snapshot metadata's length did not settle")
        }
        var out = [UInt8](repeating: 0, count: layout.total)
        out.replaceSubrange(0..<8, with: SnapshotLayout.magic)
        put(UInt32(SnapshotLayout.formatVersion), at: 8, in: &out)
        put(UInt32(layout.metadata.count), at: 12, in: &out)
        out.replaceSubrange(
            SnapshotLayout.headerBytes..<(SnapshotLayout.headerBytes + layout.metadata.count), with: layout.metadata)
        for (offset, bytes) in layout.sections { out.replaceSubrange(offset..<(offset + bytes.count), with: bytes) }
        var metadataSum = Checksum()
        metadataSum.add(layout.metadata)
        put(metadataSum.value, at: 16, in: &out)
        let dataStart = SnapshotLayout.aligned(SnapshotLayout.headerBytes + layout.metadata.count)
        var dataSum = Checksum()
        out.withUnsafeBytes { dataSum.add(UnsafeRawBufferPointer(rebasing: $0[dataStart...])) }
        put(dataSum.value, at: 24, in: &out)
        return out
    }

    private static func littleEndian(_ values: [UInt64]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(values.count * 8)
        for v in values { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        return out
    }

    private static func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for (i, byte) in raw.enumerated() { out[offset + i] = byte }
        }
    }

    /// Writes `bytes` to a temporary file beside `path`, flushes it, and renames it into place.
    static func persist(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(
            at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
            throw WriteError(description: "cannot create \(temporary)")
        }
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
            defer { try? handle.close() }
            try handle.write(contentsOf: bytes)
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
}
