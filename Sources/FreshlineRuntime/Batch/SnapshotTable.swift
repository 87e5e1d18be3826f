public import FreshlineCore
public import FreshlineEngine

/// A published snapshot held in memory for serving: key → outputs. Immutable once built; a feature swaps the
/// whole table when a newer snapshot is published, so a lookup never touches the database.
public final class SnapshotTable: Sendable {
    /// The snapshot's record.
    public let info: SnapshotInfo
    /// Outputs by entity key.
    public let rows: [String: [String: JSONValue]]

    /// Makes a table from already decoded rows.
    public init(info: SnapshotInfo, rows: [String: [String: JSONValue]]) {
        self.info = info
        self.rows = rows
    }

    /// How answers name the snapshot: `v3`.
    public var label: String { "v\(info.version)" }

    /// Reads a snapshot's chunks from the store and decodes them; later chunks win for repeated keys.
    public static func load(_ info: SnapshotInfo, from store: any BatchStore) async throws -> SnapshotTable {
        let chunks = try await store.chunks(snapshotID: info.id)
        var rows: [String: [String: JSONValue]] = [:]
        rows.reserveCapacity(chunks.reduce(0) { $0 + $1.keys.count })
        for chunk in chunks {
            for (key, bytes) in zip(chunk.keys, chunk.outputs) {
                guard case .object(let outputs) = try JSONValue.parse(bytes) else {
                    throw EntitySourceError(message: "snapshot \(info.id): the row for key '\(key)' is not an object")
                }
                rows[key] = outputs
            }
        }
        return SnapshotTable(info: info, rows: rows)
    }
}
