internal import Foundation
internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON

/// A chunk of CSV rows as byte ranges into the mapped file: the batch runner's columnar path parses the cells a
/// model needs straight into input tensors, with no per-cell strings or dictionaries. The reader only finds where
/// each row's line is (one `memchr` per line); a plain line (no quote, no lone carriage return) is parsed by the
/// thread that computes it, in one pass or, when that pass declines, split at its commas (`cells(of:in:into:)`).
/// Rows the reader had to scan cell by cell (quoted fields) keep their cells here.
struct CSVRawChunk: Sendable {
    let data: Data
    let file: String
    let headerNames: [String]
    var columns: Int { headerNames.count }
    /// Per row: its line's bytes (without the line break), 1-based position and line number.
    var lineStarts: [Int] = []
    var lineEnds: [Int] = []
    var ordinals: [Int] = []
    var lines: [Int] = []
    /// Per row: the index of its first cell in `starts`/`ends`/`quoted` when the reader scanned it, else -1.
    var scanned: [Int] = []
    var scannedCells: [Int] = []
    var starts: [Int] = []
    var ends: [Int] = []
    var quoted: [Bool] = []

    init(data: Data, file: String, header: [String]) {
        self.data = data
        self.file = file
        headerNames = header
    }

    var rows: Int { ordinals.count }

    mutating func reserve(rows: Int) {
        lineStarts.reserveCapacity(rows)
        lineEnds.reserveCapacity(rows)
        ordinals.reserveCapacity(rows)
        lines.reserveCapacity(rows)
        scanned.reserveCapacity(rows)
        scannedCells.reserveCapacity(rows)
    }

    /// A plain row: bytes `start..<end` split at every comma.
    mutating func appendPlain(start: Int, end: Int, ordinal: Int, line: Int) {
        lineStarts.append(start)
        lineEnds.append(end)
        ordinals.append(ordinal)
        lines.append(line)
        scanned.append(-1)
        scannedCells.append(0)
    }

    /// A row the record scanner read cell by cell.
    mutating func appendScanned(_ cells: CSVScanner.Cells, ordinal: Int, line: Int) {
        lineStarts.append(cells.starts.first ?? 0)
        lineEnds.append(cells.ends.last ?? 0)
        ordinals.append(ordinal)
        lines.append(line)
        scanned.append(starts.count)
        scannedCells.append(cells.count)
        starts.append(contentsOf: cells.starts)
        ends.append(contentsOf: cells.ends)
        quoted.append(contentsOf: cells.quoted)
    }

    /// One row's cells, reused from row to row: the first `columns` cells are stored, more are only counted.
    struct RowCells {
        var starts: [Int]
        var ends: [Int]
        var quoted: [Bool]
        init(columns: Int) {
            starts = Array(repeating: 0, count: columns)
            ends = Array(repeating: 0, count: columns)
            quoted = Array(repeating: false, count: columns)
        }
    }

    /// Fills `cells` with row `row`'s cells (byte ranges into `raw`, the mapped file); returns its cell count.
    func cells(of row: Int, in raw: UnsafeRawBufferPointer, into cells: inout RowCells) -> Int {
        let capacity = cells.starts.count
        if scanned[row] >= 0 {
            let first = scanned[row]
            let count = scannedCells[row]
            for c in 0..<min(count, capacity) {
                cells.starts[c] = starts[first + c]
                cells.ends[c] = ends[first + c]
                cells.quoted[c] = quoted[first + c]
            }
            return count
        }
        let end = lineEnds[row]
        var count = 0
        var cellStart = lineStarts[row]
        cells.starts.withUnsafeMutableBufferPointer { starts in
            cells.ends.withUnsafeMutableBufferPointer { ends in
                func comma(at i: Int) {
                    if count < capacity {
                        starts[count] = cellStart
                        ends[count] = i
                    }
                    count += 1
                    cellStart = i + 1
                }
                // Eight bytes at a time (`commaMarks`).
                var i = cellStart
                while i + 8 <= end {
                    var found = commaMarks(raw, at: i)
                    while found != 0 {
                        let byte = found.trailingZeroBitCount / 8
                        // Bytes after a true zero byte can be marked by the borrow: confirm each one.
                        if raw[i + byte] == UInt8(ascii: ",") { comma(at: i + byte) }
                        found &= found &- 1
                    }
                    i += 8
                }
                while i < end {
                    if raw[i] == UInt8(ascii: ",") { comma(at: i) }
                    i += 1
                }
                if count < capacity {
                    starts[count] = cellStart
                    ends[count] = end
                }
                count += 1
            }
        }
        for c in 0..<min(count, capacity) where cells.quoted[c] { cells.quoted[c] = false }
        return count
    }
}

