internal import Foundation
public import FreshlineCore
internal import FreshlineEngine
public import FreshlineJSON

/// A snapshot file mapped into memory (`mmap`, read-only, shared): lookups read the mapped bytes, so a process holds
/// only the pages its lookups touch, the page cache is shared by every process on the host, and opening costs the
/// same at any size.
///
/// Opening checks the header, the metadata's checksum, and that every section lies inside the file with the sizes
/// its counts imply; the data's checksum (every byte after the metadata) is checked by `verify()` — a full read, done
/// when a file is written from the store and by `freshline snapshot inspect --verify`, not at every open.
/// The mapping lives as long as the object: a reader holding it keeps the old version mapped after a swap.
public final class SnapshotFile: @unchecked Sendable {
    // @unchecked: the mapping is read-only and never changes after init; it is unmapped only in deinit.
    public let path: String
    public let metadata: SnapshotLayout.Metadata
    private let base: UnsafeRawPointer
    private let size: Int
    private let dataStart: Int
    private let dataChecksum: UInt64

    /// Why a file cannot be opened.
    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public init(path: String) throws {
        self.path = path
        func fail(_ reason: String) -> OpenError { OpenError(description: "\(path): \(reason)") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail(String(cString: strerror(errno))) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw fail(String(cString: strerror(errno))) }
        let size = Int(status.st_size)
        guard size >= SnapshotLayout.headerBytes else { throw fail("not a snapshot file (too short)") }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            throw fail("cannot map it: \(String(cString: strerror(errno)))")
        }
        // Lookups touch pages at random: no read-ahead, so a cold lookup reads its two pages and not the 128 KB
        // around each (measured in bench/RESULTS.md, "Snapshot files").
        _ = madvise(mapped, size, MADV_RANDOM)
        let base = UnsafeRawPointer(mapped)
        do {
            let header = UnsafeRawBufferPointer(start: base, count: size)
            guard header.prefix(8).elementsEqual(SnapshotLayout.magic) else { throw fail("not a snapshot file") }
            let version = UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            guard version == SnapshotLayout.formatVersion else {
                throw fail("format version \(version); this build reads version \(SnapshotLayout.formatVersion)")
            }
            let length = Int(UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
            guard SnapshotLayout.headerBytes + length <= size else { throw fail("the metadata runs past the end") }
            let metadataBytes = UnsafeRawBufferPointer(
                rebasing: header[SnapshotLayout.headerBytes..<(SnapshotLayout.headerBytes + length)])
            var sum = Checksum()
            sum.add(metadataBytes)
            guard sum.value == UInt64(littleEndian: header.loadUnaligned(fromByteOffset: 16, as: UInt64.self)) else {
                throw fail("the metadata's checksum does not match (a damaged file)")
            }
            guard let json = try? JSONValue.parse(metadataBytes), let metadata = SnapshotLayout.Metadata(json) else {
                throw fail("the metadata is not readable")
            }
            guard metadata.fileBytes == size else {
                throw fail("the file has \(size) bytes, its metadata says \(metadata.fileBytes) (a torn file)")
            }
            try Self.check(metadata, size: size, after: SnapshotLayout.headerBytes + length, fail: fail)
            self.metadata = metadata
            // The data checksum covers every byte from the first section to the end.
            dataStart = min(metadata.index.offset, metadata.records.offset)
            dataChecksum = UInt64(littleEndian: header.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        } catch {
            munmap(mapped, size)
            throw error
        }
        self.base = base
        self.size = size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }

    /// Every section inside the file, with the sizes its counts imply.
    private static func check(
        _ m: SnapshotLayout.Metadata, size: Int, after metadataEnd: Int, fail: (String) -> OpenError
    ) throws {
        func inside(_ offset: Int, _ length: Int, _ what: String) throws {
            guard offset >= metadataEnd, offset % 8 == 0, length >= 0, offset <= size - length else {
                throw fail("\(what) lies outside the file")
            }
        }
        guard
            m.index.offset + m.index.length <= m.records.offset || m.records.offset + m.records.length <= m.index.offset
        else { throw fail("the index and the records overlap") }
        // Counts are range-checked before any arithmetic on them: the metadata comes from a file.
        guard m.indexSlots >= 8, m.indexSlots <= size / 8, m.keyCount <= m.rows, m.indexSlots > m.keyCount,
            m.rows <= SnapshotLayout.recordLimit
        else { throw fail("the index's counts are inconsistent") }
        try inside(m.index.offset, m.index.length, "the index")
        guard m.index.length == m.indexSlots * 8 else { throw fail("the index has the wrong size") }
        try inside(m.records.offset, m.records.length, "the records")
        guard m.records.length <= SnapshotLayout.recordLimit else { throw fail("the records section is too large") }
        guard !m.columns.isEmpty, m.layout == "columns" || (m.layout == "rows" && m.columns.count == 1) else {
            throw fail("the columns are inconsistent with the layout")
        }
        for column in m.columns where column.kind != .json {
            guard column.elements >= 1, column.elements < 1 << 20 else {
                throw fail("column '\(column.name)' has the wrong size")
            }
        }
    }

    private var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    private func u64(_ offset: Int) -> UInt64 {
        UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A row: where its record starts in the records section.
    public struct Row: Hashable, Sendable {
        let offset: Int
        /// Where the record starts in the records section (tests that damage a file on purpose).
        public var offsetForTesting: Int { offset }
    }

    /// A record's parts, as absolute offsets in the file.
    private struct Extent {
        var key: Range<Int>
        /// Where the outputs start.
        var values: Int
        /// Where the next record starts.
        var end: Int
    }

    /// Reads the record at `row` within the records section; `nil` when any length in it runs past the section (a
    /// damaged file answers no key; it never reads past).
    private func extent(_ row: Row) -> Extent? {
        let sectionEnd = metadata.records.offset + metadata.records.length
        let start = metadata.records.offset + row.offset
        guard row.offset >= 0, start < sectionEnd,
            let (keyLength, keyStart) = SnapshotLayout.varint(bytes, at: start, end: sectionEnd),
            keyLength <= sectionEnd - keyStart
        else { return nil }
        let values = keyStart + keyLength
        var at = values
        for column in metadata.columns {
            if column.kind == .json {
                guard let (length, text) = SnapshotLayout.varint(bytes, at: at, end: sectionEnd),
                    length <= sectionEnd - text
                else { return nil }
                at = text + length
            } else {
                guard column.width <= sectionEnd - at else { return nil }
                at += column.width
            }
        }
        return Extent(key: keyStart..<values, values: values, end: at)
    }

    /// The row a key's lookup finds (its latest), or `nil`.
    public func row(for key: String) -> Row? {
        var key = key
        return key.withUTF8 { row(forBytes: UnsafeRawBufferPointer($0)) }
    }

    func row(forBytes key: UnsafeRawBufferPointer) -> Row? { lookup(key)?.row }

    /// The row a key's lookup finds, with its record's parts (read once for the key check and the outputs).
    private func lookup(_ key: UnsafeRawBufferPointer) -> (row: Row, extent: Extent)? {
        let hash = KeyHash.value(bytes: key)
        let slots = metadata.indexSlots
        var slot = SnapshotLayout.home(hash, slots: slots)
        for _ in 0..<slots {
            let entry = u64(metadata.index.offset + slot * 8)
            if entry == 0 { return nil }
            if SnapshotLayout.tagMatches(entry, hash) {
                let row = Row(offset: SnapshotLayout.record(entry))
                if let extent = extent(row), UnsafeRawBufferPointer(rebasing: bytes[extent.key]).elementsEqual(key) {
                    return (row, extent)
                }
            }
            slot += 1
            if slot == slots { slot = 0 }
        }
        return nil
    }

    /// Every row, in the order the run wrote them (a key written twice appears twice: `isLive` tells which one a
    /// lookup finds). Stops early at a damaged record.
    public var rows: Rows { Rows(file: self) }

    /// The rows of a file, in order.
    public struct Rows: Sequence {
        let file: SnapshotFile

        public struct Iterator: IteratorProtocol {
            let file: SnapshotFile
            var at: Int = 0
            var left: Int

            public mutating func next() -> Row? {
                guard left > 0 else { return nil }
                let row = Row(offset: at)
                guard let extent = file.extent(row) else {
                    left = 0
                    return nil
                }
                left -= 1
                at = extent.end - file.metadata.records.offset
                return row
            }
        }

        public func makeIterator() -> Iterator { Iterator(file: file, left: file.metadata.rows) }
    }

    /// A row's key bytes (empty for a damaged record).
    private func keyBytes(_ row: Row) -> UnsafeRawBufferPointer {
        guard let extent = extent(row) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(rebasing: bytes[extent.key])
    }

    /// A row's key.
    public func key(row: Row) -> String { String(decoding: keyBytes(row), as: UTF8.self) }

    /// Each output's bytes in a record: fixed-width values, or JSON text.
    private func values(_ extent: Extent, _ body: (SnapshotLayout.Column, UnsafeRawBufferPointer) -> Void) {
        let sectionEnd = metadata.records.offset + metadata.records.length
        var at = extent.values
        for column in metadata.columns {
            if column.kind == .json {
                // Checked by `extent`.
                let (length, text) = SnapshotLayout.varint(bytes, at: at, end: sectionEnd)!
                body(column, UnsafeRawBufferPointer(rebasing: bytes[text..<(text + length)]))
                at = text + length
            } else {
                body(column, UnsafeRawBufferPointer(rebasing: bytes[at..<(at + column.width)]))
                at += column.width
            }
        }
    }

    /// A row's outputs as the JSON text the run stored (`{"name":value,...}`, names sorted); empty for a damaged
    /// record.
    public func json(row: Row) -> [UInt8] {
        guard let extent = extent(row) else { return [] }
        var out: [UInt8] = []
        out.reserveCapacity(64)
        if metadata.layout == "rows" {
            values(extent) { _, text in out += text }
            return out
        }
        out.append(UInt8(ascii: "{"))
        var first = true
        values(extent) { column, value in
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            JSONValue.writeString(column.name, into: &out)
            out.append(UInt8(ascii: ":"))
            if column.kind == .json { out += value } else { SnapshotRender.typed(column, value, into: &out) }
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// A key's outputs, decoded; `nil` when the snapshot has no such key (or its row is damaged).
    public func outputs(for key: String) -> [String: JSONValue]? {
        var key = key
        guard let found = key.withUTF8({ lookup(UnsafeRawBufferPointer($0)) }) else { return nil }
        return outputs(found.extent)
    }

    /// A row's outputs, decoded: typed values straight into values (the same values their text parses to: the
    /// writer checked that the text written back is the run's), JSON outputs parsed.
    public func outputs(row: Row) -> [String: JSONValue]? {
        guard let extent = extent(row) else { return nil }
        return outputs(extent)
    }

    private func outputs(_ extent: Extent) -> [String: JSONValue]? {
        if metadata.layout == "rows" {
            var result: [String: JSONValue]?
            values(extent) { _, text in
                if case .object(let outputs)? = try? JSONValue.parse(text) { result = outputs }
            }
            return result
        }
        var outputs: [String: JSONValue] = [:]
        outputs.reserveCapacity(metadata.columns.count)
        var damaged = false
        values(extent) { column, value in
            if column.kind == .json {
                guard let parsed = try? JSONValue.parse(value) else {
                    damaged = true
                    return
                }
                outputs[column.name] = parsed
            } else if column.scalar {
                outputs[column.name] = SnapshotRender.value(column.kind, value, at: 0)
            } else {
                outputs[column.name] = .array(
                    (0..<column.elements).map { SnapshotRender.value(column.kind, value, at: $0) })
            }
        }
        return damaged ? nil : outputs
    }

    /// Whether `row` is the one its key's lookup finds (not an earlier row of a key written twice).
    public func isLive(row: Row) -> Bool {
        let key = keyBytes(row)
        return self.row(forBytes: key) == row
    }

    /// Reads every byte from the first section to the end and compares its checksum with the header's.
    public func verify() -> Bool {
        var sum = Checksum()
        sum.add(UnsafeRawBufferPointer(rebasing: bytes[dataStart...]))
        return sum.value == dataChecksum
    }

    /// The snapshot's record, as the store has it.
    public var info: SnapshotInfo {
        SnapshotInfo(
            id: metadata.snapshotID, feature: metadata.feature, version: metadata.version, runID: metadata.runID,
            modelVersion: metadata.modelVersion, inputTime: metadata.inputTime, createdAt: metadata.createdAt,
            publishedAt: nil, keyCount: metadata.keyCount, state: .published)
    }

    /// The file's size in bytes.
    public var fileBytes: Int { size }

    /// The data checksum the header records (what `verify()` checks, and what a store records of a sealed file).
    public var checksum: UInt64 { dataChecksum }

    /// A copy of the file's bytes in `range` (clamped to the file): a part to upload.
    public func copyBytes(_ range: Range<Int>) -> [UInt8] {
        let clamped = range.clamped(to: 0..<size)
        return Array(UnsafeRawBufferPointer(rebasing: bytes[clamped]))
    }
}

/// Writes fixed-width values as the run wrote them (`JSONValue.writeNumber`/`writeInteger`: the same text).
enum SnapshotRender {
    /// Element `e` of a fixed-width row, as the JSON value its text parses to.
    static func value(_ kind: SnapshotLayout.ColumnKind, _ values: UnsafeRawBufferPointer, at e: Int) -> JSONValue {
        switch kind {
        case .f32:
            .number(
                Double(
                    Float(
                        bitPattern: UInt32(littleEndian: values.loadUnaligned(fromByteOffset: e * 4, as: UInt32.self))))
            )
        case .f64:
            .number(
                Double(bitPattern: UInt64(littleEndian: values.loadUnaligned(fromByteOffset: e * 8, as: UInt64.self))))
        case .i64: .integer(Int64(littleEndian: values.loadUnaligned(fromByteOffset: e * 8, as: Int64.self)))
        case .json: .null
        }
    }

    static func typed(_ column: SnapshotLayout.Column, _ values: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        if !column.scalar { out.append(UInt8(ascii: "[")) }
        for e in 0..<column.elements {
            if e > 0 { out.append(UInt8(ascii: ",")) }
            switch column.kind {
            case .f32:
                let bits = UInt32(littleEndian: values.loadUnaligned(fromByteOffset: e * 4, as: UInt32.self))
                JSONValue.writeNumber(Double(Float(bitPattern: bits)), into: &out)
            case .f64:
                let bits = UInt64(littleEndian: values.loadUnaligned(fromByteOffset: e * 8, as: UInt64.self))
                JSONValue.writeNumber(Double(bitPattern: bits), into: &out)
            case .i64:
                JSONValue.writeInteger(
                    Int64(littleEndian: values.loadUnaligned(fromByteOffset: e * 8, as: Int64.self)), into: &out)
            case .json: break
            }
        }
        if !column.scalar { out.append(UInt8(ascii: "]")) }
    }
}
