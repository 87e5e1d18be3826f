import Foundation
public import FreshlineCore
import FreshlineRuntime
public import FreshlineSnapshot

/// A published snapshot's rows as tests read them: from its file once sealed (the seal drops the chunks), else from
/// the store's chunks.
public enum SnapshotRows {
    /// The snapshot folder `StoreSet` uses for an SQLite store at `path`: `state.sqlite` → `state.snapshots`.
    public static func directory(forSQLite path: String) -> String {
        URL(fileURLWithPath: path).deletingPathExtension().path + ".snapshots"
    }

    /// The snapshot's file in `directory` (its own, or materialised from the store), read as a server would.
    public static func file(_ store: any BatchStore, _ info: SnapshotInfo, directory: String) async throws
        -> SnapshotFile
    {
        try await SnapshotStorage(store: store, directory: directory).open(info)
    }

    /// Key → outputs JSON text, as served (a key written twice: its later row).
    public static func read(_ store: any BatchStore, _ info: SnapshotInfo, directory: String?) async throws
        -> [String: String]
    {
        var rows: [String: String] = [:]
        let current = try await store.snapshot(id: info.id) ?? info
        if current.file != nil, let directory {
            let file = try await Self.file(store, current, directory: directory)
            for row in file.rows where file.isLive(row: row) {
                rows[file.key(row: row)] = String(decoding: file.json(row: row), as: UTF8.self)
            }
            return rows
        }
        for chunk in try await store.chunks(snapshotID: info.id) {
            for (key, output) in zip(chunk.keys, chunk.packedOutputs.rows) {
                rows[key] = String(decoding: output, as: UTF8.self)
            }
        }
        return rows
    }
}
