internal import Foundation
public import FreshlineCore
internal import FreshlineEngine
public import FreshlineJSON
internal import FreshlineStore
internal import Synchronization

/// One row of an entity source: its position, where it is (for messages) and its fields by column name.
public struct EntityRecord: Sendable {
    /// 1-based position among the source's rows (the header is not a row).
    public var ordinal: Int
    /// `accounts.csv:1042`, `events.jsonl:7`, `query row 12`.
    public var location: String
    /// Column name → value, or the reason the row could not be read at all.
    public var fields: Result<[String: JSONValue], RowReadError>
}

/// Why one source row could not be read (the run records it and goes on).
public struct RowReadError: Error, Sendable {
    public var message: String
}

/// Reads an entity source front to back in chunks. Not thread-safe: one reader per run.
public protocol EntityReader: AnyObject {
    /// The next rows, at most `maxRows`; empty at the end.
    func next(maxRows: Int) throws -> [EntityRecord]
    /// Moves past the next `rows` rows without building them; returns how many it passed (fewer at the end).
    func skip(rows: Int) throws -> Int
}

extension EntityReader {
    public func skip(rows: Int) throws -> Int {
        var skipped = 0
        while skipped < rows {
            let batch = try next(maxRows: min(65_536, rows - skipped))
            if batch.isEmpty { break }
            skipped += batch.count
        }
        return skipped
    }
}

/// Why a source cannot be read at all (the run fails with this message).
public struct EntitySourceError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Opens the readers of a feature's `batch.source`.
public enum EntitySources {
    /// Resolves a source path against the manifest's folder.
    public static func resolve(_ path: String, manifestPath: String) -> String {
        path.hasPrefix("/")
            ? path : URL(fileURLWithPath: manifestPath).deletingLastPathComponent().appendingPathComponent(path).path
    }

    /// Opens a reader positioned after the first `skipping` rows (a resumed run's checkpoint).
    public static func open(_ source: BatchSpec.Source, manifestPath: String, skipping: Int) throws
        -> any EntityReader
    {
        let path = resolve(source.path, manifestPath: manifestPath)
        let reader: any EntityReader
        switch source {
        case .csv: reader = try CSVEntityReader(path: path)
        case .jsonLines: reader = try JSONLinesEntityReader(path: path)
        case .sql(_, let query): reader = try SQLEntityReader(path: path, query: query, offset: skipping)
        }
        if case .sql = source { return reader }
        _ = try reader.skip(rows: skipping)
        return reader
    }

    /// How many rows the source holds (a quick pass over a file, `COUNT(*)` for a query).
    public static func count(_ source: BatchSpec.Source, manifestPath: String) throws -> Int {
        let path = resolve(source.path, manifestPath: manifestPath)
        switch source {
        case .csv: return try CSVEntityReader(path: path).countRemaining()
        case .jsonLines: return try JSONLinesEntityReader(path: path).countRemaining()
        case .sql(_, let query):
            do { return try SQLiteQuerySource(path: path, query: query).count() } catch {
                throw EntitySourceError(message: "\(path): \(error)")
            }
        }
    }

    /// The source's modification time (seconds since 1970), the input time of a file source's run.
    static func modificationTime(_ path: String) -> Double? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date)?
            .map(\.timeIntervalSince1970)
    }
}

/// Maps a file into memory (read-only), so a large source is read without loading it whole.
private func mapFile(_ path: String) throws -> Data {
    do {
        return try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
    } catch {
        throw EntitySourceError(message: "cannot read \(path): \(error.localizedDescription)")
    }
}

/// CSV with a header row (RFC 4180: fields may be quoted, `""` is a quote inside quotes, quoted fields may span
/// lines; CRLF or LF line ends; a UTF-8 byte-order mark is skipped). Cells are text: the row mapper converts them.
/// The scanner records each cell as a byte range of the mapped file, so the runner's columnar path
/// (`CSVRawChunk`) parses numbers straight from the bytes without making strings.
final class CSVEntityReader: EntityReader {
    let data: Data
    let name: String
    private var offset: Int
    private var line = 1
    private var ordinal = 0
    let header: [String]
    private var scratch = CSVScanner.Cells()

    init(path: String) throws {
        data = try mapFile(path)
        name = URL(fileURLWithPath: path).lastPathComponent
        offset = data.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        guard try CSVScanner.record(data, &offset, &line, file: name, into: &scratch) else {
            throw EntitySourceError(message: "\(path): the file is empty (a header row is required)")
        }
        header = scratch.strings(data)
        if Set(header).count != header.count {
            throw EntitySourceError(message: "\(path):1: the header repeats a column name")
        }
    }

