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

    /// `[+-]digits[.digits][(e|E)[+-]digits]` with at least one digit before the exponent; integers (no point, no
    /// exponent) come back as `.integer`. `nil` when the text has another form or needs the general path.
    public static func parse(_ raw: UnsafeRawBufferPointer) -> Number? {
        let end = raw.count
        var i = 0
        guard end > 0 else { return nil }
        var negative = false
        if raw[0] == UInt8(ascii: "-") || raw[0] == UInt8(ascii: "+") {
            negative = raw[0] == UInt8(ascii: "-")
            i = 1
        }
        // Digits before and after the point, into one mantissa (at most 19 digits: no overflow).
        var mantissa: UInt64 = 0
        func digits() -> Int {
            let first = i
            while i < end {
                let digit = raw[i] &- 0x30
                if digit > 9 { break }
                mantissa = mantissa &* 10 &+ UInt64(digit)
                i += 1
            }
            return i - first
        }
        var digitCount = digits()
        var fractionDigits = 0
        var sawDot = false
        if i < end && raw[i] == UInt8(ascii: ".") {
            sawDot = true
            i += 1
            fractionDigits = digits()
            digitCount += fractionDigits
        }
        guard digitCount > 0, digitCount <= 19 else { return nil }
        var exponent = 0
        var sawExponent = false
        if i < end {
            guard raw[i] == UInt8(ascii: "e") || raw[i] == UInt8(ascii: "E") else { return nil }
            sawExponent = true
            i += 1
            var expNegative = false
            if i < end && (raw[i] == UInt8(ascii: "-") || raw[i] == UInt8(ascii: "+")) {
                expNegative = raw[i] == UInt8(ascii: "-")
                i += 1
            }
            var expDigits = 0
            while i < end, raw[i] >= 0x30 && raw[i] <= 0x39, expDigits < 5 {
                exponent = exponent * 10 + Int(raw[i] - 0x30)
                expDigits += 1
                i += 1
            }
            guard expDigits > 0, i == end else { return nil }
            if expNegative { exponent = -exponent }
        }
        if !sawDot && !sawExponent {
            guard digitCount <= 18 else { return nil }
            return .integer(negative ? -Int64(mantissa) : Int64(mantissa))
        }
        let scale = exponent - fractionDigits
        guard mantissa < (1 << 53), scale >= -22, scale <= 22 else { return nil }
        var value = Double(mantissa)
        value = scale < 0 ? value / powers[-scale] : value * powers[scale]
        return .number(negative ? -value : value)
    }
}
