/// The elements of a tensor in row-major order, one case per supported element type.
public enum TensorData: Sendable, Equatable {
    case float([Float])
    case double([Double])
    case int64([Int64])
    case int32([Int32])
    case int8([Int8])
    case uint8([UInt8])
    case bool([Bool])
    case string([String])

    /// The element type of the stored values.
    public var elementType: ElementType {
        switch self {
        case .float: .float
        case .double: .double
        case .int64: .int64
        case .int32: .int32
        case .int8: .int8
        case .uint8: .uint8
        case .bool: .bool
        case .string: .string
        }
    }

    /// The number of stored elements.
    public var count: Int {
        switch self {
        case .float(let v): v.count
        case .double(let v): v.count
        case .int64(let v): v.count
        case .int32(let v): v.count
        case .int8(let v): v.count
        case .uint8(let v): v.count
        case .bool(let v): v.count
        case .string(let v): v.count
        }
    }

    /// Elements picked by index: `result[i] = self[indices[i]]`. The type-agnostic core of Gather,
    /// Transpose, TopK and the other operators that only move elements.
    public func selecting(_ indices: [Int]) -> TensorData {
        switch self {
        case .float(let v): .float(indices.map { v[$0] })
        case .double(let v): .double(indices.map { v[$0] })
        case .int64(let v): .int64(indices.map { v[$0] })
        case .int32(let v): .int32(indices.map { v[$0] })
        case .int8(let v): .int8(indices.map { v[$0] })
        case .uint8(let v): .uint8(indices.map { v[$0] })
        case .bool(let v): .bool(indices.map { v[$0] })
        case .string(let v): .string(indices.map { v[$0] })
        }
    }

    /// Contiguous runs copied in order: each `(source, start, length)` appends `sources[source][start..<start+length]`.
    /// All sources must share this value's element type (checked by the caller).
    static func concatenating(_ sources: [TensorData], runs: [(source: Int, start: Int, length: Int)]) -> TensorData {
        func join<T>(_ arrays: [[T]]) -> [T] {
            // One source (Gather, GatherElements): copy each run through pointers, without a slice per run.
            if arrays.count == 1 {
                let total = runs.reduce(0) { $0 + $1.length }
                guard total > 0 else { return [] }
                return arrays[0].withUnsafeBufferPointer { source in
                    [T](unsafeUninitializedCapacity: total) { out, initialized in
                        var offset = 0
                        for run in runs {
                            (out.baseAddress! + offset).initialize(
                                from: source.baseAddress! + run.start, count: run.length)
                            offset += run.length
                        }
                        initialized = total
                    }
                }
            }
            var out: [T] = []
            out.reserveCapacity(runs.reduce(0) { $0 + $1.length })
            for run in runs { out.append(contentsOf: arrays[run.source][run.start..<(run.start + run.length)]) }
            return out
        }
        switch sources[0] {
        case .float: return .float(join(sources.map { if case .float(let v) = $0 { v } else { [] } }))
        case .double: return .double(join(sources.map { if case .double(let v) = $0 { v } else { [] } }))
        case .int64: return .int64(join(sources.map { if case .int64(let v) = $0 { v } else { [] } }))
        case .int32: return .int32(join(sources.map { if case .int32(let v) = $0 { v } else { [] } }))
        case .int8: return .int8(join(sources.map { if case .int8(let v) = $0 { v } else { [] } }))
        case .uint8: return .uint8(join(sources.map { if case .uint8(let v) = $0 { v } else { [] } }))
        case .bool: return .bool(join(sources.map { if case .bool(let v) = $0 { v } else { [] } }))
        case .string: return .string(join(sources.map { if case .string(let v) = $0 { v } else { [] } }))
        }
    }

    /// An array of `count` zero values (`""` and `false` for strings and booleans).
    public static func zeros(_ type: ElementType, count: Int) -> TensorData {
        switch type {
        case .float: .float(Array(repeating: 0, count: count))
        case .double: .double(Array(repeating: 0, count: count))
        case .int64: .int64(Array(repeating: 0, count: count))
        case .int32: .int32(Array(repeating: 0, count: count))
        case .int8: .int8(Array(repeating: 0, count: count))
        case .uint8: .uint8(Array(repeating: 0, count: count))
        case .bool: .bool(Array(repeating: false, count: count))
        case .string: .string(Array(repeating: "", count: count))
        }
    }
}
