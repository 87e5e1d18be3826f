/// A byte-level JSON reader and writer for `JSONValue`, for the request path: Foundation's Codable decoding of
/// a generic JSON value tries each scalar type in turn and builds an error for every miss, which made JSON the
/// largest cost of serving a prediction (30% of the server's CPU under load, measured with perf).
extension JSONValue {
    /// Parses one JSON document. Also accepts the bare `NaN`, `Infinity` and `-Infinity` literals that Python's
    /// json module writes. Integers that fit `Int64` stay integers.
    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONParseError) -> JSONValue {
        let array = Array(bytes)
        return try array.withUnsafeBufferPointer { (buffer) throws(JSONParseError) -> JSONValue in
            var reader = JSONByteReader(bytes: buffer)
            let value = try reader.value(depth: 0)
            reader.skipWhitespace()
            guard reader.position == buffer.count else { throw reader.error("unexpected text after the JSON value") }
            return value
        }
    }

    /// Compact JSON text with sorted object keys. Non-finite numbers are written as the strings `"NaN"`,
    /// `"Infinity"`, `"-Infinity"` (JSON has no literal for them).
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(into: &out)
        return out
    }

    /// Appends an integer's decimal digits.
    public static func writeInteger(_ value: Int64, into out: inout [UInt8]) {
        appendInteger(value, to: &out)
    }

    /// Appends a number as `.number` writes it: whole numbers below 10¹⁵ as `N.0`, others in Swift's shortest
    /// round-tripping form; NaN and the infinities as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
    public static func writeNumber(_ d: Double, into out: inout [UInt8]) {
        appendNumber(d, to: &out)
    }

    /// `writeInteger` into any byte output.
    @inline(__always)
    public static func appendInteger<Output: JSONByteOutput & ~Copyable>(_ value: Int64, to out: inout Output) {
        // Digits from the right into 20 bytes on the stack (an Int64 has at most 19, and a sign), then one copy.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var first = buffer.count
            var magnitude = value.magnitude
            repeat {
                first -= 1
                buffer[first] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 {
                first -= 1
                buffer[first] = UInt8(ascii: "-")
            }
            out.append(bytes: UnsafeBufferPointer(rebasing: buffer[first...]))
        }
    }

    /// `writeNumber` into any byte output.
    @inline(__always)
    public static func appendNumber<Output: JSONByteOutput & ~Copyable>(_ d: Double, to out: inout Output) {
        if !d.isFinite {
            var text = d.isNaN ? "\"NaN\"" : d < 0 ? "\"-Infinity\"" : "\"Infinity\""
            text.withUTF8 { out.append(bytes: $0) }
        } else if d == d.rounded(), abs(d) < 1e15 {
            appendInteger(Int64(d), to: &out)
            out.append(UInt8(ascii: "."))
            out.append(UInt8(ascii: "0"))
        } else {
            // The same text as `description`, written straight into `out`: no String per number (its allocation
            // and release were half the cost of writing a batch run's outputs, measured with perf).
            withUnsafeMutablePointer(to: &out) { target in
                var sink = ByteSink(target: target)
                d.write(to: &sink)
            }
        }
    }

    /// Appends the value's compact JSON text (as `serialized()` gives it) to `out`.
    public func write(into out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .integer(let i): Self.writeInteger(i, into: &out)
        case .number(let d): Self.writeNumber(d, into: &out)
        case .string(let s): Self.writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            for (i, key) in object.keys.sorted().enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                object[key]?.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Appends `s` as a JSON string literal.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: "\\n".utf8)
            case UInt8(ascii: "\r"): out.append(contentsOf: "\\r".utf8)
            case UInt8(ascii: "\t"): out.append(contentsOf: "\\t".utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xf)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// Why bytes are not a JSON document: the message names the byte where reading stopped.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// "not valid JSON at byte N: what was expected".
    public var message: String
    /// The byte offset where reading stopped.
    public var position: Int

    public init(message: String, position: Int) {
        self.message = message
        self.position = position
    }

    /// The same words the engine's errors use for bad input: `invalid_input: not valid JSON at byte N: …`.
    public var description: String { "invalid_input: \(message)" }
}

