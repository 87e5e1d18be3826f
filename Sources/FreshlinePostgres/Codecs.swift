internal import PostgresNIO

/// Length-prefixed byte strings (UInt32 little-endian length, then the bytes): the encoding of a chunk's keys and
/// outputs, the same layout as the SQLite store's.
enum ChunkCodec {
    static func encode(_ items: some Sequence<some Collection<UInt8>>) -> ByteBuffer {
        var buffer = ByteBuffer()
        for item in items {
            buffer.writeInteger(UInt32(item.count), endianness: .little)
            buffer.writeBytes(item)
        }
        return buffer
    }

    static func decode(_ buffer: ByteBuffer) throws -> [[UInt8]] {
        var buffer = buffer
        var items: [[UInt8]] = []
        while buffer.readableBytes > 0 {
            guard let length = buffer.readInteger(endianness: .little, as: UInt32.self),
                let item = buffer.readBytes(length: Int(length))
            else { throw PostgresStoreError.corruptChunk }
            items.append(item)
        }
        return items
    }
}

/// A one-dimensional array bind whose elements may be NULL (PostgresNIO's `Array` encoding has no NULL elements),
/// for `UNNEST` inserts of optional columns.
struct NullableArray<Element: PostgresArrayEncodable & PostgresNonThrowingEncodable>: PostgresNonThrowingEncodable {
    var elements: [Element?]

    init(_ elements: [Element?]) {
        self.elements = elements
    }

    static var psqlType: PostgresDataType { Element.psqlArrayType }
    static var psqlFormat: PostgresFormat { .binary }

    /// The binary array format: dimensions, has-NULLs flag, element type, then (length, lower bound) for the one
    /// dimension and each element as its byte length (-1: NULL) and bytes.
    func encode<JSONEncoder: PostgresJSONEncoder>(
        into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>
    ) {
        buffer.writeInteger(elements.isEmpty ? 0 : 1, as: Int32.self)
        buffer.writeInteger(elements.contains { $0 == nil } ? 1 : 0, as: Int32.self)
        buffer.writeInteger(Element.psqlType.rawValue)
        guard !elements.isEmpty else { return }
        buffer.writeInteger(Int32(elements.count))
        buffer.writeInteger(1, as: Int32.self)
        for element in elements {
            guard let element else {
                buffer.writeInteger(-1, as: Int32.self)
                continue
            }
            let lengthIndex = buffer.writerIndex
            buffer.writeInteger(0, as: Int32.self)
            let start = buffer.writerIndex
            element.encode(into: &buffer, context: context)
            buffer.setInteger(Int32(buffer.writerIndex - start), at: lengthIndex)
        }
    }
}

extension ByteBuffer {
    /// The readable bytes as an array.
    var bytes: [UInt8] { Array(readableBytesView) }
}
