internal import Foundation
public import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON

/// Writes a snapshot file from chunks handed over one at a time — the seal of a large snapshot, read from the store
/// page by page — holding only the index and one buffer in memory: each row's record goes to the file as it is read.
///
/// It takes rows whose outputs are all numbers or flat arrays of numbers (`FlatRows`, what a local model's tensors
/// give). `add` returns `false` when it cannot take a row: with `retryWithDoubles` non-empty, an output first seen as
/// float32 turned out not to be, and a new writer with those outputs as `f64` must start again from the first chunk;
/// otherwise the rows need the general writer (`SnapshotFileWriter.write`, everything in memory).
///
/// Measured (bench/RESULTS.md, "Snapshot files"): at 1M users × 200 candidates the in-memory writer held 12 GB while
/// sealing (the store's chunks, the parsed values and the records at once); the file is 2.4 GB.
///
/// Layout: the records come first, at a fixed offset after room for the metadata, then the index; the metadata is
/// written last, once the counts are known. Written under a temporary name, flushed, then renamed into place.
public final class SnapshotStreamWriter: @unchecked Sendable {
    // @unchecked: used by one task at a time (the seal's loop hands it to the blocking pool page by page).
    /// Why the file could not be written.
    public struct WriteError: Error, CustomStringConvertible {
        public var description: String
    }

    private let path: String
    private let temporary: String
    private let info: SnapshotInfo
    private let fd: Int32
    /// Room for the header and the metadata before the records.
    static let recordsStart = 16 << 10
    private let doubles: Set<String>

    private var members: [FlatRows.Member] = []
    private var kinds: [SnapshotLayout.ColumnKind] = []
    private let slots: Int
    private var index: [UInt64]
    private var keyCount = 0
    private var rows = 0
    /// Records not yet written to the file, and how many record bytes the file has.
    private var buffer: [UInt8] = []
    private var flushed = 0
    private var sum = Checksum()
    private var rendered: [UInt8] = []
    private var record: [UInt8] = []
    private var finished = false

    /// Outputs found not to be float32 after they were written as such: start again with these as `f64`.
    public private(set) var retryWithDoubles: Set<String> = []

    /// Starts a file for snapshot `info`, whose `keyCount` (distinct keys, counted at publish) sizes the index;
    /// `doubles` are outputs to write as `f64` from the start.
    public init(path: String, info: SnapshotInfo, doubles: Set<String> = []) throws {
        guard UInt64(1).littleEndian == 1 else { throw WriteError(description: "a big-endian host cannot write") }
        self.path = path
        self.info = info
        self.doubles = doubles
        temporary = path + ".tmp-\(getpid())"
        slots = SnapshotLayout.slots(rows: max(0, info.keyCount))
        index = [UInt64](repeating: 0, count: slots)
        try FileManager.default.createDirectory(
            at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        fd = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw WriteError(description: "cannot create \(temporary): \(String(cString: strerror(errno)))")
        }
        buffer.reserveCapacity(1 << 20)
    }

    deinit {
        if !finished {
            close(fd)
            unlink(temporary)
        }
    }

