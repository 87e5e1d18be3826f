internal import Foundation
internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON

/// How `SnapshotStreamWriter` reads rows whose every output is a number or a flat array of numbers (what a local
/// model's tensors give): each row's text in one pass that parses its numbers without building JSON values, checked
/// against writing them back byte for byte.
///
/// Measured on 2M rows of a GBDT's outputs (`{"label":1,"probabilities":[0.1,0.9]}`): the general path, which parses
/// each row into a dictionary twice (schema, then values), took about 5 s of the seal's 10 s; see bench/RESULTS.md.
/// Any other shape (strings, booleans, nested values, escapes in names, whitespace, a row whose outputs differ from
/// the first row's) is refused, and the general path decides.
enum FlatRows {
    /// One output as the first row shows it.
    struct Member {
        /// `"name":` as the row writes it, with the `,` before it for every member but the first.
        var prefix: [UInt8]
        var name: String
        var scalar: Bool
        var elements: Int
        var integer: Bool
    }

    /// A number token.
    private enum Number {
        case integer(Int64)
        case double(Double)
    }

    /// The outputs the first row has, their shapes and number kinds; `nil` when it is not a flat row of numbers.
    static func shape(of row: UnsafeRawBufferPointer) -> [Member]? {
        var members: [Member] = []
        var names = Set<String>()
        var i = 1
        guard row.count >= 2, row[0] == UInt8(ascii: "{") else { return nil }
        while i < row.count {
            if !members.isEmpty {
                guard row[i] == UInt8(ascii: ",") else { break }
                i += 1
            }
            guard let (name, after) = name(row, at: i), names.insert(name).inserted else { return nil }
            i = after
            var scalar = true
            var elements = 0
            var integer = true
            if i < row.count, row[i] == UInt8(ascii: "[") {
                scalar = false
                i += 1
            }
            repeat {
                if elements > 0 { i += 1 }  // the `,` between elements
                guard let (number, after) = number(row, at: i) else { return nil }
                if case .double = number { integer = false }
                elements += 1
                i = after
            } while !scalar && i < row.count && row[i] == UInt8(ascii: ",")
            if !scalar {
                guard i < row.count, row[i] == UInt8(ascii: "]") else { return nil }
                i += 1
            }
            var prefix: [UInt8] = members.isEmpty ? [] : [UInt8(ascii: ",")]
            JSONValue.writeString(name, into: &prefix)
            prefix.append(UInt8(ascii: ":"))
            members.append(Member(prefix: prefix, name: name, scalar: scalar, elements: elements, integer: integer))
        }
        guard !members.isEmpty, i == row.count - 1, row[i] == UInt8(ascii: "}") else { return nil }
        return members
    }

    /// Why a row could not be encoded.
    enum Refusal: Error {
        /// Not a flat row of the members' shapes, or its text is not what writing its numbers back gives.
        case notFlat
        /// A value of member `index`, written as `f32`, is not exactly a 32-bit float.
        case notFloat32(Int)
    }

