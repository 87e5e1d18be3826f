/// Decimal text read straight from bytes, for the common short forms: an integer of at most 18 digits, or a
/// decimal whose digits fit a 2⁵³ mantissa scaled by a power of ten up to 10²² — Clinger's fast path, where one
/// multiplication or division of exact values is correctly rounded, so the result equals `Double(text)`. Anything
/// else (long mantissas, large exponents, `nan`, hex) is left to the caller's general path (`nil`).
public enum DecimalText {
    public enum Number: Equatable, Sendable {
        case integer(Int64)
        case number(Double)
    }

    /// 10⁰…10²², all exact in a Double; a literal table, so reading it needs no lazy initialisation.
    static let powers: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ]

    /// The number that starts at `start` and ends before the first byte of `start..<end` that is not part of
    /// `[+-]digits[.digits]`, and where it ends — for readers that find a cell's end while parsing it (the batch
    /// runner's CSV rows). The value is `parse`'s for the bytes `start..<stop`; `nil` when `parse` would leave them
    /// to the general path, or when an exponent follows (the caller then parses the whole cell). Digits are read
    /// eight at a time (SWAR), so the length of a run of digits costs no branch per digit. Bytes up to 8 past a run
    /// may be read, but only within `raw`.
    @inline(__always)
    public static func parsePrefix(_ raw: UnsafeRawBufferPointer, from start: Int, end: Int) -> (Number?, Int) {
        let (significand, stop) = significand(raw, from: start, end: end)
        if stop < end && (raw[stop] | 0x20) == UInt8(ascii: "e") { return (nil, stop) }
        return (number(significand, exponent: nil), stop)
    }

    /// `[+-]digits[.digits]`: its digits as one mantissa, counted, and whether it had a point.
    struct Significand {
        var mantissa: UInt64 = 0
        var digitCount = 0
        var fractionDigits = 0
        var negative = false
        var sawDot = false
    }

    /// Reads `[+-]digits[.digits]` from `start`, stopping at the first byte of `start..<end` outside it (or once
    /// more than 19 digits are read: the general path's); returns it and where it stopped.
    @inline(__always)
    static func significand(_ raw: UnsafeRawBufferPointer, from start: Int, end: Int) -> (Significand, Int) {
        var i = start
        guard i < end else { return (Significand(), i) }
        let first = raw[i]
        let negative = first == UInt8(ascii: "-")
        if negative || first == UInt8(ascii: "+") { i += 1 }
        // Plain locals, not the struct's fields: a nested function mutating a captured struct is not inlined and
        // pays exclusivity checks per call (perf: 6% of a batch run).
        var mantissa: UInt64 = 0
        var digitCount = 0
        // Runs of at most 8 digits; more than 19 in all is the general path's (and stops the loop).
        func digits() {
            while true {
                let (value, count) = eightDigits(raw, at: i, end: end)
                mantissa = mantissa &* smallPowers[count] &+ value
                digitCount += count
                i += count
                if count < 8 || digitCount > 19 { return }
            }
        }
        digits()
        var fractionDigits = 0
        var sawDot = false
        if i < end && raw[i] == UInt8(ascii: ".") {
            sawDot = true
            i += 1
            let before = digitCount
            digits()
            fractionDigits = digitCount - before
        }
        let significand = Significand(
            mantissa: mantissa, digitCount: digitCount, fractionDigits: fractionDigits, negative: negative,
            sawDot: sawDot)
        return (significand, i)
    }

    /// The value of a significand times 10^`exponent` (`nil`: no exponent was written) when Clinger's fast path
    /// gives it exactly; an integer when neither a point nor an exponent was written.
    @inline(__always)
    static func number(_ s: Significand, exponent: Int?) -> Number? {
        guard s.digitCount > 0, s.digitCount <= 19 else { return nil }
        if !s.sawDot && exponent == nil {
            guard s.digitCount <= 18 else { return nil }
            return .integer(s.negative ? -Int64(s.mantissa) : Int64(s.mantissa))
        }
        let scale = (exponent ?? 0) - s.fractionDigits
        guard s.mantissa < (1 << 53), scale >= -22, scale <= 22 else { return nil }
        var value = Double(s.mantissa)
        value = scale < 0 ? value / powers[-scale] : value * powers[scale]
        return .number(s.negative ? -value : value)
    }

    /// 10⁰…10⁸ as integers.
    static let smallPowers: [UInt64] = [1, 10, 100, 1000, 10000, 100_000, 1_000_000, 10_000_000, 100_000_000]

    /// The value and count of the decimal digits at `i` (at most 8, none at or past `end`). With 8 bytes readable,
    /// one load (`digitRun`, `digitValue`).
    @inline(__always)
    static func eightDigits(_ raw: UnsafeRawBufferPointer, at i: Int, end: Int) -> (UInt64, Int) {
        guard i + 8 <= raw.count else {
            var value: UInt64 = 0
            var j = i
            while j < end && j < i + 8 {
                let digit = raw[j] &- 0x30
                if digit > 9 { break }
                value = value &* 10 &+ UInt64(digit)
                j += 1
            }
            return (value, j - i)
        }
        let x = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        let count = min(digitRun(x), max(0, end - i))
        guard count > 0 else { return (0, 0) }
        return (digitValue(x, count: count), count)
    }

    /// How many of the 8 bytes of `x` (little-endian, first byte lowest) are decimal digits before the first that is
    /// not: a byte is a digit when its high nibble is 3 both as is and plus 6 (a carry out of a byte above 0xF9 can
    /// only disturb bytes after the first non-digit).
    @inline(__always)
    static func digitRun(_ x: UInt64) -> Int {
        let nibbles: UInt64 = 0xF0F0_F0F0_F0F0_F0F0
        let threes: UInt64 = 0x3030_3030_3030_3030
        let bad = ((x & nibbles) ^ threes) | (((x &+ 0x0606_0606_0606_0606) & nibbles) ^ threes)
        return bad.trailingZeroBitCount &>> 3
    }

    /// The value of the first `count` (1…8) bytes of `x`, all digits: shifted to the top (so the missing ones read
    /// as leading zeros) and combined pairwise in three multiplications.
    @inline(__always)
    static func digitValue(_ x: UInt64, count: Int) -> UInt64 {
        var v = (x & 0x0F0F_0F0F_0F0F_0F0F) &<< UInt64(8 &* (8 &- count))
        v = (v &* 2561) &>> 8
        v = ((v & 0x00FF_00FF_00FF_00FF) &* 6_553_601) &>> 16
        v = ((v & 0x0000_FFFF_0000_FFFF) &* 42_949_672_960_001) &>> 32
        return v
    }

    /// The value of the cell `start..<end` when it is exactly `[-]d{1,7}.d{1,7}` — the shape most numeric CSV cells
    /// have — else `nil` (the caller reads it the general way); equal to `parse`'s. The cell must end at a delimiter
    /// (the byte at `end` is no digit). Needs 8 bytes readable from the first digit and from the point (`readable`:
    /// how many bytes `base` has).
    @inline(__always)
    public static func shortDecimal(_ base: UnsafePointer<UInt8>, from start: Int, end: Int, readable: Int) -> Double? {
        guard let cell = shortDecimalCell(base, from: start, rowEnd: end, readable: readable), cell.end == end else {
            return nil
        }
        return cell.value
    }

    /// `shortDecimal` for a cell whose end is not known yet, in a row of comma-separated cells that ends at
    /// `rowEnd`: the value of the cell at `start` and where it ends (its comma, or `rowEnd`) when it is exactly
    /// `[-]d{1,7}.d{1,7}`, else `nil`. The digit runs that read the number also find its end, so a caller need not
    /// search for the comma first. Built for throughput: two loads, no branch on the digit counts or the sign, so
    /// the processor overlaps consecutive cells.
    @inline(__always)
    public static func shortDecimalCell(_ base: UnsafePointer<UInt8>, from start: Int, rowEnd: Int, readable: Int)
        -> (value: Double, end: Int)?
    {
        guard start < rowEnd else { return nil }
        let negative = base[start] == UInt8(ascii: "-")
        let i = start &+ (negative ? 1 : 0)
        guard i &+ 16 <= readable else { return nil }
        let whole = UInt64(littleEndian: UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self))
        let wholeDigits = digitRun(whole)
        let point = i &+ wholeDigits
        guard wholeDigits > 0, wholeDigits < 8, base[point] == UInt8(ascii: ".") else { return nil }
        let tail = UInt64(littleEndian: UnsafeRawPointer(base + (point &+ 1)).loadUnaligned(as: UInt64.self))
        let fractionDigits = digitRun(tail)
        let end = point &+ 1 &+ fractionDigits
        guard fractionDigits > 0, fractionDigits < 8, end <= rowEnd,
            end == rowEnd || base[end] == UInt8(ascii: ",")
        else { return nil }
        // At most 14 digits: exact in a Double, and so is 10^fractionDigits, so the division rounds correctly.
        let mantissa =
            digitValue(whole, count: wholeDigits) &* smallPowers[fractionDigits]
            &+ digitValue(tail, count: fractionDigits)
        let magnitude = Double(Int64(bitPattern: mantissa)) / powers[fractionDigits]
        let sign = UInt64(negative ? 1 : 0) &<< 63
        return (Double(bitPattern: magnitude.bitPattern | sign), end)
    }

    /// `[+-]digits[.digits][(e|E)[+-]digits]` with at least one digit before the exponent; integers (no point, no
    /// exponent) come back as `.integer`. `nil` when the text has another form or needs the general path.
    public static func parse(_ raw: UnsafeRawBufferPointer) -> Number? {
        let end = raw.count
        let (significand, stop) = significand(raw, from: 0, end: end)
        var i = stop
        guard i < end else { return number(significand, exponent: nil) }
        guard raw[i] == UInt8(ascii: "e") || raw[i] == UInt8(ascii: "E") else { return nil }
        i += 1
        var expNegative = false
        if i < end && (raw[i] == UInt8(ascii: "-") || raw[i] == UInt8(ascii: "+")) {
            expNegative = raw[i] == UInt8(ascii: "-")
            i += 1
        }
        var exponent = 0
        var expDigits = 0
        while i < end, raw[i] >= 0x30 && raw[i] <= 0x39, expDigits < 5 {
            exponent = exponent * 10 + Int(raw[i] - 0x30)
            expDigits += 1
            i += 1
        }
        guard expDigits > 0, i == end else { return nil }
        return number(significand, exponent: expNegative ? -exponent : exponent)
    }
}