/// The commas among the 8 bytes at `i` (which must be readable), as the high bit of each byte: after an XOR a comma
/// is a zero byte, and the classic has-zero-byte test marks every zero byte — the lowest mark is always a comma; a
/// byte right after a true one may be marked by the borrow, so a caller that wants them all confirms each.
@inline(__always)
private func commaMarks(_ raw: UnsafeRawBufferPointer, at i: Int) -> UInt64 {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let x = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) ^ (ones &* 0x2C)
    return (x &- ones) & ~x & (ones &<< 7)
}

/// How the columnar path reads a source: the key's column and, per model input, its columns in order. Only for
/// numeric inputs whose per-row size is known and matches the mapped columns (one scalar per cell); anything else
/// (string inputs, arrays in a cell) takes the general path.
struct CSVColumnarPlan: Sendable {
    struct Input: Sendable {
        var name: String
        var type: ElementType
        var rowShape: [Int]
        var columns: [Int]
        var columnNames: [String]
        var width: Int { columns.count }
    }
    /// Where one header column's value goes: input `input`, element `offset` of the row.
    struct Target: Sendable {
        var input: Int
        var offset: Int
    }
    var keyColumn: Int
    var inputs: [Input]
    /// Per header column, its target (`input` -1: not an input) — when every column feeds at most one element and
    /// the key column none, so a row can be parsed in one pass from left to right; else `nil`.
    var targets: [Target]?

    init?(mapper: EntityRowMapper, header: [String]) {
        guard let key = header.firstIndex(of: mapper.keyColumn) else { return nil }
        keyColumn = key
        inputs = []
        for (info, mapping) in mapper.inputs {
            guard [.float, .double, .int64, .int32].contains(info.elementType), let shape = info.shape,
                shape.count >= 1
            else { return nil }
            let rowShape = Array(shape.dropFirst())
            guard rowShape.allSatisfy({ $0 >= 1 }) else { return nil }
            let names: [String]
            switch mapping {
            case .column(let c): names = [c]
            case .columns(let cs): names = cs
            }
            guard rowShape.reduce(1, *) == names.count else { return nil }
            var indices: [Int] = []
            for name in names {
                guard let index = header.firstIndex(of: name) else { return nil }
                indices.append(index)
            }
            inputs.append(
                Input(name: info.name, type: info.elementType, rowShape: rowShape, columns: indices, columnNames: names)
            )
        }
        var targets = Array(repeating: Target(input: -1, offset: 0), count: header.count)
        var oneToOne = true
        for (i, input) in inputs.enumerated() {
            for (offset, column) in input.columns.enumerated() {
                if column == key || targets[column].input >= 0 { oneToOne = false }
                targets[column] = Target(input: i, offset: offset)
            }
        }
        self.targets = oneToOne ? targets : nil
    }
}

/// Where a column's value goes in a float input: `first` for row 0 (`nil`: not a float input), then every `stride`.
private struct FloatTarget {
    var first: UnsafeMutablePointer<Float>?
    var stride: Int
}

/// The input tensors' elements for a chunk, written in place row by row: row `r`'s elements of input `i` are
/// `width(i)` values at `r · width(i)`. A row that fails is overwritten by the next.
private struct InputBuffers {
    let plan: CSVColumnarPlan
    let floats: [UnsafeMutablePointer<Float>?]
    let doubles: [UnsafeMutablePointer<Double>?]
    let ints: [UnsafeMutablePointer<Int64>?]

