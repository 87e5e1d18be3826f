internal import Foundation
public import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON

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

    /// Writes `chunks` (in order: a later row of a key wins) of snapshot `info` to `path`: rows of numbers through
    /// `SnapshotStreamWriter` (unless `streaming` is false: the caller already knows it refuses them), any other rows
    /// through the general path here.
    public static func write(
        to path: String, info: SnapshotInfo, chunks: [SnapshotChunk], streaming: Bool = true
    ) throws {
        // The sections are written from memory as they are: the format is little-endian, and so is every
        // platform this builds for (x86-64, arm64).
        guard UInt64(1).littleEndian == 1 else { throw WriteError(description: "a big-endian host cannot write") }
        var doubles: Set<String> = []
        while streaming {
            let writer = try SnapshotStreamWriter(path: path, info: info, doubles: doubles)
            if try chunks.allSatisfy({ try writer.add($0) }) {
                try writer.finish()
                return
            }
            guard !writer.retryWithDoubles.isEmpty, writer.retryWithDoubles != doubles else { break }
            doubles = writer.retryWithDoubles
        }
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
        var records: [UInt8]
        var columns: [SnapshotLayout.Column]
    }

    /// One output's values over every row, before records are written: the array its column's kind uses.
    struct Values {
        /// `i64`: `elements` per row.
        var integers: [Int64] = []
        /// `f32` and `f64`: `elements` per row.
        var doubles: [Double] = []
        /// `json`: the text of every row, one after the other; `ends[r]` is where row r's ends.
        var text: [UInt8] = []
        var ends: [Int] = []
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
        let (columns, values): ([SnapshotLayout.Column], [Values])
        if let typed = typedColumns(chunks, rows: rowCount) {
            (columns, values) = typed
        } else {
            (columns, values) = wholeRows(chunks, rows: rowCount)
        }
        let layout = columns.first?.name == "" ? "rows" : "columns"
        let slots = SnapshotLayout.slots(rows: rowCount)
        var index = [UInt64](repeating: 0, count: slots)
        // The records' exact size first, then one buffer written in place (measured: appending element by element
        // took about a third of the writer's time at 2M rows).
        let fixedWidth = columns.reduce(0) { $0 + $1.width }
        var size = rowCount * fixedWidth
        for chunk in chunks {
            for key in chunk.keys { size += varintSize(key.utf8.count) + key.utf8.count }
        }
        for (c, column) in columns.enumerated() where column.kind == .json {
            var start = 0
            for end in values[c].ends {
                size += varintSize(end - start) + end - start
                start = end
            }
        }
        guard size < SnapshotLayout.recordLimit else {
            throw WriteError(description: "a snapshot file's records are at most 1 TiB; these need \(size) bytes")
        }
        var keyCount = 0
        let records = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            let base = UnsafeMutableRawPointer(buffer.baseAddress!)
            var at = 0
            func varint(_ value: Int) {
                var v = UInt64(value)
                while v >= 0x80 {
                    base.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: at, as: UInt8.self)
                    at += 1
                    v >>= 7
                }
                base.storeBytes(of: UInt8(v), toByteOffset: at, as: UInt8.self)
                at += 1
            }
            /// The key bytes of the record at `offset` (already written).
            func recordKey(at offset: Int) -> UnsafeRawBufferPointer {
                let (length, start) = SnapshotLayout.varint(
                    UnsafeRawBufferPointer(start: base, count: at), at: offset, end: at)!
                return UnsafeRawBufferPointer(start: base + start, count: length)
            }
            var row = 0
            // Offsets into each JSON output's text, advanced row by row.
            var jsonStarts = [Int](repeating: 0, count: columns.count)
            for chunk in chunks {
                for var key in chunk.keys {
                    let record = at
                    let hash = key.withUTF8 { utf8 in
                        varint(utf8.count)
                        if let source = utf8.baseAddress { (base + at).copyMemory(from: source, byteCount: utf8.count) }
                        at += utf8.count
                        return KeyHash.value(bytes: UnsafeRawBufferPointer(utf8))
                    }
                    let written = UnsafeRawBufferPointer(start: base + (at - key.utf8.count), count: key.utf8.count)
                    for (c, column) in columns.enumerated() {
                        let first = row * column.elements
                        switch column.kind {
                        case .i64:
                            for e in 0..<column.elements {
                                base.storeBytes(
                                    of: values[c].integers[first + e].littleEndian, toByteOffset: at, as: Int64.self)
                                at += 8
                            }
                        case .f32:
                            for e in 0..<column.elements {
                                base.storeBytes(
                                    of: Float(values[c].doubles[first + e]).bitPattern.littleEndian, toByteOffset: at,
                                    as: UInt32.self)
                                at += 4
                            }
                        case .f64:
                            for e in 0..<column.elements {
                                base.storeBytes(
                                    of: values[c].doubles[first + e].bitPattern.littleEndian, toByteOffset: at,
                                    as: UInt64.self)
                                at += 8
                            }
                        case .json:
                            let (start, end) = (jsonStarts[c], values[c].ends[row])
                            varint(end - start)
                            values[c].text.withUnsafeBytes { text in
                                (base + at).copyMemory(from: text.baseAddress! + start, byteCount: end - start)
                            }
                            at += end - start
                            jsonStarts[c] = end
                        }
                    }
                    // Index the record; a key already indexed points at this later row instead.
                    var slot = SnapshotLayout.home(hash, slots: slots)
                    while true {
                        let entry = index[slot]
                        if entry == 0 {
                            index[slot] = SnapshotLayout.entry(hash: hash, record: record)
                            keyCount += 1
                            break
                        }
                        if SnapshotLayout.tagMatches(entry, hash),
                            recordKey(at: SnapshotLayout.record(entry)).elementsEqual(written)
                        {
                            index[slot] = SnapshotLayout.entry(hash: hash, record: record)  // the later row wins
                            break
                        }
                        slot += 1
                        if slot == slots { slot = 0 }
                    }
                    row += 1
                }
            }
            initialized = at
        }
        return Body(
            layout: layout, keyCount: keyCount, rows: rowCount, slots: slots, index: index, records: records,
            columns: columns)
    }

    /// Bytes of `value` as an LEB128 varint.
    private static func varintSize(_ value: Int) -> Int {
        var size = 1
        var v = UInt64(value) >> 7
        while v > 0 {
            size += 1
            v >>= 7
        }
        return size
    }

    /// The `rows` layout's one output: each row's JSON text.
    private static func wholeRows(_ chunks: [SnapshotChunk], rows: Int) -> ([SnapshotLayout.Column], [Values]) {
        var values = Values()
        values.ends.reserveCapacity(rows)
        _ = forEachRow(chunks) { _, json in
            values.text += json
            values.ends.append(values.text.count)
            return true
        }
        return ([SnapshotLayout.Column(name: "", kind: .json, elements: 0, scalar: true)], [values])
    }

    /// A column's shape while the schema is inferred.
    private struct Candidate {
        var kind: SnapshotLayout.ColumnKind
        var elements: Int
        var scalar: Bool
    }

    /// One column per output, or `nil` when the rows do not all have the same outputs or one would not write back
    /// to its text. The general path, for any JSON values (`SnapshotStreamWriter` takes rows of numbers): each row
    /// parsed twice, once for the schema and once for the values.
    private static func typedColumns(_ chunks: [SnapshotChunk], rows: Int) -> ([SnapshotLayout.Column], [Values])? {
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
        let columns = names.map { name -> SnapshotLayout.Column in
            let c = candidates[name]!
            return .init(name: name, kind: c.kind, elements: c.elements, scalar: c.scalar)
        }
        var values = [Values](repeating: Values(), count: columns.count)
        var rendered: [UInt8] = []
        let exact = forEachRow(chunks) { _, json in
            guard case .object(let object) = try? JSONValue.parse(json) else { return false }
            rendered.removeAll(keepingCapacity: true)
            rendered.append(UInt8(ascii: "{"))
            for (i, column) in columns.enumerated() {
                if i > 0 { rendered.append(UInt8(ascii: ",")) }
                JSONValue.writeString(column.name, into: &rendered)
                rendered.append(UInt8(ascii: ":"))
                guard append(object[column.name]!, column, to: &values[i], rendered: &rendered) else { return false }
            }
            rendered.append(UInt8(ascii: "}"))
            return rendered == json
        }
        guard exact else { return nil }
        return (columns, values)
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

    /// Appends one row's value to its output's values and its text, as a lookup will write it back, to `rendered`;
    /// `false` when it does not fit the column's kind.
    private static func append(
        _ value: JSONValue, _ column: SnapshotLayout.Column, to values: inout Values, rendered: inout [UInt8]
    ) -> Bool {
        if column.kind == .json {
            let start = values.text.count
            value.write(into: &values.text)
            values.ends.append(values.text.count)
            rendered += values.text[start...]
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
        if !column.scalar { rendered.append(UInt8(ascii: "[")) }
        for (e, item) in items.enumerated() {
            if e > 0 { rendered.append(UInt8(ascii: ",")) }
            switch (column.kind, item) {
            case (.i64, .integer(let i)):
                values.integers.append(i)
                JSONValue.writeInteger(i, into: &rendered)
            case (.f64, .number(let d)):
                values.doubles.append(d)
                JSONValue.writeNumber(d, into: &rendered)
            case (.f32, .number(let d)):
                guard Double(Float(d)) == d else { return false }
                values.doubles.append(d)
                JSONValue.writeNumber(d, into: &rendered)
            default: return false
            }
        }
        if !column.scalar { rendered.append(UInt8(ascii: "]")) }
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
            let records = place([.bytes(body.records)])
            let metadata = SnapshotLayout.Metadata(
                feature: info.feature, snapshotID: info.id, version: info.version, runID: info.runID,
                modelVersion: info.modelVersion, inputTime: info.inputTime, createdAt: info.createdAt,
                keyCount: body.keyCount, rows: body.rows, layout: body.layout, indexSlots: body.slots, index: index,
                records: records, columns: body.columns, fileBytes: at
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
