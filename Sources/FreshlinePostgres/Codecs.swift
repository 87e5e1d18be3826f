internal import FreshlineCore
internal import PostgresNIO

/// A chunk's keys as the stores keep them: `PackedRows`' layout (UInt32 little-endian length, then the bytes), the
/// same as the SQLite store's and as the outputs'.
enum ChunkCodec {
    static func encode(_ items: some Sequence<some Collection<UInt8>>) -> ByteBuffer {
        ByteBuffer(bytes: PackedRows(items).bytes)
    }

    static func decode(_ buffer: ByteBuffer) throws -> [[UInt8]] {
        guard let rows = PackedRows(packed: Array(buffer: buffer)) else { throw PostgresStoreError.corruptChunk }
        return rows.rows
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