    init(plan: CSVColumnarPlan, rows: Int) {
        self.plan = plan
        floats = plan.inputs.map { $0.type == .float ? .allocate(capacity: rows * $0.width) : nil }
        doubles = plan.inputs.map { $0.type == .double ? .allocate(capacity: rows * $0.width) : nil }
        ints = plan.inputs.map { [.int64, .int32].contains($0.type) ? .allocate(capacity: rows * $0.width) : nil }
    }

    func deallocate() {
        for p in floats { p?.deallocate() }
        for p in doubles { p?.deallocate() }
        for p in ints { p?.deallocate() }
    }

    /// Per header column (its `targets`), where the column's value goes when it feeds a float input.
    func floatTargets(_ targets: [CSVColumnarPlan.Target]) -> [FloatTarget] {
        targets.map { target in
            guard target.input >= 0, let p = floats[target.input] else { return FloatTarget(first: nil, stride: 0) }
            return FloatTarget(first: p + target.offset, stride: plan.inputs[target.input].width)
        }
    }

    /// Stores a parsed cell; `nil` when stored, else why the value does not fit the input's type.
    @inline(__always)
    func store(_ value: NumberCell, input i: Int, at index: Int) -> String? {
        if let p = floats[i] {
            switch value {
            case .number(let d): p[index] = Float(d)
            case .integer(let v): p[index] = Float(v)
            case .missing: p[index] = .nan
            case .invalid: return "is not a number"
            }
        } else if let p = doubles[i] {
            switch value {
            case .number(let d): p[index] = d
            case .integer(let v): p[index] = Double(v)
            case .missing: p[index] = .nan
            case .invalid: return "is not a number"
            }
        } else if let p = ints[i] {
            switch value {
            case .integer(let v):
                if plan.inputs[i].type == .int32 && Int64(Int32(truncatingIfNeeded: v)) != v {
                    return "\(v) is out of range for int32"
                }
                p[index] = v
            case .number(let d):
                guard d == d.rounded(), abs(d) < 9e15 else { return "\(d) is not a whole number" }
                // A whole REAL (SQL stores whole numbers in REAL columns as reals) gets int32's range check too.
                if plan.inputs[i].type == .int32 && Int64(Int32(truncatingIfNeeded: Int64(d))) != Int64(d) {
                    return "\(Int64(d)) is out of range for int32"
                }
                p[index] = Int64(d)
            case .missing: return "is empty"
            case .invalid: return "is not a number"
            }
        }
        return nil
    }

    /// The model's packed outputs for the first `rows` rows.
    func run(_ model: Model, rows: Int, selected: [String]?) throws -> PackedRows {
        try BatchRunner.packed(try model.run(try tensors(rows: rows)), count: rows, selected: selected)
    }

    /// The first `rows` rows as the model's feeds.
    func tensors(rows: Int) throws -> [String: Tensor] {
        var feeds: [String: Tensor] = [:]
        for (i, input) in plan.inputs.enumerated() {
            let shape = [rows] + input.rowShape
            let count = rows * input.width
            if let p = floats[i] {
                feeds[input.name] = try Tensor(shape: shape, floats: Array(UnsafeBufferPointer(start: p, count: count)))
            } else if let p = doubles[i] {
                feeds[input.name] = try Tensor(
                    shape: shape, doubles: Array(UnsafeBufferPointer(start: p, count: count)))
            } else if let p = ints[i] {
                let values = UnsafeBufferPointer(start: p, count: count)
                feeds[input.name] =
                    input.type == .int64
                    ? try Tensor(shape: shape, int64s: Array(values))
                    : try Tensor(shape: shape, data: .int32(values.map { Int32(truncatingIfNeeded: $0) }))
            }
        }
        return feeds
    }
}

/// How a row read cell by cell came out.
private enum CellByCell {
    case key(String)
    case failure(RowFailure)
    case skipped
}

