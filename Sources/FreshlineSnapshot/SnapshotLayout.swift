internal import FreshlineEngine
internal import FreshlineJSON

/// The binary snapshot format (docs/snapshots.md): one file per published snapshot, served by memory map.
///
/// ```
/// 0   magic "FLSNAP1\n"
/// 8   u32 format version (2)          12  u32 metadata length M
/// 16  u64 metadata checksum (FNV-1a)  24  u64 data checksum (FNV-1a of every byte after the metadata's padding)
/// 32  metadata: JSON, M bytes, then zero padding to a multiple of 8
///     sections, each starting at a multiple of 8, as the metadata places them:
///     index    slots × u64: (hash & 0xFFFFFF) << 40 | (record offset + 1); 0 = empty; open addressing, linear
///              probing from slot ⌊hash × slots / 2⁶⁴⌋, at most 75% full
///     records  one per row, in row order: varint key length, key bytes, then each output in name order —
///              fixed-width elements (f32, f64, i64), or varint length and JSON text; in the `rows` layout, one
///              JSON output: the whole row
/// ```
/// Numbers are little-endian; varints are LEB128. A row is a source row of the run; a key written twice has two
/// records and the index points at the later (the later row wins, as in every run). Keys hash with FNV-1a 64
/// (`KeyHash`). A cold lookup reads two pages: the index slot's, then the record's (which holds the key and every
/// output).
public enum SnapshotLayout {
    public static let magic: [UInt8] = Array("FLSNAP1\n".utf8)
    public static let formatVersion: UInt32 = 2
    /// Bytes before the metadata.
    public static let headerBytes = 32
    /// The index is at most this full (slots = rows / load, at least 8).
    public static let maximumLoad = 0.75
    /// Record offsets an index entry can hold (40 bits): a records section up to 1 TiB.
    static let recordLimit = (1 << 40) - 1

    /// How one output's values are kept.
    public enum ColumnKind: String, Sendable, Equatable {
        /// Fixed width: `elements` 32-bit floats per row (an output written from float32 values, exactly).
        case f32
        /// Fixed width: `elements` 64-bit floats per row.
        case f64
        /// Fixed width: `elements` 64-bit integers per row.
        case i64
        /// Each row's value as its JSON text (strings, booleans, nested shapes, maps).
        case json

        /// Bytes per element of a fixed-width column.
        var width: Int {
            switch self {
            case .f32: 4
            case .f64, .i64: 8
            case .json: 0
            }
        }
    }

    /// One output column, as the metadata describes it.
    public struct Column: Sendable, Equatable {
        /// The output's name (`""` for the whole-row column of the `rows` layout).
        public var name: String
        public var kind: ColumnKind
        /// Elements per row (fixed-width kinds).
        public var elements: Int
        /// Whether a row holds one value (written bare) rather than a vector (written as an array).
        public var scalar: Bool

        public init(name: String, kind: ColumnKind, elements: Int, scalar: Bool) {
            self.name = name
            self.kind = kind
            self.elements = elements
            self.scalar = scalar
        }

        /// Bytes per record of a fixed-width column (0 for JSON).
        var width: Int { elements * kind.width }
    }

    /// A section: where it starts and how many bytes it has.
    public struct Section: Sendable, Equatable {
        public var offset: Int
        public var length: Int
    }

    /// What the metadata says.
    public struct Metadata: Sendable, Equatable {
        public var feature: String
        public var snapshotID: Int64
        public var version: Int
        public var runID: String
        public var modelVersion: String
        public var inputTime: Double
        public var createdAt: Double
        /// Distinct keys (what lookups can find).
        public var keyCount: Int
        /// Rows written (keys written twice count twice).
        public var rows: Int
        /// `columns`: one column per output; `rows`: one JSON column of whole rows.
        public var layout: String
        public var indexSlots: Int
        public var index: Section
        public var records: Section
        public var columns: [Column]
        /// The file's size in bytes, checked at open against the file.
        public var fileBytes: Int

        func json() -> JSONValue {
            func section(_ s: Section) -> JSONValue {
                .object(["offset": .integer(Int64(s.offset)), "length": .integer(Int64(s.length))])
            }
            return .object([
                "feature": .string(feature), "snapshot_id": .integer(snapshotID), "version": .integer(Int64(version)),
                "run_id": .string(runID), "model_version": .string(modelVersion), "input_time": .number(inputTime),
                "created_at": .number(createdAt), "key_count": .integer(Int64(keyCount)),
                "rows": .integer(Int64(rows)), "layout": .string(layout), "index_slots": .integer(Int64(indexSlots)),
                "index": section(index), "records": section(records),
                "file_bytes": .integer(Int64(fileBytes)),
                "columns": .array(
                    columns.map { c in
                        .object([
                            "name": .string(c.name), "kind": .string(c.kind.rawValue),
                            "elements": .integer(Int64(c.elements)), "scalar": .bool(c.scalar),
                        ])
                    }),
            ])
        }

