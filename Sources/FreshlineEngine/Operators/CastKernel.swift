/// Cast between the supported element types, including to and from strings.
///
/// Float-to-integer conversion truncates toward zero; NaN and out-of-range values become the type's minimum
/// (what x86 conversion instructions give onnxruntime), never a trap.
struct CastKernel: Kernel {
    let target: ElementType

    static func make(_ context: NodeContext) throws -> any Kernel {
        try context.requireInputs(1...1)
        guard let code = try context.attributes.int("to") else {
            throw context.error(.invalidArgument, "attribute 'to' is required")
        }
        guard let target = ElementType(onnx: Int32(truncatingIfNeeded: code)) else {
            throw context.error(
                .unsupportedType, "cannot cast to \(ElementType.onnxName(Int32(truncatingIfNeeded: code)))")
        }
        return CastKernel(target: target)
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0, "Cast")
        return [.tensor(Tensor(unchecked: x.shape, try Self.convert(x.data, to: target)))]
    }

    static func convert(_ data: TensorData, to target: ElementType) throws -> TensorData {
        if data.elementType == target { return data }
        if case .string(let strings) = data { return try fromStrings(strings, to: target) }
        if target == .string { return .string(toStrings(data)) }
        if case .bool(let v) = data { return fromDoubles(v.map { $0 ? 1 : 0 }, to: target) }
        switch data {
        case .int64(let v):
            // Integer to integer conversions wrap; int64 → float rounds to nearest.
            switch target {
            case .int32: return .int32(v.map { Int32(truncatingIfNeeded: $0) })
            case .int8: return .int8(v.map { Int8(truncatingIfNeeded: $0) })
            case .uint8: return .uint8(v.map { UInt8(truncatingIfNeeded: $0) })
            case .float: return .float(v.map { Float($0) })
            case .double: return .double(v.map { Double($0) })
            case .bool: return .bool(v.map { $0 != 0 })
            default: break
            }
        case .int32(let v): return integers(v.map { Int64($0) }, to: target)
        case .int8(let v): return integers(v.map { Int64($0) }, to: target)
        case .uint8(let v): return integers(v.map { Int64($0) }, to: target)
        case .float(let v):
            if target == .double { return .double(v.map { Double($0) }) }
            return fromDoubles(v.map { Double($0) }, to: target)
        case .double(let v):
            if target == .float { return .float(v.map { Float($0) }) }
            return fromDoubles(v, to: target)
        default: break
        }
        throw EngineError(.unsupportedType, "Cast from \(data.elementType) to \(target) is not supported")
    }

    private static func integers(_ v: [Int64], to target: ElementType) -> TensorData {
        (try? convert(.int64(v), to: target)) ?? .int64(v)
    }

    private static func fromDoubles(_ v: [Double], to target: ElementType) -> TensorData {
        switch target {
        case .float: .float(v.map { Float($0) })
        case .double: .double(v)
        case .int64: .int64(v.map(truncatingToInt64))
        case .int32: .int32(v.map(truncatingToInt32))
        case .int8: .int8(v.map { Int8(truncatingIfNeeded: truncatingToInt32($0)) })
        case .uint8: .uint8(v.map { UInt8(truncatingIfNeeded: truncatingToInt32($0)) })
        case .bool: .bool(v.map { $0 != 0 })
        case .string: .string(v.map { String($0) })
        }
    }

    /// `Int64(x)` rounded toward zero, with NaN and out-of-range values mapped to `Int64.min`.
    static func truncatingToInt64(_ x: Double) -> Int64 {
        guard x.isFinite, x > -9.223_372_036_854_775_808e18, x < 9.223_372_036_854_775_808e18 else { return .min }
        return Int64(x.rounded(.towardZero))
    }

    /// `Int32(x)` rounded toward zero, with NaN and out-of-range values mapped to `Int32.min`.
    static func truncatingToInt32(_ x: Double) -> Int32 {
        guard x.isFinite, x > -2_147_483_649, x < 2_147_483_648 else { return .min }
        return Int32(x.rounded(.towardZero))
    }

    private static func toStrings(_ data: TensorData) -> [String] {
        switch data {
        case .float(let v): v.map(Self.format)
        case .double(let v): v.map(Self.format)
        case .int64(let v): v.map { String($0) }
        case .int32(let v): v.map { String($0) }
        case .int8(let v): v.map { String($0) }
        case .uint8(let v): v.map { String($0) }
        case .bool(let v): v.map { $0 ? "1" : "0" }
        case .string(let v): v
        }
    }

    /// Shortest round-tripping text, spelled as onnxruntime spells the special values.
    private static func format<T: BinaryFloatingPoint & LosslessStringConvertible>(_ x: T) -> String {
        if x.isNaN { return "NaN" }
        if x.isInfinite { return x < 0 ? "-INF" : "INF" }
        return x.description
    }

    private static func fromStrings(_ v: [String], to target: ElementType) throws -> TensorData {
        func number(_ s: String) throws -> Double {
            let t = s.trimmingCharacters(in: .whitespaces)
            switch t.lowercased() {
            case "nan", "+nan", "-nan": return .nan
            case "inf", "+inf", "infinity", "+infinity": return .infinity
            case "-inf", "-infinity": return -.infinity
            default:
                guard let d = Double(t) else {
                    throw EngineError(.invalidArgument, "Cast: '\(s.prefix(40))' is not a number")
                }
                return d
            }
        }
        switch target {
        case .float: return .float(try v.map { Float(try number($0)) })
        case .double: return .double(try v.map(number))
        case .int64:
            return .int64(
                try v.map { s in
                    if let i = Int64(s.trimmingCharacters(in: .whitespaces)) { return i }
                    return truncatingToInt64(try number(s))
                })
        case .int32, .int8, .uint8:
            let wide = try v.map { s in
                if let i = Int64(s.trimmingCharacters(in: .whitespaces)) { return i }
                return truncatingToInt64(try number(s))
            }
            return integers(wide, to: target)
        case .bool: return .bool(try v.map { try number($0) != 0 })
        case .string: return .string(v)
        }
    }
}

private extension String {
    func trimmingCharacters(in _: WhitespaceSet) -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
    enum WhitespaceSet { case whitespaces }
}