extension BatchRunner {
    /// Parses rows `range` of a raw CSV chunk into input tensors, runs the model and serializes the outputs. Rows
    /// with a bad cell are recorded as failures; a model failure falls back to the row-by-row path.
    ///
    /// A plain row (no quotes) is parsed in one pass from left to right: a float input's usual cell
    /// (`[-]d{1,7}.d{1,7}`) is read and its comma found in one step (`DecimalText.shortDecimalCell`), its value
    /// stored straight to its element;
    /// any other cell is found first (`cellEnd`) and read whole (`DecimalText.parsePrefix`). A
    /// row that pass cannot take whole (a cell with spaces, an exponent, `nan`, a wrong field count, a bad value) is
    /// split into cells and read again cell by cell, which decides its values or its failure. Both give the same
    /// values.
    static func computeColumnar(
        _ chunk: CSVRawChunk, range: Range<Int>, plan: CSVColumnarPlan, mapper: EntityRowMapper, model: Model,
        keys keySet: Set<String>?, outputs selected: [String]?
    ) -> ChunkPart {
        var part = ChunkPart()
        let buffers = InputBuffers(plan: plan, rows: range.count)
        defer { buffers.deallocate() }
        var rowKeys: [String] = []
        rowKeys.reserveCapacity(range.count)
        var rowIndices: [Int] = []
        rowIndices.reserveCapacity(range.count)
        var cells = CSVRawChunk.RowCells(columns: chunk.columns)
        // The one-pass reading is for runs over every key (a backfill's subset filters by key first).
        let targets = keySet == nil ? plan.targets : nil
        let widths = plan.inputs.map(\.width)
        let keyColumn = plan.keyColumn
        let lastColumn = chunk.columns - 1
        chunk.data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let base = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            /// Where the cell at `position` ends: the first comma before `end`, else `end`. Sixteen bytes in two
            /// loads without a branch on where the comma is (the usual cell is shorter), so finding the next cell,
            /// the one step each cell waits for, stays short; longer cells and the file's last bytes use `memchr`.
            @inline(__always)
            func cellEnd(_ position: Int, _ end: Int) -> Int {
                if position &+ 16 <= raw.count {
                    // The lowest marked byte of each word is its first comma.
                    let m0 = commaMarks(raw, at: position)
                    let m1 = commaMarks(raw, at: position &+ 8)
                    let offset = m0 != 0 ? m0.trailingZeroBitCount &>> 3 : 8 &+ (m1.trailingZeroBitCount &>> 3)
                    if offset < 16 || end &- position <= 16 { return min(position &+ offset, end) }
                }
                return memchr(base + position, Int32(UInt8(ascii: ",")), end - position).map {
                    base.distance(to: $0.assumingMemoryBound(to: UInt8.self))
                } ?? end
            }
            /// Row `row` in one pass into output row `out`; its key, or `nil` to read it cell by cell instead.
            func onePass(
                _ row: Int, into out: Int, _ targets: UnsafeBufferPointer<CSVColumnarPlan.Target>,
                _ floatTargets: UnsafeBufferPointer<FloatTarget>
            ) -> String? {
                guard chunk.scanned[row] < 0 else { return nil }
                var position = chunk.lineStarts[row]
                let end = chunk.lineEnds[row]
                var key = 0..<0
                for column in 0...lastColumn {
                    let target = targets[column]
                    let next: Int
                    if target.input >= 0 {
                        // The usual cell ([-]d{1,7}.d{1,7}) is read with its end found on the way, and a float
                        // input's value goes straight to its element; any other cell is found first, then read.
                        if let cell = DecimalText.shortDecimalCell(
                            base, from: position, rowEnd: end, readable: raw.count)
                        {
                            next = cell.end
                            let float = floatTargets[column]
                            if let first = float.first {
                                first[out &* float.stride] = Float(cell.value)
                            } else {
                                guard
                                    buffers.store(
                                        .number(cell.value), input: target.input,
                                        at: out &* widths[target.input] &+ target.offset) == nil
                                else {
                                    return nil
                                }
                            }
                        } else {
                            next = cellEnd(position, end)
                            let (number, stop) = DecimalText.parsePrefix(raw, from: position, end: next)
                            guard let number, stop == next,
                                buffers.store(
                                    NumberCell(number), input: target.input,
                                    at: out &* widths[target.input] &+ target.offset) == nil
                            else { return nil }
                        }
                    } else {
                        next = cellEnd(position, end)
                        if column == keyColumn { key = position..<next }
                    }
                    if column == lastColumn {
                        guard next == end else { return nil }
                    } else {
                        guard next < end else { return nil }
                        position = next &+ 1
                    }
                }
                guard !key.isEmpty else { return nil }
                return String(decoding: UnsafeRawBufferPointer(rebasing: raw[key]), as: UTF8.self)
            }
            /// Row `row` cell by cell into output row `out`: its key, or its failure, or neither when the row is
            /// not this run's (a backfill's other keys).
            func cellByCell(_ row: Int, into out: Int) -> CellByCell {
                let location = { "\(chunk.file):\(chunk.lines[row])" }
                let count = chunk.cells(of: row, in: raw, into: &cells)
                guard count == chunk.columns else {
                    return .failure(
                        RowFailure(
                            ordinal: chunk.ordinals[row], location: location(), key: nil,
                            reason: "has \(count) fields, the header has \(chunk.columns)"))
                }
                let key = CSVScanner.string(
                    chunk.data, cells.starts[keyColumn], cells.ends[keyColumn], quoted: cells.quoted[keyColumn])
                guard !key.isEmpty else {
                    return .failure(
                        RowFailure(
                            ordinal: chunk.ordinals[row], location: location(), key: nil,
                            reason: "key column '\(mapper.keyColumn)' is empty"))
                }
                if let keySet, !keySet.contains(key) { return .skipped }
                for (i, input) in plan.inputs.enumerated() {
                    for (c, cell) in input.columns.enumerated() {
                        let bytes = UnsafeRawBufferPointer(rebasing: raw[cells.starts[cell]..<cells.ends[cell]])
                        let value: NumberCell =
                            cells.quoted[cell]
                            ? CSVScanner.unescape(bytes).withUnsafeBytes { NumberCell.parse($0) }
                            : NumberCell.parse(bytes)
                        guard var problem = buffers.store(value, input: i, at: out * input.width + c) else { continue }
                        if case .invalid = value {
                            let text = CSVScanner.string(
                                chunk.data, cells.starts[cell], cells.ends[cell], quoted: cells.quoted[cell])
                            problem = "'\(text.prefix(40))' \(problem)"
                        }
                        return .failure(
                            RowFailure(
                                ordinal: chunk.ordinals[row], location: location(), key: key,
                                reason: "column '\(input.columnNames[c])' (input '\(input.name)'): \(problem)"))
                    }
                }
                return .key(key)
            }
            let targetList = targets ?? []
            let floatTargets = buffers.floatTargets(targetList)
            targetList.withUnsafeBufferPointer { targetPointer in
                floatTargets.withUnsafeBufferPointer { floatPointer in
                    for row in range {
                        let out = rowKeys.count
                        if targets != nil, let key = onePass(row, into: out, targetPointer, floatPointer) {
                            rowKeys.append(key)
                            rowIndices.append(row)
                            continue
                        }
                        switch cellByCell(row, into: out) {
                        case .key(let key):
                            rowKeys.append(key)
                            rowIndices.append(row)
                        case .failure(let failure): part.failures.append(failure)
                        case .skipped: continue
                        }
                    }
                }
            }
        }
        guard !rowKeys.isEmpty else { return part }
        do {
            part.outputs = try buffers.run(model, rows: rowKeys.count, selected: selected)
            part.keys = rowKeys
            part.failures.sort { $0.ordinal < $1.ordinal }
            return part
        } catch {
            // Rare: the model refused the batch. Re-run these rows through the general path, row by row.
            let records = rowIndices.map { row -> EntityRecord in
                _ = chunk.data.withUnsafeBytes { chunk.cells(of: row, in: $0, into: &cells) }
                var fields: [String: JSONValue] = [:]
                for column in mapper.columns {
                    guard let index = chunk.headerIndex(column) else { continue }
                    fields[column] = .string(
                        CSVScanner.string(
                            chunk.data, cells.starts[index], cells.ends[index], quoted: cells.quoted[index]))
                }
                return EntityRecord(
                    ordinal: chunk.ordinals[row], location: "\(chunk.file):\(chunk.lines[row])",
                    fields: .success(fields))
            }
            let general = compute(records, mapper: mapper, model: model, keys: keySet, outputs: selected)
            part.keys = general.keys
            part.outputs = general.outputs
            part.failures = (part.failures + general.failures).sorted { $0.ordinal < $1.ordinal }
            return part
        }
    }
}

