import Foundation
import FreshlineJSON
import Testing

@Suite("JSON reader and writer")
struct JSONBytesTests {
    @Test("parses what Foundation parses, the same way")
    func agreesWithFoundation() throws {
        let text =
            #"{"a": [1, -2, 3.5, -0.25e-3, 1.25E-2, 9223372036854775807], "b": {"c": null, "d": true, "e": false},"#
            + #" "s": "q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 ok", "empty": [], "o": {}}"#
        let ours = try JSONValue.parse(Array(text.utf8))
        let foundation = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(ours == foundation)
        guard case .object(let o) = ours, case .string(let s)? = o["s"] else {
            Issue.record("shape")
            return
        }
        #expect(s == "q\"\\/\u{8}\u{c}\n\r\té😀 ok")
    }

    @Test("numbers: the short-decimal fast path gives exactly what Swift's own parsing gives")
    func numbersAgree() throws {
        let numbers = [
            "0", "-0", "7", "-42", "123456789012345678", "1234567890123456789", "9223372036854775807", "0.1", "-0.25",
            "3.141592653589793", "1.123881", "-3.955778", "1e3", "1E-3", "2.5e+10", "1e22", "1e23", "1e-22", "1e-23",
            "9007199254740993.5", "0.30000000000000004", "123456789.123456789", "4.9e-324", "1.7976931348623157e308",
        ]
        let value = try JSONValue.parse(Array(("[" + numbers.joined(separator: ",") + "]").utf8))
        guard case .array(let items) = value, items.count == numbers.count else {
            Issue.record("not an array of \(numbers.count)")
            return
        }
        for (text, item) in zip(numbers, items) {
            let isInteger = !text.contains(where: { ".eE".contains($0) })
            if isInteger, let i = Int64(text) {
                #expect(item == .integer(i), "\(text)")
            } else {
                #expect(item == .number(Double(text)!), "\(text)")
            }
        }
    }

    /// A random cell: on even rounds `length` random bytes of `alphabet`; on odd ones an optional minus and `digits`
    /// whole digits, then (when `point`) a point and `digits` fraction digits.
    static func randomCell(
        round: Int, alphabet: [UInt8], length: ClosedRange<Int>, digits: ClosedRange<Int>, point: Bool,
        using generator: inout SystemRandomNumberGenerator
    ) -> [UInt8] {
        if round % 2 == 0 {
            return (0..<Int.random(in: length, using: &generator)).map { _ in
                alphabet.randomElement(using: &generator)!
            }
        }
        func run() -> [UInt8] {
            (0..<Int.random(in: digits, using: &generator)).map { _ in
                UInt8(ascii: "0") + UInt8.random(in: 0...9, using: &generator)
            }
        }
        var cell = (Bool.random(using: &generator) ? [UInt8(ascii: "-")] : []) + run()
        if point { cell += [UInt8(ascii: ".")] + run() }
        return cell
    }