    func next(maxRows: Int) throws -> [EntityRecord] {
        var records: [EntityRecord] = []
        records.reserveCapacity(maxRows)
        while records.count < maxRows {
            let startLine = line
            guard try CSVScanner.record(data, &offset, &line, file: name, into: &scratch) else { break }
            if scratch.isBlank { continue }
            ordinal += 1
            let location = "\(name):\(startLine)"
            if scratch.count != header.count {
                records.append(
                    EntityRecord(
                        ordinal: ordinal, location: location,
                        fields: .failure(
                            RowReadError(message: "has \(scratch.count) fields, the header has \(header.count)"))))
                continue
            }
            var fields: [String: JSONValue] = [:]
            fields.reserveCapacity(header.count)
            for (column, cell) in zip(header, scratch.strings(data)) { fields[column] = .string(cell) }
            records.append(EntityRecord(ordinal: ordinal, location: location, fields: .success(fields)))
        }
        return records
    }

    /// How the line at `offset` reads: where it ends (its line feed, or the end of the data), where its content
    /// ends (before a CR of a CRLF), and whether it is plain — no quote and no lone CR, so it is exactly one record
    /// (or a blank line) that splits at its commas. Other lines need the record scanner.
    private static func line(at offset: Int, in raw: UnsafeRawBufferPointer) -> (end: Int, body: Int, plain: Bool) {
        let start = raw.baseAddress! + offset
        let left = raw.count - offset
        let end = memchr(start, Int32(UInt8(ascii: "\n")), left).map { start.distance(to: $0) } ?? left
        var body = end
        if body > 0 && raw[offset + body - 1] == UInt8(ascii: "\r") { body -= 1 }
        let plain =
            memchr(start, Int32(UInt8(ascii: "\"")), body) == nil
            && memchr(start, Int32(UInt8(ascii: "\r")), body) == nil
        return (offset + end, offset + body, plain)
    }

    /// Moves past rows without looking at their cells (a range that starts deep in the file).
    func skip(rows: Int) throws -> Int {
        var skipped = 0
        while skipped < rows, offset < data.count {
            let (end, body, plain) = data.withUnsafeBytes { Self.line(at: offset, in: $0) }
            if plain {
                let blank = body == offset
                offset = min(end + 1, data.count)
                line += 1
                if blank { continue }
            } else {
                guard try CSVScanner.record(data, &offset, &line, file: name, into: &scratch) else { break }
                if scratch.isBlank { continue }
            }
            ordinal += 1
            skipped += 1
        }
        return skipped
    }

    /// The next rows as byte ranges (the columnar path); empty at the end.
    func nextRaw(maxRows: Int) throws -> CSVRawChunk {
        var chunk = CSVRawChunk(data: data, file: name, header: header)
        chunk.reserve(rows: maxRows)
        var (offset, line, ordinal) = (self.offset, self.line, self.ordinal)
        defer { (self.offset, self.line, self.ordinal) = (offset, line, ordinal) }
        let count = data.count
        while chunk.rows < maxRows, offset < count {
            let startLine = line
            let (end, body, plain) = data.withUnsafeBytes { Self.line(at: offset, in: $0) }
            if plain {
                let start = offset
                offset = min(end + 1, count)
                line += 1
                if body == start { continue }
                ordinal += 1
                chunk.appendPlain(start: start, end: body, ordinal: ordinal, line: startLine)
            } else {
                guard try CSVScanner.record(data, &offset, &line, file: name, into: &scratch) else { break }
                if scratch.isBlank { continue }
                ordinal += 1
                chunk.appendScanned(scratch, ordinal: ordinal, line: startLine)
            }
        }
        return chunk
    }

    /// Counts the rows left: lines with any content, with line breaks inside quoted fields not counted.
    func countRemaining() throws -> Int {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Int in
            let bytes = raw.bindMemory(to: UInt8.self)
            if let fast = Self.countLinesWithoutQuotes(UnsafeRawBufferPointer(rebasing: raw[offset...])) {
                return fast
            }
            var count = 0
            var inQuotes = false
            var lineHasContent = false
            let quote = UInt8(ascii: "\""), lf = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
            for i in offset..<bytes.count {
                let b = bytes[i]
                if b == quote {
                    inQuotes.toggle()
                    lineHasContent = true
                } else if (b == lf || b == cr) && !inQuotes {
                    // Like the record scanner, a lone CR ends a record too (a CRLF's LF ends an empty one).
                    if lineHasContent { count += 1 }
                    lineHasContent = false
                } else {
                    lineHasContent = true
                }
            }
            if inQuotes { throw EntitySourceError(message: "\(name): a quoted field is not closed") }
            return count + (lineHasContent ? 1 : 0)
        }
    }
}

