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

    /// Rows the query returns.
    public func count() throws -> Int {
        try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM (\(query))") ?? 0 }
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
            var cells: [EntityValue] = []
            cells.reserveCapacity(width * min(limit, 65_536))
            var rows = 0
            // The cursor steps the statement; each cell is read from it by type, with no per-cell generic decoding.
            while try cursor.next() != nil {
                for index in 0..<Int32(width) {
                    switch sqlite3_column_type(raw, index) {
                    case SQLITE_NULL: cells.append(.null)
                    case SQLITE_INTEGER: cells.append(.integer(sqlite3_column_int64(raw, index)))
                    case SQLITE_FLOAT: cells.append(.real(sqlite3_column_double(raw, index)))
                    default:
                        // Text, or a blob read as UTF-8 text.
                        let bytes = sqlite3_column_text(raw, index)  // before _bytes, as SQLite asks
                        let count = Int(sqlite3_column_bytes(raw, index))
                        let text = bytes.map {
                            String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
                        }
                        cells.append(.text(text ?? ""))
                    }
                }
                rows += 1
            }
            return QueryTable(columns: statement.columnNames, rows: rows, cells: cells)
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