        init(
            feature: String, snapshotID: Int64, version: Int, runID: String, modelVersion: String, inputTime: Double,
            createdAt: Double, keyCount: Int, rows: Int, layout: String, indexSlots: Int, index: Section,
            records: Section, columns: [Column], fileBytes: Int
        ) {
            self.feature = feature
            self.snapshotID = snapshotID
            self.version = version
            self.runID = runID
            self.modelVersion = modelVersion
            self.inputTime = inputTime
            self.createdAt = createdAt
            self.keyCount = keyCount
            self.rows = rows
            self.layout = layout
            self.indexSlots = indexSlots
            self.index = index
            self.records = records
            self.columns = columns
            self.fileBytes = fileBytes
        }

        /// Reads metadata JSON; `nil` when a field is missing or of the wrong kind.
        init?(_ json: JSONValue) {
            guard case .object(let o) = json else { return nil }
            func int(_ v: JSONValue?) -> Int? {
                guard case .integer(let i)? = v, i >= 0, i <= Int64(Int.max) else { return nil }
                return Int(i)
            }
            func string(_ key: String) -> String? {
                if case .string(let s)? = o[key] { return s }
                return nil
            }
            func section(_ key: String) -> Section? {
                guard case .object(let s)? = o[key], let offset = int(s["offset"]), let length = int(s["length"])
                else { return nil }
                return Section(offset: offset, length: length)
            }
            guard let feature = string("feature"), case .integer(let id)? = o["snapshot_id"],
                let version = int(o["version"]), let runID = string("run_id"),
                let modelVersion = string("model_version"), let inputTime = o["input_time"]?.doubleValue,
                let createdAt = o["created_at"]?.doubleValue, let keyCount = int(o["key_count"]),
                let rows = int(o["rows"]), let layout = string("layout"), let slots = int(o["index_slots"]),
                let index = section("index"), let records = section("records"),
                let fileBytes = int(o["file_bytes"]),
                case .array(let items)? = o["columns"]
            else { return nil }
            var columns: [Column] = []
            for item in items {
                guard case .object(let c) = item, case .string(let name)? = c["name"],
                    case .string(let kindText)? = c["kind"], let kind = ColumnKind(rawValue: kindText),
                    let elements = int(c["elements"]), case .bool(let scalar)? = c["scalar"]
                else { return nil }
                columns.append(Column(name: name, kind: kind, elements: elements, scalar: scalar))
            }
            self.init(
                feature: feature, snapshotID: id, version: version, runID: runID, modelVersion: modelVersion,
                inputTime: inputTime, createdAt: createdAt, keyCount: keyCount, rows: rows, layout: layout,
                indexSlots: slots, index: index, records: records, columns: columns, fileBytes: fileBytes)
        }
    }

    /// Index slots for `rows` rows: at most `maximumLoad` full, at least 8.
    static func slots(rows: Int) -> Int {
        max(8, Int((Double(rows) / maximumLoad).rounded(.up)))
    }

    /// The slot a hash's probe starts at: ⌊hash × slots / 2⁶⁴⌋ (the hash's high bits pick it; no power of two
    /// needed).
    @inline(__always)
    static func home(_ hash: UInt64, slots: Int) -> Int {
        Int(truncatingIfNeeded: hash.multipliedFullWidth(by: UInt64(slots)).high)
    }

    /// The index entry for a record: the hash's low 24 bits as a tag, the record's offset + 1.
    @inline(__always)
    static func entry(hash: UInt64, record: Int) -> UInt64 { (hash & 0xFF_FFFF) << 40 | UInt64(record + 1) }

    /// Whether an entry's tag matches a hash's.
    @inline(__always)
    static func tagMatches(_ entry: UInt64, _ hash: UInt64) -> Bool { entry >> 40 == hash & 0xFF_FFFF }

    /// The record offset an entry holds.
    @inline(__always)
    static func record(_ entry: UInt64) -> Int { Int(truncatingIfNeeded: entry & UInt64(recordLimit)) - 1 }

    /// Appends `value` as an LEB128 varint.
    static func appendVarint(_ value: Int, to out: inout [UInt8]) {
        var v = UInt64(value)
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// Reads an LEB128 varint at `offset` of `bytes`, up to `end`: the value and the offset after it, or `nil` when
    /// it runs past `end` or past 2⁴⁸ (no length in a file is larger).
    @inline(__always)
    static func varint(_ bytes: UnsafeRawBufferPointer, at offset: Int, end: Int) -> (Int, Int)? {
        var value = 0
        var shift = 0
        var i = offset
        while i < end, shift < 49 {
            let byte = bytes[i]
            value |= Int(byte & 0x7F) << shift
            i += 1
            if byte < 0x80 { return (value, i) }
            shift += 7
        }
        return nil
    }

    /// `n` rounded up to a multiple of 8.
    static func aligned(_ n: Int) -> Int { (n + 7) & ~7 }
}

/// The 64-bit FNV-1a hash, fed in pieces (the file's checksums).
struct Checksum {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var hash = value
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        value = hash
    }

    mutating func add(_ bytes: [UInt8]) { bytes.withUnsafeBytes { add($0) } }
}