    @Test("numbers: reading a number where it starts (eight digits at a time) gives what parsing the cell gives")
    func prefixAgrees() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789012345678901234567890123456789.-+eE, x".utf8)
        var checked = 0
        for round in 0..<20000 {
            // Random bytes, or a well-formed decimal of up to 24 digits, then a comma and more text.
            let cell = Self.randomCell(
                round: round, alphabet: alphabet, length: 0...24, digits: 0...12,
                point: Bool.random(using: &generator), using: &generator)
            // Short tails exercise the byte-at-a-time path near the end of the buffer.
            let tail: [UInt8] = round % 3 == 0 ? [] : Array(",123456789".utf8.prefix(round % 11))
            let bytes = cell + tail
            bytes.withUnsafeBytes { raw in
                let (number, stop) = DecimalText.parsePrefix(raw, from: 0, end: raw.count)
                #expect(stop >= 0 && stop <= raw.count)
                let whole = DecimalText.parse(UnsafeRawBufferPointer(rebasing: raw[0..<stop]))
                if let number {
                    checked += 1
                    #expect(number == whole, "\(String(decoding: bytes, as: UTF8.self))")
                    if case .number(let d) = number {
                        let text = String(decoding: raw[0..<stop], as: UTF8.self)
                        #expect(d == Double(text), "\(text)")
                    }
                } else if stop == cell.count, !cell.isEmpty, tail.first.map({ $0 == UInt8(ascii: ",") }) ?? true {
                    // A whole cell the prefix reader declined: only an exponent or too many digits may be why.
                    let text = String(decoding: cell, as: UTF8.self)
                    #expect(whole == nil, "\(text)")
                }
            }
        }
        #expect(checked > 5000)
    }

    @Test(
        "shortDecimal and shortDecimalCell read exactly the cells of form [-]d{1,7}.d{1,7}, with parse's value (the cell's end found by shortDecimalCell), and decline the rest"
    )
    func shortDecimalAgrees() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789012345678901234567890123456789..--+eE x".utf8)
        var taken = 0
        for round in 0..<20000 {
            let cell = Self.randomCell(
                round: round, alphabet: alphabet, length: 0...18, digits: 0...9, point: round % 5 != 0,
                using: &generator)
            // The cell sits between commas, or ends its row (a line break after it), with enough bytes after it to
            // read; or it is near the end of the bytes (declined).
            let after: [UInt8] =
                round % 7 == 0 ? [] : Array((round % 3 == 1 ? "\n1234567890123456789" : ",1234567890123456789").utf8)
            let bytes = Array(",".utf8) + cell + after
            let rowEnd = round % 3 == 1 ? 1 + cell.count : bytes.count
            let text = String(decoding: cell, as: UTF8.self)
            let shaped = text.wholeMatch(of: /-?[0-9]{1,7}\.[0-9]{1,7}/) != nil
            bytes.withUnsafeBufferPointer { buffer in
                let value = DecimalText.shortDecimal(
                    buffer.baseAddress!, from: 1, end: 1 + cell.count, readable: buffer.count)
                if let value {
                    taken += 1
                    #expect(shaped, "\(text)")
                    #expect(value == Double(text) && value.sign == Double(text)!.sign, "\(text)")
                } else if !after.isEmpty {
                    #expect(!shaped, "\(text) was declined")
                }
                let found = DecimalText.shortDecimalCell(
                    buffer.baseAddress!, from: 1, rowEnd: rowEnd, readable: buffer.count)
                #expect(found?.value.bitPattern == value?.bitPattern, "\(text)")
                if let found { #expect(found.end == 1 + cell.count, "\(text)") }
            }
        }
        #expect(taken > 3000)
    }

    @Test("accepts Python's non-finite literals")
    func nonFinite() throws {
        let value = try JSONValue.parse(Array("[NaN, Infinity, -Infinity, 1]".utf8))
        guard case .array(let items) = value else {
            Issue.record("not an array")
            return
        }
        #expect(items[0].doubleValue?.isNaN == true)
        #expect(items[1] == .number(.infinity))
        #expect(items[2] == .number(-.infinity))
        #expect(items[3] == .integer(1))
    }

    @Test(
        "rejects malformed text with a position",
        arguments: ["{", "[1,]", "{\"a\" 1}", "\"abc", "tru", "1 2", "[1e]", "{\"a\":1,}", "\"\\x\""])
    func malformed(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test("deep nesting is refused, not a stack overflow")
    func depth() {
        let text = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test("written text reads back to the same value")
    func roundTrip() throws {
        let value: JSONValue = .object([
            "n": .number(0.30000001192092896), "i": .integer(-42), "w": .number(3), "s": .string("a\"b\\c\n\u{1}"),
            "l": .array([.null, .bool(true), .bool(false)]), "nan": .number(.nan),
        ])
        let text = value.serialized()
        let back = try JSONValue.parse(text)
        guard case .object(let o) = back else {
            Issue.record("not an object")
            return
        }
        #expect(o["n"] == .number(0.30000001192092896))
        #expect(o["i"] == .integer(-42))
        #expect(o["w"] == .number(3))
        #expect(o["s"] == .string("a\"b\\c\n\u{1}"))
        #expect(o["l"] == .array([.null, .bool(true), .bool(false)]))
        #expect(o["nan"] == .string("NaN"))
        // Foundation reads the same text (it may type "3.0" as an integer: same number).
        let foundation = try JSONDecoder().decode(JSONValue.self, from: Data(text))
        guard case .object(let f) = foundation else {
            Issue.record("Foundation: not an object")
            return
        }
        #expect(f["w"]?.doubleValue == 3)
        #expect(f["s"] == .string("a\"b\\c\n\u{1}"))
    }

    @Test("a number's text is its shortest round-trip form, as `description` writes it")
    func numberText() {
        var generator = SystemRandomNumberGenerator()
        var values: [Double] = [0.1, -0.0, 1e15, 1e-7, 123_456.789, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
        for _ in 0..<20_000 {
            values.append(Double(bitPattern: generator.next()))  // any bit pattern, NaNs and infinities included
            values.append(Double(Float.random(in: -3...3, using: &generator)))  // FP32 outputs, as models give them
        }
        for value in values {
            var out: [UInt8] = [UInt8(ascii: "[")]
            JSONValue.writeNumber(value, into: &out)
            let expected: String
            if value.isNaN {
                expected = "\"NaN\""
            } else if value.isInfinite {
                expected = value < 0 ? "\"-Infinity\"" : "\"Infinity\""
            } else if value == value.rounded(), abs(value) < 1e15 {
                expected = "\(Int64(value)).0"
            } else {
                expected = value.description
            }
            #expect(String(decoding: out.dropFirst(), as: UTF8.self) == expected, "\(value.bitPattern)")
            #expect(out.first == UInt8(ascii: "["))
        }
    }
}
