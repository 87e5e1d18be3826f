public import FreshlineCore
internal import GRDB

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

    /// Up to `limit` rows starting at row `offset` (0-based), each as column name → value.
    public func page(offset: Int, limit: Int) throws -> [[String: EntityValue]] {
        try queue.read { db in
            let cursor = try Row.fetchCursor(
                db, sql: "SELECT * FROM (\(query)) LIMIT ? OFFSET ?", arguments: [limit, offset])
            var rows: [[String: EntityValue]] = []
            while let row = try cursor.next() {
                var fields: [String: EntityValue] = [:]
                for (column, value) in row {
                    switch value.storage {
                    case .null: fields[column] = .null
                    case .int64(let i): fields[column] = .integer(i)
                    case .double(let d): fields[column] = .real(d)
                    case .string(let s): fields[column] = .text(s)
                    case .blob(let b): fields[column] = .text(String(decoding: b, as: UTF8.self))
                    }
                }
                rows.append(fields)
            }
            return rows
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