/// The reader behind `JSONValue.parse`: recursive descent over the bytes, depth-limited.
struct JSONByteReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0
    static let maximumDepth = 64

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func error(_ message: String) -> JSONParseError {
        JSONParseError(message: "not valid JSON at byte \(position): \(message)", position: position)
    }

    mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func expect(_ literal: String) throws(JSONParseError) {
        for byte in literal.utf8 {
            guard position < bytes.count, bytes[position] == byte else { throw error("expected '\(literal)'") }
            position += 1
        }
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth < Self.maximumDepth else { throw error("nested too deeply") }
        skipWhitespace()
        guard position < bytes.count else { throw error("unexpected end") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expect("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expect("null")
            return .null
        case UInt8(ascii: "N"):
            try expect("NaN")
            return .number(.nan)
        case UInt8(ascii: "I"):
            try expect("Infinity")
            return .number(.infinity)
        default: return try number()
        }
    }

    private mutating func object(depth: Int) throws(JSONParseError) -> JSONValue {
        position += 1
        var result: [String: JSONValue] = [:]
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
            position += 1
            return .object(result)
        }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw error("expected a key") }
            let key = try string()
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw error("expected ':'") }
            position += 1
            result[key] = try value(depth: depth + 1)
            skipWhitespace()
            guard position < bytes.count else { throw error("unexpected end in an object") }
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
                continue
            }
            guard bytes[position] == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
            position += 1
            return .object(result)
        }
    }

    private mutating func array(depth: Int) throws(JSONParseError) -> JSONValue {
        position += 1
        var result: [JSONValue] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
            position += 1
            return .array(result)
        }
        while true {
            result.append(try value(depth: depth + 1))
            skipWhitespace()
            guard position < bytes.count else { throw error("unexpected end in an array") }
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
                continue
            }
            guard bytes[position] == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
            position += 1
            return .array(result)
        }
    }

    private mutating func number() throws(JSONParseError) -> JSONValue {
        let start = position
        var isInteger = true
        if position < bytes.count, bytes[position] == UInt8(ascii: "-") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "I") {
                try expect("Infinity")
                return .number(-.infinity)
            }
        }
        while position < bytes.count {
            let b = bytes[position]
            if b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") {
                position += 1
            } else if b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E")
                || b == UInt8(ascii: "+")
                || b == UInt8(ascii: "-")
            {
                isInteger = false
                position += 1
            } else {
                break
            }
        }
        guard position > start else { throw error("unexpected character") }
        // Short decimals (nearly all) without making a String; the rest through Swift's own parsing.
        switch DecimalText.parse(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[start..<position]))) {
        case .integer(let i)? where isInteger: return .integer(i)
        case .number(let d)? where !isInteger: return .number(d)
        default: break
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        if isInteger, let i = Int64(text) { return .integer(i) }
        guard let d = Double(text), d.isFinite else { throw error("'\(text.prefix(32))' is not a number") }
        return .number(d)
    }

    private mutating func string() throws(JSONParseError) -> String {
        position += 1
        var utf8: [UInt8] = []
        while position < bytes.count {
            let b = bytes[position]
            position += 1
            switch b {
            case UInt8(ascii: "\""):
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard position < bytes.count else { throw error("unterminated escape") }
                let e = bytes[position]
                position += 1
                switch e {
                case UInt8(ascii: "\""): utf8.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): utf8.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "/"): utf8.append(UInt8(ascii: "/"))
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A surrogate pair: the low half must follow.
                        try expect("\\u")
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("invalid surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                    utf8.append(contentsOf: String(Character(unicode)).utf8)
                default: throw error("invalid escape")
                }
            case 0..<0x20: throw error("control character in a string")
            default: utf8.append(b)
            }
        }
        throw error("unterminated string")
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw error("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[position]
            position += 1
            let digit: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | digit
        }
        return v
    }
}

/// Where JSON text is written: a byte array, or a run's `ByteWriter`.
public protocol JSONByteOutput: ~Copyable {
    mutating func append(_ byte: UInt8)
    mutating func append(bytes: UnsafeBufferPointer<UInt8>)
}

extension Array: JSONByteOutput where Element == UInt8 {
    public mutating func append(bytes: UnsafeBufferPointer<UInt8>) { append(contentsOf: bytes) }
}

/// Bytes appended at a cursor into memory this owns, grown by doubling: a chunk's output text is written with one
/// capacity check per append and none of an array's uniqueness and exclusivity checks. Not copyable: it owns its
/// memory and frees it when it goes.
public struct ByteWriter: ~Copyable, JSONByteOutput {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    public private(set) var count = 0

    public init(capacity: Int) {
        self.capacity = max(64, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    @inline(__always)
    private mutating func reserve(_ n: Int) {
        if count &+ n > capacity { grow(to: count + n) }
    }

    private mutating func grow(to needed: Int) {
        var larger = capacity * 2
        while larger < needed { larger *= 2 }
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: larger)
        moved.initialize(from: base, count: count)
        base.deallocate()
        base = moved
        capacity = larger
    }

    @inline(__always)
    public mutating func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count &+= 1
    }

    @inline(__always)
    public mutating func append(bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress else { return }
        reserve(bytes.count)
        (base + count).initialize(from: source, count: bytes.count)
        count &+= bytes.count
    }

    /// Stores `length` as four little-endian bytes at `offset` (already written).
    public mutating func storeLength(_ length: UInt32, at offset: Int) {
        for i in 0..<4 { base[offset + i] = UInt8(truncatingIfNeeded: length >> (8 * UInt32(i))) }
    }

    /// The bytes written, as an array.
    public func array() -> [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }
}

/// Appends text to a byte output. `Double.write(to:)` hands a stream its shortest digits as ASCII bytes through
/// `_writeASCII` (a requirement of `TextOutputStream`), which this sink copies in without making a String; any other
/// text arrives through `write`.
private struct ByteSink<Output: JSONByteOutput & ~Copyable>: TextOutputStream {
    let target: UnsafeMutablePointer<Output>

    mutating func write(_ string: String) {
        var text = string
        text.withUTF8 { target.pointee.append(bytes: $0) }
    }

    mutating func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) {
        target.pointee.append(bytes: buffer)
    }
}
