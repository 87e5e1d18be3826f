internal import Foundation
internal import FreshlineCore
internal import FreshlineEngine

/// A chunk of CSV rows as byte ranges into the mapped file: the batch runner's columnar path parses the cells a
/// model needs straight into input tensors, with no per-cell strings or dictionaries. The reader only finds where
/// each row's line is (one `memchr` per line); a plain line (no quote, no lone carriage return) is split at its
/// commas by the thread that computes it. Rows the reader had to scan cell by cell (quoted fields) keep their
/// cells here.
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
                // Eight bytes at a time: a byte equal to ',' becomes zero after the XOR, and the classic
                // has-zero-byte test marks exactly the zero bytes (no false positive after the first one).
                var i = cellStart
                let ones: UInt64 = 0x0101_0101_0101_0101
                let highs: UInt64 = 0x8080_8080_8080_8080
                let commas = ones &* UInt64(UInt8(ascii: ","))
                while i + 8 <= end {
                    let x = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) ^ commas
                    var found = (x &- ones) & ~x & highs
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
    }
    var keyColumn: Int
    var inputs: [Input]

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
    }
}

extension BatchRunner {
    /// Parses rows `range` of a raw CSV chunk into input tensors, runs the model and serializes the outputs. Rows
    /// with a bad cell are recorded as failures; a model failure falls back to the row-by-row path.
    static func computeColumnar(
        _ chunk: CSVRawChunk, range: Range<Int>, plan: CSVColumnarPlan, mapper: EntityRowMapper, model: Model,
        keys keySet: Set<String>?, outputs selected: [String]?
    ) -> ChunkPart {
        var part = ChunkPart()
        var floats = plan.inputs.map { _ in [Float]() }
        var doubles = plan.inputs.map { _ in [Double]() }
        var ints = plan.inputs.map { _ in [Int64]() }
        for (i, input) in plan.inputs.enumerated() {
            let n = range.count * input.columns.count
            switch input.type {
            case .float: floats[i].reserveCapacity(n)
            case .double: doubles[i].reserveCapacity(n)
            default: ints[i].reserveCapacity(n)
            }
        }
        var rowKeys: [String] = []
        var rowIndices: [Int] = []
        var cells = CSVRawChunk.RowCells(columns: chunk.columns)
        chunk.data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            rows: for row in range {
                let location = { "\(chunk.file):\(chunk.lines[row])" }
                let count = chunk.cells(of: row, in: raw, into: &cells)
                guard count == chunk.columns else {
                    part.failures.append(
                        RowFailure(
                            ordinal: chunk.ordinals[row], location: location(), key: nil,
                            reason: "has \(count) fields, the header has \(chunk.columns)"))
                    continue
                }
                let k = plan.keyColumn
                let key = CSVScanner.string(chunk.data, cells.starts[k], cells.ends[k], quoted: cells.quoted[k])
                guard !key.isEmpty else {
                    part.failures.append(
                        RowFailure(
                            ordinal: chunk.ordinals[row], location: location(), key: nil,
                            reason: "key column '\(mapper.keyColumn)' is empty"))
                    continue
                }
                if let keySet, !keySet.contains(key) { continue }
                // Where this row's values start in each buffer, to roll back a row with a bad cell.
                var marks: [(Int, Int, Int)] = []
                marks.reserveCapacity(plan.inputs.count)
                for j in plan.inputs.indices { marks.append((floats[j].count, doubles[j].count, ints[j].count)) }
                for (i, input) in plan.inputs.enumerated() {
                    for (c, column) in input.columns.enumerated() {
                        let cell = column
                        let bytes = UnsafeRawBufferPointer(rebasing: raw[cells.starts[cell]..<cells.ends[cell]])
                        let value: NumberCell =
                            cells.quoted[cell]
                            ? CSVScanner.unescape(bytes).withUnsafeBytes { NumberCell.parse($0) }
                            : NumberCell.parse(bytes)
                        var problem: String?
                        switch (value, input.type) {
                        case (.missing, .float): floats[i].append(.nan)
                        case (.missing, .double): doubles[i].append(.nan)
                        case (.number(let d), .float): floats[i].append(Float(d))
                        case (.number(let d), .double): doubles[i].append(d)
                        case (.integer(let v), .float): floats[i].append(Float(v))
                        case (.integer(let v), .double): doubles[i].append(Double(v))
                        case (.integer(let v), _):
                            if input.type == .int32 && Int64(Int32(truncatingIfNeeded: v)) != v {
                                problem = "\(v) is out of range for int32"
                            } else {
                                ints[i].append(v)
                            }
                        case (.number(let d), _):
                            if d == d.rounded(), abs(d) < 9e15 {
                                ints[i].append(Int64(d))
                            } else {
                                problem = "\(d) is not a whole number"
                            }
                        case (.missing, _): problem = "is empty"
                        case (.invalid, _):
                            let text = CSVScanner.string(
                                chunk.data, cells.starts[cell], cells.ends[cell], quoted: cells.quoted[cell])
                            problem = "'\(text.prefix(40))' is not a number"
                        }
                        if let problem {
                            for j in plan.inputs.indices {
                                floats[j].removeLast(floats[j].count - marks[j].0)
                                doubles[j].removeLast(doubles[j].count - marks[j].1)
                                ints[j].removeLast(ints[j].count - marks[j].2)
                            }
                            part.failures.append(
                                RowFailure(
                                    ordinal: chunk.ordinals[row], location: location(), key: key,
                                    reason: "column '\(input.columnNames[c])' (input '\(input.name)'): \(problem)"))
                            continue rows
                        }
                    }
                }
                rowKeys.append(key)
                rowIndices.append(row)
            }
        }
        guard !rowKeys.isEmpty else { return part }
        do {
            var feeds: [String: Tensor] = [:]
            for (i, input) in plan.inputs.enumerated() {
                let shape = [rowKeys.count] + input.rowShape
                switch input.type {
                case .float: feeds[input.name] = try Tensor(shape: shape, floats: floats[i])
                case .double: feeds[input.name] = try Tensor(shape: shape, doubles: doubles[i])
                case .int64: feeds[input.name] = try Tensor(shape: shape, int64s: ints[i])
                default: feeds[input.name] = try Tensor(shape: shape, data: .int32(ints[i].map { Int32($0) }))
                }
            }
            part.outputs = try RowBatch.serializedRows(
                outputs: try model.run(feeds), count: rowKeys.count, selected: selected)
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
        switch DecimalText.parse(UnsafeRawBufferPointer(rebasing: raw[start..<end])) {
        case .integer(let i)?: return .integer(i)
        case .number(let d)?: return .number(d)
        case nil: return slow(raw, start, end)
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