extension CSVEntityReader {
    /// Counts records with `memchr` when the bytes hold no quote at all (the common case: then no line break can be
    /// inside a field); `nil` when they do. A large file is counted in two halves at once, split after a line feed
    /// (no record spans it), so the count that precedes every run takes half the time on two cores.
    static func countLinesWithoutQuotes(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        if bytes.count >= 1 << 22,
            let feed = memchr(base + bytes.count / 2, Int32(UInt8(ascii: "\n")), bytes.count - bytes.count / 2)
        {
            let split = base.distance(to: UnsafeRawPointer(feed)) + 1
            let halves = [0..<split, split..<bytes.count]
            let counts = Mutex<[Int?]>([nil, nil])
            // Read-only, and alive until concurrentPerform returns.
            nonisolated(unsafe) let shared = bytes
            DispatchQueue.concurrentPerform(iterations: 2) { half in
                let count = countPiecesWithoutQuotes(UnsafeRawBufferPointer(rebasing: shared[halves[half]]))
                counts.withLock { $0[half] = count }
            }
            let (first, second) = counts.withLock { ($0[0], $0[1]) }
            guard let first, let second else { return nil }
            return first + second
        }
        return countPiecesWithoutQuotes(bytes)
    }

    /// Records in `bytes` when it holds no quote, else `nil` (`memchr` per line: measured faster than counting
    /// eight bytes at a time, 58 vs 70 ms for 243 MB). Each line is searched for a quote while it is in the cache
    /// (one pass over memory, not a pass for quotes first: the same loops in C took 13–15 against 19–21 ms for 80 MB),
    /// so a file whose first quote comes late is counted that far before the caller counts it the slow way.
    static func countPiecesWithoutQuotes(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        var count = 0
        var start = 0
        while start < bytes.count {
            let end: Int
            if let hit = memchr(base + start, Int32(UInt8(ascii: "\n")), bytes.count - start) {
                end = base.distance(to: UnsafeRawPointer(hit))
            } else {
                end = bytes.count
            }
            if memchr(base + start, Int32(UInt8(ascii: "\"")), end - start) != nil { return nil }
            // A line counts when it holds anything besides carriage returns; like the record scanner, a CR inside
            // it ends a record, so each non-empty piece between CRs counts.
            var piece = start
            while piece < end {
                let stop =
                    memchr(base + piece, Int32(UInt8(ascii: "\r")), end - piece).map { base.distance(to: $0) } ?? end
                if stop > piece { count += 1 }
                piece = stop + 1
            }
            start = end + 1
        }
        return count
    }
}

/// The CSV record scanner: finds the cells of one record as byte ranges.
enum CSVScanner {
    /// One record's cells: byte ranges into the data; a quoted cell's range runs from after its opening quote
    /// to its delimiter and is unescaped on use (`""` → `"`, the closing quote dropped).
    struct Cells {
        var starts: [Int] = []
        var ends: [Int] = []
        var quoted: [Bool] = []
        var count: Int { starts.count }
        var isBlank: Bool { starts.count == 1 && ends[0] == starts[0] && !quoted[0] }

        mutating func removeAll() {
            starts.removeAll(keepingCapacity: true)
            ends.removeAll(keepingCapacity: true)
            quoted.removeAll(keepingCapacity: true)
        }

        func strings(_ data: Data) -> [String] {
            (0..<count).map { CSVScanner.string(data, starts[$0], ends[$0], quoted: quoted[$0]) }
        }
    }

