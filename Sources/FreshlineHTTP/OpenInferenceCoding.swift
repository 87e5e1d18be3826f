internal import Foundation
internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import HTTPTypes

/// Conversions between the Open Inference Protocol's tensors (JSON and binary) and the engine's.
enum OpenInferenceCoding {
    static func datatype(_ type: ElementType, _ valueType: ModelMetadata.ValueType) -> String {
        if case .mapSequence = valueType { return "BYTES" }
        switch type {
        case .float: return "FP32"
        case .double: return "FP64"
        case .int64: return "INT64"
        case .int32: return "INT32"
        case .int8: return "INT8"
        case .uint8: return "UINT8"
        case .bool: return "BOOL"
        case .string: return "BYTES"
        }
    }

    static func elementType(_ datatype: String) -> ElementType? {
        switch datatype {
        case "FP32": .float
        case "FP64": .double
        case "INT64": .int64
        case "INT32": .int32
        case "INT8": .int8
        case "UINT8": .uint8
        case "BOOL": .bool
        case "BYTES": .string
        default: nil
        }
    }

    /// Outputs as OIP tensors; ZipMap's maps become one JSON text per row (BYTES).
    ///
    /// Not optimized: Swift 6.3.1's CopyPropagation pass crashes on this function in release builds
    /// ("Found ownership error"); it runs once per response and costs nothing measurable unoptimized.
    @_optimize(none)
    static func tensorForm(_ value: Value) throws -> (tensor: Tensor, datatype: String) {
        switch value {
        case .tensor(let t):
            return (t, datatype(t.elementType, .tensor(t.elementType, shape: nil)))
        case .mapSequence(let maps):
            // The same per-row objects the /v1 API returns, written by the one JSON writer.
            let rows = try RowBatch.rows(outputs: ["map": value], count: maps.count).map {
                String(decoding: ($0["map"] ?? .null).serialized(), as: UTF8.self)
            }
            return (try Tensor(shape: [rows.count], strings: rows), "BYTES")
        }
    }

    static func flatten(_ value: JSONValue, into out: inout [JSONValue]) {
        if case .array(let items) = value { for item in items { flatten(item, into: &out) } } else { out.append(value) }
    }

    static func decodeBinary(_ data: Data, datatype: String, name: String) throws -> TensorData {
        func fixed<T: FixedWidthInteger>(_: T.Type) throws -> [T] {
            guard data.count % MemoryLayout<T>.size == 0 else {
                throw V2Error(.badRequest, "input '\(name)': binary data is not a whole number of \(datatype) values")
            }
            return data.withUnsafeBytes { raw in
                (0..<(data.count / MemoryLayout<T>.size)).map {
                    T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))
                }
            }
        }
        switch datatype {
        case "FP32": return .float(try fixed(UInt32.self).map(Float.init(bitPattern:)))
        case "FP64": return .double(try fixed(UInt64.self).map(Double.init(bitPattern:)))
        case "INT64": return .int64(try fixed(Int64.self))
        case "INT32": return .int32(try fixed(Int32.self))
        case "INT8": return .int8(try fixed(Int8.self))
        case "UINT8": return .uint8(try fixed(UInt8.self))
        case "BOOL": return .bool(try fixed(UInt8.self).map { $0 != 0 })
        case "BYTES":
            // Each element: a 4-byte little-endian length, then that many bytes.
            var strings: [String] = []
            var offset = 0
            let bytes = [UInt8](data)
            while offset < bytes.count {
                guard offset + 4 <= bytes.count else {
                    throw V2Error(.badRequest, "input '\(name)': truncated BYTES element")
                }
                let length = Int(
                    UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(
                        bytes[offset + 3]) << 24)
                offset += 4
                guard length <= bytes.count - offset else {
                    throw V2Error(.badRequest, "input '\(name)': truncated BYTES element")
                }
                strings.append(String(decoding: bytes[offset..<(offset + length)], as: UTF8.self))
                offset += length
            }
            return .string(strings)
        default: throw V2Error(.badRequest, "input '\(name)': datatype \(datatype) is not supported")
        }
    }

    static func encodeBinary(_ data: TensorData) -> Data {
        var out = Data()
        func append<T: FixedWidthInteger>(_ values: [T]) {
            out.reserveCapacity(values.count * MemoryLayout<T>.size)
            for v in values { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        }
        switch data {
        case .float(let v): append(v.map(\.bitPattern))
        case .double(let v): append(v.map(\.bitPattern))
        case .int64(let v): append(v)
        case .int32(let v): append(v)
        case .int8(let v): append(v)
        case .uint8(let v): append(v)
        case .bool(let v): append(v.map { UInt8($0 ? 1 : 0) })
        case .string(let v):
            for s in v {
                let utf8 = Array(s.utf8)
                append([UInt32(utf8.count)])
                out.append(contentsOf: utf8)
            }
        }
        return out
    }

}