    /// Writes a chunk's rows; `false` when a row cannot be taken (see the type's description) — the caller then
    /// drops this writer.
    public func add(_ chunk: SnapshotChunk) throws -> Bool {
        var keys = chunk.keys.makeIterator()
        return try chunk.packedOutputs.bytes.withUnsafeBytes { packed -> Bool in
            var offset = 0
            while offset + 4 <= packed.count, var key = keys.next() {
                let length = Int(UInt32(littleEndian: packed.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                guard offset + 4 + length <= packed.count else { return false }
                let row = UnsafeRawBufferPointer(rebasing: packed[(offset + 4)..<(offset + 4 + length)])
                offset += 4 + length
                if members.isEmpty {
                    guard let shape = FlatRows.shape(of: row) else { return false }
                    members = shape
                    kinds = shape.map { $0.integer ? .i64 : (doubles.contains($0.name) ? .f64 : .f32) }
                }
                record.removeAll(keepingCapacity: true)
                var keyStart = 0
                let hash = key.withUTF8 { utf8 in
                    SnapshotLayout.appendVarint(utf8.count, to: &record)
                    keyStart = record.count
                    record.append(contentsOf: utf8)
                    return KeyHash.value(bytes: UnsafeRawBufferPointer(utf8))
                }
                let keyBytes = Array(record[keyStart..<(keyStart + key.utf8.count)])
                do throws(FlatRows.Refusal) {
                    try FlatRows.encode(row, members, kinds: kinds, into: &record, rendered: &rendered)
                } catch {
                    if case .notFloat32(let m) = error { retryWithDoubles = doubles.union([members[m].name]) }
                    return false
                }
                let at = flushed + buffer.count
                guard at + record.count < SnapshotLayout.recordLimit else {
                    throw WriteError(description: "a snapshot file's records are at most 1 TiB")
                }
                guard try insert(hash: hash, record: at, key: keyBytes) else { return false }
                buffer += record
                rows += 1
                if buffer.count >= 1 << 20 { try flush() }
            }
            return true
        }
    }

    /// Indexes a record: a new key takes an empty slot; a key already indexed points at this later row. `false`
    /// when the snapshot has more distinct keys than its record said (the index would fill up).
    private func insert(hash: UInt64, record at: Int, key: [UInt8]) throws -> Bool {
        var slot = SnapshotLayout.home(hash, slots: slots)
        for _ in 0..<slots {
            let entry = index[slot]
            if entry == 0 {
                // At most 95% full: past that, probes grow long; the count at publish was wrong.
                guard Double(keyCount + 1) <= Double(slots) * 0.95 else { return false }
                index[slot] = SnapshotLayout.entry(hash: hash, record: at)
                keyCount += 1
                return true
            }
            if SnapshotLayout.tagMatches(entry, hash),
                try recordKey(at: SnapshotLayout.record(entry)).elementsEqual(key)
            {
                index[slot] = SnapshotLayout.entry(hash: hash, record: at)  // the later row wins
                return true
            }
            slot += 1
            if slot == slots { slot = 0 }
        }
        return false
    }

    /// The key of a record already written (in the buffer, or read back from the file).
    private func recordKey(at offset: Int) throws -> [UInt8] {
        var head = [UInt8](repeating: 0, count: 10)
        let available = try read(at: offset, into: &head)
        guard let (length, start) = head.withUnsafeBytes({ SnapshotLayout.varint($0, at: 0, end: available) }) else {
            return []
        }
        var key = [UInt8](repeating: 0, count: length)
        _ = try read(at: offset + start, into: &key)
        return key
    }

    /// Reads record bytes at `offset` (file or buffer); how many were there.
    private func read(at offset: Int, into out: inout [UInt8]) throws -> Int {
        let end = min(offset + out.count, flushed + buffer.count)
        var got = 0
        var at = offset
        while at < end {
            if at >= flushed {
                let n = end - at
                let start = at - flushed
                out.replaceSubrange(got..<(got + n), with: buffer[start..<(start + n)])
                got += n
                at += n
            } else {
                let n = min(end, flushed) - at
                let count = out.withUnsafeMutableBytes { raw in
                    pread(fd, raw.baseAddress! + got, n, off_t(Self.recordsStart + at))
                }
                guard count > 0 else { throw WriteError(description: "cannot read back \(temporary)") }
                got += count
                at += count
            }
        }
        return got
    }

    private func flush() throws {
        try write(buffer, at: Self.recordsStart + flushed)
        buffer.withUnsafeBytes { sum.add($0) }
        flushed += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    private func write(_ bytes: [UInt8], at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                pwrite(fd, raw.baseAddress! + done, bytes.count - done, off_t(offset + done))
            }
            guard n > 0 else {
                throw WriteError(description: "cannot write \(temporary): \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    /// Writes the index and the metadata, flushes the file to disk and renames it into place.
    public func finish() throws {
        try flush()
        guard !members.isEmpty || rows == 0 else { throw WriteError(description: "no outputs") }
        let recordsLength = flushed
        let indexOffset = SnapshotLayout.aligned(Self.recordsStart + recordsLength)
        let padding = [UInt8](repeating: 0, count: indexOffset - (Self.recordsStart + recordsLength))
        sum.add(padding)
        try write(padding, at: Self.recordsStart + recordsLength)
        let indexBytes = index.withUnsafeBytes { Array($0) }
        sum.add(indexBytes)
        try write(indexBytes, at: indexOffset)
        let total = indexOffset + indexBytes.count
        let columns =
            members.isEmpty
            ? [SnapshotLayout.Column(name: "", kind: .json, elements: 0, scalar: true)]
            : zip(members, kinds).map {
                SnapshotLayout.Column(name: $0.name, kind: $1, elements: $0.elements, scalar: $0.scalar)
            }
        let metadata = SnapshotLayout.Metadata(
            feature: info.feature, snapshotID: info.id, version: info.version, runID: info.runID,
            modelVersion: info.modelVersion, inputTime: info.inputTime, createdAt: info.createdAt,
            keyCount: keyCount, rows: rows, layout: members.isEmpty ? "rows" : "columns", indexSlots: slots,
            index: .init(offset: indexOffset, length: indexBytes.count),
            records: .init(offset: Self.recordsStart, length: recordsLength), columns: columns, fileBytes: total
        ).json().serialized()
        guard SnapshotLayout.headerBytes + metadata.count <= Self.recordsStart else {
            throw WriteError(
                description: "the metadata needs \(metadata.count) bytes, more than the room before the records")
        }
        var header = [UInt8](repeating: 0, count: SnapshotLayout.headerBytes)
        header.replaceSubrange(0..<8, with: SnapshotLayout.magic)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { raw in
                for (i, byte) in raw.enumerated() { header[offset + i] = byte }
            }
        }
        put(UInt32(SnapshotLayout.formatVersion), at: 8)
        put(UInt32(metadata.count), at: 12)
        var metadataSum = Checksum()
        metadataSum.add(metadata)
        put(metadataSum.value, at: 16)
        put(sum.value, at: 24)
        try write(header + metadata, at: 0)
        guard fsync(fd) == 0 else { throw WriteError(description: "cannot flush \(temporary)") }
        close(fd)
        finished = true
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw WriteError(description: "cannot rename \(temporary) to \(path): \(reason)")
        }
    }
}