    /// The cell's text.
    static func string(_ data: Data, _ start: Int, _ end: Int, quoted: Bool) -> String {
        data.withUnsafeBytes { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[start..<end])
            guard quoted else { return String(decoding: bytes, as: UTF8.self) }
            return String(decoding: unescape(bytes), as: UTF8.self)
        }
    }

    static func unescape(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\"") {
                // `""` is one quote; a lone quote is the closing one and is dropped.
                if i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\"") {
                    out.append(bytes[i])
                    i += 2
                } else {
                    i += 1
                }
                continue
            }
            out.append(bytes[i])
            i += 1
        }
        return out
    }

    /// Scans the record at `offset` into `cells`; `false` at the end of the data.
    static func record(_ data: Data, _ offset: inout Int, _ line: inout Int, file: String, into cells: inout Cells)
        throws -> Bool
    {
        cells.removeAll()
        return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Bool in
            let bytes = raw.bindMemory(to: UInt8.self)
            var i = offset
            guard i < bytes.count else { return false }
            let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), lf = UInt8(ascii: "\n"),
                cr = UInt8(ascii: "\r")
            let startLine = line
            var cellStart = i
            var inQuotes = false
            var wasQuoted = false
            var ended = false
            while i < bytes.count {
                let b = bytes[i]
                if inQuotes {
                    if b == quote {
                        if i + 1 < bytes.count && bytes[i + 1] == quote {
                            i += 2
                            continue
                        }
                        inQuotes = false
                    } else if b == lf {
                        line += 1
                    }
                    i += 1
                    continue
                }
                if b == quote && i == cellStart && !wasQuoted {
                    inQuotes = true
                    wasQuoted = true
                    i += 1
                    cellStart = i
                } else if b == comma {
                    cells.starts.append(cellStart)
                    cells.ends.append(i)
                    cells.quoted.append(wasQuoted)
                    wasQuoted = false
                    i += 1
                    cellStart = i
                } else if b == lf || b == cr {
                    cells.starts.append(cellStart)
                    cells.ends.append(i)
                    cells.quoted.append(wasQuoted)
                    i += 1
                    if b == cr && i < bytes.count && bytes[i] == lf { i += 1 }
                    line += 1
                    ended = true
                    break
                } else {
                    i += 1
                }
            }
            if inQuotes {
                throw EntitySourceError(message: "\(file):\(startLine): a quoted field is not closed")
            }
            if !ended {
                cells.starts.append(cellStart)
                cells.ends.append(i)
                cells.quoted.append(wasQuoted)
            }
            offset = i
            return true
        }
    }
}

/// JSON Lines: one JSON object per line; blank lines are skipped.
final class JSONLinesEntityReader: EntityReader {
    private let data: Data
    private let name: String
    private var offset = 0
    private var line = 0
    private var ordinal = 0

    init(path: String) throws {
        data = try mapFile(path)
        name = URL(fileURLWithPath: path).lastPathComponent
        if data.starts(with: [0xEF, 0xBB, 0xBF]) { offset = 3 }
    }

    private func nextLine() -> Data? {
        guard offset < data.count else { return nil }
        let start = data.startIndex + offset
        let end = data[start...].firstIndex(of: UInt8(ascii: "\n")) ?? data.endIndex
        offset = end - data.startIndex + 1
        line += 1
        return data[start..<end]
    }

    func next(maxRows: Int) throws -> [EntityRecord] {
        var records: [EntityRecord] = []
        while records.count < maxRows, let text = nextLine() {
            if text.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            ordinal += 1
            let location = "\(name):\(line)"
            let fields: Result<[String: JSONValue], RowReadError>
            do {
                guard case .object(let object) = try JSONValue.parse(text) else {
                    throw RowReadError(message: "is not a JSON object")
                }
                fields = .success(object)
            } catch let error as RowReadError {
                fields = .failure(error)
            } catch let error as EngineError {
                fields = .failure(RowReadError(message: "is not valid JSON: \(error.message)"))
            } catch {
                fields = .failure(RowReadError(message: "is not valid JSON"))
            }
            records.append(EntityRecord(ordinal: ordinal, location: location, fields: fields))
        }
        return records
    }

    /// Moves past rows by their line breaks, without parsing them.
    func skip(rows: Int) throws -> Int {
        var skipped = 0
        while skipped < rows, let text = nextLine() {
            if text.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            ordinal += 1
            skipped += 1
        }
        return skipped
    }

    func countRemaining() throws -> Int {
        var count = 0
        while let text = nextLine() {
            if !text.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { count += 1 }
        }
        return count
    }
}

/// An SQL query over an SQLite file, read in pages that a thread of its own fetches ahead (`PagePrefetcher`), so
/// the runner threads compute one page while the next is read.
final class SQLEntityReader: EntityReader {
    let name: String
    /// The query's result columns.
    let columns: [String]
    /// Its page thread holds it until the thread ends (tests watch it go with a weak reference).
    let prefetcher: PagePrefetcher
    private var offset: Int
    private var page: QueryTable
    private var pageRow = 0

