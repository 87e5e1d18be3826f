internal import Foundation
public import FreshlineCore
public import FreshlineEngine

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
            try Self.check(metadata, size: size, fail: fail)
            self.metadata = metadata
            dataStart = SnapshotLayout.aligned(SnapshotLayout.headerBytes + length)
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
        _ m: SnapshotLayout.Metadata, size: Int, fail: (String) -> OpenError
    ) throws {
        func inside(_ offset: Int, _ length: Int, _ what: String) throws {
            guard offset >= SnapshotLayout.headerBytes, offset % 8 == 0, length >= 0, offset <= size - length else {
                throw fail("\(what) lies outside the file")
            }
        }
        guard m.indexSlots >= 8, m.indexSlots & (m.indexSlots - 1) == 0, m.keyCount <= m.rows,
            m.rows < Int(UInt32.max), m.indexSlots >= m.rows
        else { throw fail("the index's counts are inconsistent") }
        try inside(m.index.offset, m.index.length, "the index")
        guard m.index.length == m.indexSlots * 8 else { throw fail("the index has the wrong size") }
        try inside(m.keyOffsets.offset, m.keyOffsets.length, "the key offsets")
        guard m.keyOffsets.length == (m.rows + 1) * 8 else { throw fail("the key offsets have the wrong size") }
        try inside(m.keyBytes.offset, m.keyBytes.length, "the keys")
        guard !m.columns.isEmpty, m.layout == "columns" || (m.layout == "rows" && m.columns.count == 1) else {
            throw fail("the columns are inconsistent with the layout")
        }
        for column in m.columns {
            try inside(column.offset, column.length, "column '\(column.name)'")
            if column.kind == .json {
                guard column.length >= (m.rows + 1) * 8 else { throw fail("column '\(column.name)' is too short") }
            } else {
                guard column.elements >= 1, column.elements < 1 << 20,
                    column.length == m.rows * column.elements * column.kind.width
                else { throw fail("column '\(column.name)' has the wrong size") }
            }
        }
    }

    private var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    private func u64(_ offset: Int) -> UInt64 {
        UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// The row a key's lookup finds (its latest), or `nil`.
    public func row(for key: String) -> Int? {
        var key = key
        return key.withUTF8 { row(forBytes: UnsafeRawBufferPointer($0)) }
    }

    func row(forBytes key: UnsafeRawBufferPointer) -> Int? {
        let hash = KeyHash.value(bytes: key)
        let mask = metadata.indexSlots - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        for _ in 0..<metadata.indexSlots {
            let entry = u64(metadata.index.offset + slot * 8)
            if entry == 0 { return nil }
            if entry >> 32 == hash >> 32 {
                let row = Int(entry & 0xFFFF_FFFF) - 1
                if row < metadata.rows, keyBytes(row).elementsEqual(key) { return row }
            }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// A row's key bytes (empty when its offsets are out of bounds: a damaged file answers no key, never reads past).
    private func keyBytes(_ row: Int) -> UnsafeRawBufferPointer {
        let start = Int(truncatingIfNeeded: u64(metadata.keyOffsets.offset + row * 8))
        let end = Int(truncatingIfNeeded: u64(metadata.keyOffsets.offset + row * 8 + 8))
        guard start >= 0, start <= end, end <= metadata.keyBytes.length else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        return UnsafeRawBufferPointer(
            rebasing: bytes[(metadata.keyBytes.offset + start)..<(metadata.keyBytes.offset + end)])
    }

    /// A row's key.
    public func key(row: Int) -> String { String(decoding: keyBytes(row), as: UTF8.self) }

    /// A row's outputs as the JSON text the run stored (`{"name":value,...}`, names sorted).
    public func json(row: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        let columns = metadata.columns
        if metadata.layout == "rows" {
            out += jsonValue(columns[0], row: row)
            return out
        }
        out.append(UInt8(ascii: "{"))
        for (i, column) in columns.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONValue.writeString(column.name, into: &out)
            out.append(UInt8(ascii: ":"))
            if column.kind == .json {
                out += jsonValue(column, row: row)
            } else {
                let width = column.elements * column.kind.width
                SnapshotRender.typed(
                    column,
                    UnsafeRawBufferPointer(
                        rebasing: bytes[(column.offset + row * width)..<(column.offset + (row + 1) * width)]),
                    into: &out)
            }
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    private func jsonValue(_ column: SnapshotLayout.Column, row: Int) -> UnsafeRawBufferPointer {
        let textStart = column.offset + (metadata.rows + 1) * 8
        let textLength = column.length - (metadata.rows + 1) * 8
        let start = Int(truncatingIfNeeded: u64(column.offset + row * 8))
        let end = Int(truncatingIfNeeded: u64(column.offset + row * 8 + 8))
        guard start >= 0, start <= end, end <= textLength else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(rebasing: bytes[(textStart + start)..<(textStart + end)])
    }

    /// A key's outputs, decoded; `nil` when the snapshot has no such key (or its row is damaged).
    public func outputs(for key: String) -> [String: JSONValue]? {
        guard let row = row(for: key) else { return nil }
        return outputs(row: row)
    }

    /// A row's outputs, decoded: typed columns straight into values (the same values their text parses to: the
    /// writer checked that the text written back is the run's), JSON columns parsed.
    public func outputs(row: Int) -> [String: JSONValue]? {
        let columns = metadata.columns
        if metadata.layout == "rows" {
            guard case .object(let outputs)? = try? JSONValue.parse(jsonValue(columns[0], row: row)) else {
                return nil
            }
            return outputs
        }
        var outputs: [String: JSONValue] = [:]
        outputs.reserveCapacity(columns.count)
        for column in columns {
            if column.kind == .json {
                guard let value = try? JSONValue.parse(jsonValue(column, row: row)) else { return nil }
                outputs[column.name] = value
                continue
            }
            let width = column.elements * column.kind.width
            let values = UnsafeRawBufferPointer(
                rebasing: bytes[(column.offset + row * width)..<(column.offset + (row + 1) * width)])
            if column.scalar {
                outputs[column.name] = SnapshotRender.value(column.kind, values, at: 0)
            } else {
                outputs[column.name] = .array(
                    (0..<column.elements).map { SnapshotRender.value(column.kind, values, at: $0) })
            }
        }
        return outputs
    }

    /// Whether `row` is the one its key's lookup finds (not an earlier row of a key written twice).
    public func isLive(row: Int) -> Bool {
        let key = keyBytes(row)
        return self.row(forBytes: key) == row
    }

    /// Reads every byte after the metadata and compares its checksum with the header's.
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
