public import FreshlineCore
internal import GRDB
internal import GRDBSQLite

/// An entity source that is a query against an SQLite database file, opened read-only. Rows are read in pages
/// (`LIMIT`/`OFFSET` over the query), so a resumed run skips the rows its checkpoint covers; the query should
/// have a stable order (`ORDER BY` the key) for that to hold while the table changes.
public final class SQLiteQuerySource: Sendable {
    private let queue: DatabaseQueue
    private let query: String

    /// Opens `path` read-only and checks that `query` compiles.
    public init(path: String, query: String) throws {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        queue = try DatabaseQueue(path: path, configuration: configuration)
        self.query = query.trimmingSemicolons()
        try queue.read { db in _ = try db.makeStatement(sql: self.query) }
    }

    /// Rows the query returns. A last `ORDER BY` of the whole query is left out of the count: it cannot change how
    /// many rows there are, and ordering by an index makes SQLite fetch every row's columns through it (300k rows,
    /// `SELECT * … ORDER BY user_id`: 250 ms counted with it, 2 ms without).
    public func count() throws -> Int {
        let shortened = Self.withoutFinalOrderBy(query)
        return try queue.read { db in
            // The query as written when the shortened one does not prepare (this reading of SQL missed something);
            // any other error is the count's.
            let counted = (try? db.makeStatement(sql: "SELECT COUNT(*) FROM (\(shortened))")) != nil ? shortened : query
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM (\(counted))") ?? 0
        }
    }

    /// `query` without its final `ORDER BY` clause when that clause ends the query (no `LIMIT`, `OFFSET` or
    /// anything else after its terms) and stands outside any parentheses, string, quoted name or comment; else
    /// `query` itself.
    static func withoutFinalOrderBy(_ query: String) -> String {
        let bytes = Array(query.utf8)
        var depth = 0
        var i = 0
        // Words outside parentheses, quotes and comments, as byte ranges.
        var words: [Range<Int>] = []
        func isWordByte(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A) || b == 0x5F || b >= 0x80
        }
        while i < bytes.count {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "`"), UInt8(ascii: "["):
                let close = b == UInt8(ascii: "[") ? UInt8(ascii: "]") : b
                i += 1
                while i < bytes.count && bytes[i] != close { i += 1 }
                guard i < bytes.count else { return query }  // not closed: leave it to SQLite
                i += 1
                if depth == 0 { words.append(i..<i) }  // a quoted name or string: a token that is no keyword
            case UInt8(ascii: "-") where i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "-"):
                while i < bytes.count && bytes[i] != UInt8(ascii: "\n") { i += 1 }
            case UInt8(ascii: "/") where i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "*"):
                i += 2
                while i + 1 < bytes.count && !(bytes[i] == UInt8(ascii: "*") && bytes[i + 1] == UInt8(ascii: "/")) {
                    i += 1
                }
                i += 2
            case UInt8(ascii: "("):
                depth += 1
                i += 1
            case UInt8(ascii: ")"):
                depth -= 1
                i += 1
                if depth == 0 { words.append(i..<i) }
            default:
                if isWordByte(b) {
                    let start = i
                    while i < bytes.count && isWordByte(bytes[i]) { i += 1 }
                    if depth == 0 { words.append(start..<i) }
                } else {
                    i += 1
                }
            }
        }
        func word(_ r: Range<Int>) -> String { String(decoding: bytes[r], as: UTF8.self).uppercased() }
        guard depth == 0,
            let order = words.indices.last(where: {
                $0 + 1 < words.count && word(words[$0]) == "ORDER" && word(words[$0 + 1]) == "BY"
            })
        else { return query }
        // Anything but ordering terms after it (LIMIT, OFFSET, another clause) keeps the query whole.
        let clauseWords: Set<String> = [
            "LIMIT", "OFFSET", "UNION", "EXCEPT", "INTERSECT", "SELECT", "FROM", "WHERE", "GROUP", "HAVING", "WINDOW",
        ]
        guard !words[(order + 2)...].contains(where: { clauseWords.contains(word($0)) }) else { return query }
        return String(decoding: bytes[..<words[order].lowerBound], as: UTF8.self)
    }

    /// The query's result columns, in order.
    public func columnNames() throws -> [String] {
        try queue.read { db in try db.makeStatement(sql: query).columnNames }
    }

    /// Up to `limit` rows starting at row `offset` (0-based): the cells row by row, in `columnNames()` order — no
    /// per-row dictionaries, so the batch runner can read numeric columns straight into its input tensors.
    public func table(offset: Int, limit: Int) throws -> QueryTable {
        try queue.read { db in
            let statement = try db.makeStatement(sql: "SELECT * FROM (\(query)) LIMIT ? OFFSET ?")
            let cursor = try Row.fetchCursor(statement, arguments: [limit, offset])
            let width = statement.columnCount
            let raw = statement.sqliteStatement
            var table = QueryTable(columns: statement.columnNames, reservingRows: min(limit, 65_536))
            // The cursor steps the statement; each cell is read from it by type, with no per-cell generic decoding.
            while try cursor.next() != nil {
                for index in 0..<Int32(width) {
                    switch sqlite3_column_type(raw, index) {
                    case SQLITE_NULL: table.appendNull()
                    case SQLITE_INTEGER: table.append(integer: sqlite3_column_int64(raw, index))
                    case SQLITE_FLOAT: table.append(real: sqlite3_column_double(raw, index))
                    default:
                        // Text, or a blob read as UTF-8 text.
                        let bytes = sqlite3_column_text(raw, index)  // before _bytes, as SQLite asks
                        let count = Int(sqlite3_column_bytes(raw, index))
                        let text = bytes.map {
                            String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
                        }
                        table.append(text: text ?? "")
                    }
                }
            }
            return table
        }
    }
}

extension String {
    fileprivate func trimmingSemicolons() -> String {
        var s = Substring(self)
        while let last = s.last, last == ";" || last.isWhitespace { s.removeLast() }
        while let first = s.first, first.isWhitespace { s.removeFirst() }
        return String(s)
    }
}