extension BatchRunner {
    /// Runs a query's rows (`table`, the first at 1-based `firstOrdinal`) through the model: by `tableFastPath` when
    /// it takes the chunk, else through the general path (`compute`) whole, so values and failures are exactly the
    /// record path's.
    static func computeTable(
        _ table: QueryTable, firstOrdinal: Int, name: String, plan: CSVColumnarPlan, mapper: EntityRowMapper,
        model: Model, keys keySet: Set<String>?, outputs selected: [String]?
    ) -> ChunkPart {
        if let part = tableFastPath(table, plan: plan, model: model, keys: keySet, outputs: selected) { return part }
        return compute(
            SQLEntityReader.records(table, firstOrdinal: firstOrdinal, name: name), mapper: mapper, model: model,
            keys: keySet, outputs: selected)
    }

    /// A query's rows with numeric cells read straight into the input tensors and the key from its column, with no
    /// per-row records; `nil` (declined) when any cell is not taken as is — text in an input column, a key that is
    /// not non-empty text or an integer, a value that does not fit its input — or the model refuses the batch.
    static func tableFastPath(
        _ table: QueryTable, plan: CSVColumnarPlan, model: Model, keys keySet: Set<String>?, outputs selected: [String]?
    ) -> ChunkPart? {
        let buffers = InputBuffers(plan: plan, rows: table.rows)
        defer { buffers.deallocate() }
        var rowKeys: [String] = []
        rowKeys.reserveCapacity(table.rows)
        let width = table.columns.count
        for row in 0..<table.rows {
            let key: String
            switch table[row, plan.keyColumn] {
            case .text(let text) where !text.isEmpty: key = text
            case .integer(let i): key = String(i)
            default: return nil
            }
            if let keySet, !keySet.contains(key) { continue }
            let out = rowKeys.count
            for (i, input) in plan.inputs.enumerated() {
                for (c, column) in input.columns.enumerated() {
                    // Read by kind and bits: a numeric cell is copied without any reference counting.
                    let cell = row * width + column
                    let value: NumberCell
                    switch table.kinds[cell] {
                    case .integer: value = .integer(Int64(bitPattern: table.bits[cell]))
                    case .real: value = .number(Double(bitPattern: table.bits[cell]))
                    case .null: value = .missing
                    case .text: return nil
                    }
                    guard buffers.store(value, input: i, at: out * input.width + c) == nil else { return nil }
                }
            }
            rowKeys.append(key)
        }
        var part = ChunkPart()
        guard !rowKeys.isEmpty else { return part }
        guard let rows = try? buffers.run(model, rows: rowKeys.count, selected: selected) else { return nil }
        part.outputs = rows
        part.keys = rowKeys
        return part
    }
}

