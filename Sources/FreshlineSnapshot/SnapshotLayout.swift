internal import FreshlineEngine

/// The binary snapshot format (docs/snapshots.md): one file per published snapshot, served by memory map.
///
/// ```
/// 0   magic "FLSNAP1\n"
/// 8   u32 format version (1)          12  u32 metadata length M
/// 16  u64 metadata checksum (FNV-1a)  24  u64 data checksum (FNV-1a of every byte after the metadata's padding)
/// 32  metadata: JSON, M bytes, then zero padding to a multiple of 8
///     sections, each starting at a multiple of 8, as the metadata places them:
///     index        slots × u64: (u32 tag = hash >> 32) << 32 | (row + 1); 0 = empty; open addressing, linear probe
///     key offsets  (rows + 1) × u64 into key bytes
///     key bytes
///     columns      per output: fixed-width rows (f32, f64, i64: rows × elements × width) or JSON text
///                  (offsets (rows + 1) × u64, then bytes); or, in the `rows` layout, one JSON column of whole rows
/// ```
/// Numbers are little-endian. A row is a source row of the run; a key written twice has two rows and the index
/// points at the later (the later row wins, as in every run). Keys hash with FNV-1a 64 (`KeyHash`).
public enum SnapshotLayout {
    public static let magic: [UInt8] = Array("FLSNAP1\n".utf8)
    public static let formatVersion: UInt32 = 1
    /// Bytes before the metadata.
    public static let headerBytes = 32
    /// The index is at most this full (slots = the next power of two ≥ rows / load).
    public static let maximumLoad = 0.7

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
        /// Where its bytes start: the values (fixed width), or the offsets (JSON; the text follows them).
        public var offset: Int
        /// Its bytes in all.
        public var length: Int
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
        public var keyOffsets: Section
        public var keyBytes: Section
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
                "index": section(index), "key_offsets": section(keyOffsets), "key_bytes": section(keyBytes),
                "file_bytes": .integer(Int64(fileBytes)),
                "columns": .array(
                    columns.map { c in
                        .object([
                            "name": .string(c.name), "kind": .string(c.kind.rawValue),
                            "elements": .integer(Int64(c.elements)), "scalar": .bool(c.scalar),
                            "offset": .integer(Int64(c.offset)), "length": .integer(Int64(c.length)),
                        ])
                    }),
            ])
        }

        init(
            feature: String, snapshotID: Int64, version: Int, runID: String, modelVersion: String, inputTime: Double,
            createdAt: Double, keyCount: Int, rows: Int, layout: String, indexSlots: Int, index: Section,
            keyOffsets: Section, keyBytes: Section, columns: [Column], fileBytes: Int
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
            self.keyOffsets = keyOffsets
            self.keyBytes = keyBytes
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
                let index = section("index"), let keyOffsets = section("key_offsets"),
                let keyBytes = section("key_bytes"), let fileBytes = int(o["file_bytes"]),
                case .array(let items)? = o["columns"]
            else { return nil }
            var columns: [Column] = []
            for item in items {
                guard case .object(let c) = item, case .string(let name)? = c["name"],
                    case .string(let kindText)? = c["kind"], let kind = ColumnKind(rawValue: kindText),
                    let elements = int(c["elements"]), case .bool(let scalar)? = c["scalar"],
                    let offset = int(c["offset"]), let length = int(c["length"])
                else { return nil }
                columns.append(
                    Column(name: name, kind: kind, elements: elements, scalar: scalar, offset: offset, length: length))
            }
            self.init(
                feature: feature, snapshotID: id, version: version, runID: runID, modelVersion: modelVersion,
                inputTime: inputTime, createdAt: createdAt, keyCount: keyCount, rows: rows, layout: layout,
                indexSlots: slots, index: index, keyOffsets: keyOffsets, keyBytes: keyBytes, columns: columns,
                fileBytes: fileBytes)
        }
    }

    /// Index slots for `rows` rows: a power of two, at most `maximumLoad` full (at least 8).
    static func slots(rows: Int) -> Int {
        var slots = 8
        while Double(rows) > Double(slots) * maximumLoad { slots <<= 1 }
        return slots
    }

    /// The index entry for a row: the hash's high half as a tag, the row + 1.
    static func entry(hash: UInt64, row: Int) -> UInt64 { (hash >> 32) << 32 | UInt64(row + 1) }

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
