/// A cell read from an entity source (an SQL column value), before it is mapped to a model input.
public enum EntityValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
}

/// Rows of an entity source's result (an SQL query's page), cell `row · columns.count + column`. Kept as a kind and
/// 64 bits per cell (texts apart), not as `EntityValue`s: reading a numeric cell then copies and releases nothing
/// (copying and destroying the enum cell by cell was 7% of an SQL-sourced run, measured with perf).
public struct QueryTable: Sendable {
    /// What a cell holds.
    public enum Kind: UInt8, Sendable {
        case null, integer, real, text
    }

    public let columns: [String]
    public private(set) var rows = 0
    /// Per cell, its kind.
    public private(set) var kinds: [Kind] = []
    /// Per cell: an integer's bits, a real's bit pattern, a text's index in `texts`; 0 for null.
    public private(set) var bits: [UInt64] = []
    public private(set) var texts: [String] = []

    /// An empty table with room for `rows` rows.
    public init(columns: [String], reservingRows rows: Int = 0) {
        self.columns = columns
        kinds.reserveCapacity(rows * columns.count)
        bits.reserveCapacity(rows * columns.count)
    }

    public subscript(row: Int, column: Int) -> EntityValue { cell(row * columns.count + column) }

    /// Cell `index` (`row · columns.count + column`).
    public func cell(_ index: Int) -> EntityValue {
        switch kinds[index] {
        case .null: .null
        case .integer: .integer(Int64(bitPattern: bits[index]))
        case .real: .real(Double(bitPattern: bits[index]))
        case .text: .text(texts[Int(bits[index])])
        }
    }

    // Building, cell by cell and row by row (a row is complete after `columns.count` cells).

    public mutating func appendNull() { append(.null, 0) }
    public mutating func append(integer: Int64) { append(.integer, UInt64(bitPattern: integer)) }
    public mutating func append(real: Double) { append(.real, real.bitPattern) }
    public mutating func append(text: String) {
        append(.text, UInt64(texts.count))
        texts.append(text)
    }

    private mutating func append(_ kind: Kind, _ value: UInt64) {
        kinds.append(kind)
        bits.append(value)
        if kinds.count == (rows + 1) * columns.count { rows += 1 }
    }

    /// Appends rows `range` of `other` (the same columns).
    public mutating func append(rows range: Range<Int>, of other: QueryTable) {
        precondition(other.columns.count == columns.count, "rows of a table with other columns")
        precondition(kinds.count == rows * columns.count, "rows appended after a row left unfinished")
        let cells = (range.lowerBound * columns.count)..<(range.upperBound * columns.count)
        kinds.append(contentsOf: other.kinds[cells])
        bits.reserveCapacity(bits.count + cells.count)
        for index in cells {
            if other.kinds[index] == .text {
                // Re-pointed into this table's texts.
                bits.append(UInt64(texts.count))
                texts.append(other.texts[Int(other.bits[index])])
            } else {
                bits.append(other.bits[index])
            }
        }
        rows += range.count
    }
}