    /// `pageRows`: rows per query page (tests); by default up to ~2M cells.
    init(path: String, query: String, offset: Int, pageRows: Int? = nil) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw EntitySourceError(message: "\(path): no such database file")
        }
        let source: SQLiteQuerySource
        do {
            source = try SQLiteQuerySource(path: path, query: query)
            columns = try source.columnNames()
        } catch {
            throw EntitySourceError(message: "\(path): the query cannot run: \(error)")
        }
        name = URL(fileURLWithPath: path).lastPathComponent
        self.offset = offset
        // Pages of up to ~2M cells (at most 65,536 rows): each page is one `LIMIT/OFFSET` query, which re-steps the
        // rows before it, so few large pages (paging by the runner's 4,096-row chunks made a 300k-row run
        // quadratic); each page's read lock is held only while it is read.
        let pageRows = pageRows ?? min(65_536, max(4_096, 2_000_000 / max(1, columns.count)))
        prefetcher = PagePrefetcher(source: source, offset: offset, pageRows: max(1, pageRows), name: name)
        page = QueryTable(columns: columns)
    }

    deinit { prefetcher.stop() }

    /// The next rows as a table, at most `maxRows` (none at the end), and the 1-based ordinal of the first. A chunk
    /// that runs past a page's end goes on into the next page, so the model always gets full batches.
    func nextTable(maxRows: Int) throws -> (table: QueryTable, firstOrdinal: Int) {
        let first = offset + 1
        var table = QueryTable(columns: columns, reservingRows: maxRows)
        while table.rows < maxRows {
            if pageRow >= page.rows {
                page = try prefetcher.next()
                pageRow = 0
                if page.rows == 0 { break }
            }
            let take = min(maxRows - table.rows, page.rows - pageRow)
            table.append(rows: pageRow..<(pageRow + take), of: page)
            pageRow += take
        }
        offset += table.rows
        return (table, first)
    }

    func next(maxRows: Int) throws -> [EntityRecord] {
        let (table, first) = try nextTable(maxRows: maxRows)
        return Self.records(table, firstOrdinal: first, name: name)
    }

    /// A table's rows as records of named fields (the general path).
    static func records(_ table: QueryTable, firstOrdinal: Int, name: String) -> [EntityRecord] {
        (0..<table.rows).map { row in
            var fields: [String: JSONValue] = [:]
            for (column, columnName) in table.columns.enumerated() {
                switch table[row, column] {
                case .null: fields[columnName] = .null
                case .integer(let i): fields[columnName] = .integer(i)
                case .real(let d): fields[columnName] = .number(d)
                case .text(let s): fields[columnName] = .string(s)
                }
            }
            return EntityRecord(
                ordinal: firstOrdinal + row, location: "\(name) query row \(firstOrdinal + row)",
                fields: .success(fields))
        }
    }
}

/// Reads a query's pages on a thread of its own, one page ahead of the reader: the page after the one handed out
/// is fetched while that one is computed. Pages start at 16,384 rows and double up to `pageRows`: a reader used for
/// one range of a sharded run reads little past it, one carried from range to range soon reads in large pages.
/// Ends after the first empty page or error (handed out in order, then repeated); `stop()` ends the thread early
/// (the reader is gone).
final class PagePrefetcher: @unchecked Sendable {
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var ready: [Result<QueryTable, EntitySourceError>] = []
    private var last: Result<QueryTable, EntitySourceError>?
    private var stopped = false

    init(source: SQLiteQuerySource, offset: Int, pageRows: Int, name: String) {
        let thread = Thread { [self] in
            var offset = offset
            var limit = min(pageRows, 16_384)
            while true {
                condition.lock()
                while !ready.isEmpty && !stopped { condition.wait() }
                let stop = stopped
                condition.unlock()
                if stop { return }
                let result: Result<QueryTable, EntitySourceError>
                do { result = .success(try source.table(offset: offset, limit: limit)) } catch {
                    result = .failure(EntitySourceError(message: "\(name): the query failed: \(error)"))
                }
                condition.lock()
                ready.append(result)
                condition.broadcast()
                condition.unlock()
                guard case .success(let page) = result, page.rows > 0 else { return }
                offset += page.rows
                limit = min(pageRows, limit * 2)
            }
        }
        thread.name = "freshline-sql-pages"
        thread.start()
    }

    /// The next page (empty at the end), waiting for it if it is still being read.
    func next() throws -> QueryTable {
        condition.lock()
        defer { condition.unlock() }
        // After the end (an empty page) or an error, the same again: the thread has finished.
        if let last, (try? last.get())?.rows ?? 0 == 0 { return try last.get() }
        while ready.isEmpty { condition.wait() }
        let result = ready.removeFirst()
        last = result
        condition.broadcast()
        return try result.get()
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}
