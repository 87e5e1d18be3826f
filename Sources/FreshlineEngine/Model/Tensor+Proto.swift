public import Foundation
internal import SwiftProtobuf

extension Tensor {
    /// Decodes an ONNX `TensorProto` (an initializer, a Constant's value, or a test-data `.pb` file's contents).
    ///
    /// The element count is checked against the declared shape before anything is allocated, so a small file
    /// cannot make the engine allocate a huge tensor.
    init(proto: Onnx_TensorProto) throws {
        let label = proto.name.isEmpty ? "tensor" : "tensor '\(proto.name)'"
        guard proto.dataLocation == .default, proto.externalData.isEmpty else {
            throw EngineError(.malformedModel, "\(label) keeps its data in an external file, which is not supported")
        }
        guard !proto.hasSegment else {
            throw EngineError(.malformedModel, "\(label) is a segment of a larger tensor, which is not supported")
        }
        var shape: [Int] = []
        for d in proto.dims {
            guard d >= 0, d <= Int64(Shape.maximumElementCount) else {
                throw EngineError(.invalidShape, "\(label) has dimension \(d)")
            }
            shape.append(Int(d))
        }
        let count: Int
        do { count = try Shape.elementCount(shape) } catch {
            throw EngineError(error.code, "\(label): \(error.message)")
        }
        guard let type = ElementType(onnx: proto.dataType) else {
            throw EngineError(.unsupportedType, "\(label) has element type \(ElementType.onnxName(proto.dataType))")
        }
        let raw = proto.rawData
        let data: TensorData
        func check(_ n: Int) throws {
            guard n == count else {
                throw EngineError(.malformedModel, "\(label) has shape \(shape) (\(count) elements) but holds \(n)")
            }
        }
        switch type {
        case .float:
            if !raw.isEmpty {
                data = .float(try Self.decode(raw, count: count, label: label))
            } else {
                try check(proto.floatData.count)
                data = .float(proto.floatData)
            }
        case .double:
            if !raw.isEmpty {
                data = .double(try Self.decode(raw, count: count, label: label))
            } else {
                try check(proto.doubleData.count)
                data = .double(proto.doubleData)
            }
        case .int64:
            if !raw.isEmpty {
                data = .int64(try Self.decode(raw, count: count, label: label))
            } else {
                try check(proto.int64Data.count)
                data = .int64(proto.int64Data)
            }
        case .int32:
            if !raw.isEmpty {
                data = .int32(try Self.decode(raw, count: count, label: label))
            } else {
                try check(proto.int32Data.count)
                data = .int32(proto.int32Data)
            }
        case .int8:
            if !raw.isEmpty {
                data = .int8(try Self.decode(raw, count: count, label: label))
            } else {
                try check(proto.int32Data.count)
                data = .int8(proto.int32Data.map { Int8(truncatingIfNeeded: $0) })
            }
        case .uint8:
            if !raw.isEmpty {
                data = .uint8(try Self.decode(raw, count: count, label: label))
            } else {
                try check(proto.int32Data.count)
                data = .uint8(proto.int32Data.map { UInt8(truncatingIfNeeded: $0) })
            }
        case .bool:
            if !raw.isEmpty {
                data = .bool(try Self.decode(raw, count: count, label: label).map { (b: UInt8) in b != 0 })
            } else {
                try check(proto.int32Data.count)
                data = .bool(proto.int32Data.map { $0 != 0 })
            }
        case .string:
            try check(proto.stringData.count)
            data = .string(proto.stringData.map { String(decoding: $0, as: UTF8.self) })
        }
        self.init(unchecked: shape, data)
    }

    /// Little-endian fixed-width elements from `raw_data`.
    private static func decode<T: FixedWidthInteger>(_ raw: Data, count: Int, label: String) throws -> [T] {
        guard raw.count == count * MemoryLayout<T>.size else {
            throw EngineError(
                .malformedModel, "\(label): raw_data has \(raw.count) bytes, expected \(count * MemoryLayout<T>.size)")
        }
        return raw.withUnsafeBytes { buffer in
            (0..<count).map {
                T(littleEndian: buffer.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))
            }
        }
    }

    private static func decode(_ raw: Data, count: Int, label: String) throws -> [Float] {
        let bits: [UInt32] = try decode(raw, count: count, label: label)
        return bits.map(Float.init(bitPattern:))
    }

    private static func decode(_ raw: Data, count: Int, label: String) throws -> [Double] {
        let bits: [UInt64] = try decode(raw, count: count, label: label)
        return bits.map(Double.init(bitPattern:))
    }

    /// Reads a serialized `TensorProto` (the `.pb` files of the ONNX backend test data).
    public init(serializedTensorProto data: Data) throws {
        let proto: Onnx_TensorProto
        do { proto = try Onnx_TensorProto(serializedBytes: data) } catch {
            throw EngineError(.malformedModel, "not a TensorProto: \(error)")
        }
        try self.init(proto: proto)
    }
}
