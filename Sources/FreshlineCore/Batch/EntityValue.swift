/// A cell read from an entity source (an SQL column value), before it is mapped to a model input.
public enum EntityValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
}

/// Rows of an entity source's result (an SQL query's page): `cells[row · columns.count + column]`.
public struct QueryTable: Sendable {
    public var columns: [String]
    public var rows: Int
    public var cells: [EntityValue]

    public init(columns: [String], rows: Int, cells: [EntityValue]) {
        self.columns = columns
        self.rows = rows
        self.cells = cells
    }

    public subscript(row: Int, column: Int) -> EntityValue { cells[row * columns.count + column] }
}