extension CSVRawChunk {
    func headerIndex(_ name: String) -> Int? { headerNames.firstIndex(of: name) }
}

/// A numeric cell: parsed from bytes with the exact fast path for short decimals (Clinger's: a mantissa below
/// 2^53 scaled by an exactly representable power of ten), else by `strtod` — so values equal the JSON path's.
enum NumberCell {
    case missing
    case integer(Int64)
    case number(Double)
    case invalid

    static func parse(_ raw: UnsafeRawBufferPointer) -> NumberCell {
        var start = 0
        var end = raw.count
        while start < end && (raw[start] == 0x20 || raw[start] == 0x09) { start += 1 }
        while end > start && (raw[end - 1] == 0x20 || raw[end - 1] == 0x09 || raw[end - 1] == 0x0D) { end -= 1 }
        if start == end { return .missing }
        guard let number = DecimalText.parse(UnsafeRawBufferPointer(rebasing: raw[start..<end])) else {
            return slow(raw, start, end)
        }
        return NumberCell(number)
    }

    init(_ number: DecimalText.Number) {
        switch number {
        case .integer(let i): self = .integer(i)
        case .number(let d): self = .number(d)
        }
    }

    private static func slow(_ raw: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> NumberCell {
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: raw[start..<end]), as: UTF8.self)
        if text.lowercased() == "nan" { return .missing }
        if let i = Int64(text) { return .integer(i) }
        if let d = Double(text), d.isFinite { return .number(d) }
        return .invalid
    }
}