    /// Appends one row's values to a record (`kinds`: each member's column kind), checking that writing them back
    /// gives the row's text.
    static func encode(
        _ row: UnsafeRawBufferPointer, _ members: [Member], kinds: [SnapshotLayout.ColumnKind], into out: inout [UInt8],
        rendered: inout [UInt8]
    ) throws(Refusal) {
        rendered.removeAll(keepingCapacity: true)
        rendered.append(UInt8(ascii: "{"))
        var i = 1
        for m in members.indices {
            let member = members[m]
            guard i + member.prefix.count <= row.count else { throw .notFlat }
            rendered += member.prefix
            i += member.prefix.count
            if !member.scalar {
                guard i < row.count, row[i] == UInt8(ascii: "[") else { throw .notFlat }
                rendered.append(UInt8(ascii: "["))
                i += 1
            }
            for e in 0..<member.elements {
                if e > 0 {
                    guard i < row.count, row[i] == UInt8(ascii: ",") else { throw .notFlat }
                    rendered.append(UInt8(ascii: ","))
                    i += 1
                }
                guard let (number, after) = number(row, at: i) else { throw .notFlat }
                i = after
                switch (number, kinds[m]) {
                case (.integer(let v), .i64):
                    withUnsafeBytes(of: v.littleEndian) { out += $0 }
                    JSONValue.writeInteger(v, into: &rendered)
                case (.double(let d), .f32):
                    let f = Float(d)
                    guard Double(f) == d else { throw .notFloat32(m) }
                    withUnsafeBytes(of: f.bitPattern.littleEndian) { out += $0 }
                    JSONValue.writeNumber(d, into: &rendered)
                case (.double(let d), .f64):
                    withUnsafeBytes(of: d.bitPattern.littleEndian) { out += $0 }
                    JSONValue.writeNumber(d, into: &rendered)
                default: throw .notFlat
                }
            }
            if !member.scalar {
                guard i < row.count, row[i] == UInt8(ascii: "]") else { throw .notFlat }
                rendered.append(UInt8(ascii: "]"))
                i += 1
            }
        }
        rendered.append(UInt8(ascii: "}"))
        guard rendered.count == row.count,
            rendered.withUnsafeBytes({ memcmp($0.baseAddress!, row.baseAddress!, row.count) == 0 })
        else { throw .notFlat }
    }

    /// A name without escapes (`"…"`) followed by `:`, and the offset after the `:`.
    private static func name(_ row: UnsafeRawBufferPointer, at start: Int) -> (String, Int)? {
        guard start < row.count, row[start] == UInt8(ascii: "\"") else { return nil }
        var i = start + 1
        while i < row.count, row[i] != UInt8(ascii: "\"") {
            if row[i] == UInt8(ascii: "\\") || row[i] < 0x20 { return nil }
            i += 1
        }
        guard i + 1 < row.count, row[i + 1] == UInt8(ascii: ":") else { return nil }
        return (String(decoding: UnsafeRawBufferPointer(rebasing: row[(start + 1)..<i]), as: UTF8.self), i + 2)
    }

    /// The number token at `start`, parsed as JSON reads it (an integer when it has neither point nor exponent),
    /// and the offset after it.
    private static func number(_ row: UnsafeRawBufferPointer, at start: Int) -> (Number, Int)? {
        var i = start
        var integer = true
        while i < row.count {
            switch row[i] {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"): break
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "+"): integer = false
            default:
                return i == start ? nil : token(row, start, i, integer)
            }
            i += 1
        }
        return i == start ? nil : token(row, start, i, integer)
    }

    private static func token(_ row: UnsafeRawBufferPointer, _ start: Int, _ end: Int, _ integer: Bool) -> (
        Number, Int
    )? {
        let text = UnsafeRawBufferPointer(rebasing: row[start..<end])
        if integer {
            // Digits with an optional leading `-`; the render check rejects any text read differently ("-0", "007").
            var negative = false
            var i = 0
            if text.first == UInt8(ascii: "-") {
                negative = true
                i = 1
            }
            guard i < text.count else { return nil }
            var magnitude: UInt64 = 0
            while i < text.count {
                let digit = text[i] &- UInt8(ascii: "0")
                guard digit <= 9 else { return nil }
                let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(UInt64(digit))
                guard !o1, !o2 else { return nil }
                magnitude = sum
                i += 1
            }
            if negative {
                guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
                return (.integer(magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)), end)
            }
            guard magnitude <= UInt64(Int64.max) else { return nil }
            return (.integer(Int64(magnitude)), end)
        }
        switch DecimalText.parse(text) {
        case .number(let d)?: return (.double(d), end)
        case .integer?: return nil
        case nil:
            guard let d = Double(String(decoding: text, as: UTF8.self)), d.isFinite else { return nil }
            return (.double(d), end)
        }
    }
}
