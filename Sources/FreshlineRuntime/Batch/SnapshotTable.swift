internal import Foundation
public import FreshlineCore
internal import FreshlineEngine
public import FreshlineJSON
public import FreshlineSnapshot

/// A published snapshot held for serving: key → outputs. Immutable once made; a feature swaps the whole table when
/// a newer snapshot is published, so a lookup never touches the database.
///
/// Served from a snapshot file mapped into memory (docs/snapshots.md): opening costs the same at any size, and the
/// process holds only the pages its lookups touch. A table of decoded rows remains for callers without a snapshot
/// folder (tests, a runtime without a store).
public final class SnapshotTable: Sendable {
    /// The snapshot's record.
    public let info: SnapshotInfo
    private let storage: Storage

    private enum Storage: Sendable {
        case decoded([String: [String: JSONValue]])
        case mapped(SnapshotFile)
    }

    /// Makes a table from already decoded rows.
    public init(info: SnapshotInfo, rows: [String: [String: JSONValue]]) {
        self.info = info
        storage = .decoded(rows)
    }

    /// Serves a mapped snapshot file (the store's record of the same snapshot).
    public init(info: SnapshotInfo, file: SnapshotFile) {
        self.info = info
        storage = .mapped(file)
    }

    /// How answers name the snapshot: `v3`.
    public var label: String { "v\(info.version)" }

    /// A key's outputs, or `nil` when the snapshot does not hold the key.
    public func outputs(for key: String) -> [String: JSONValue]? {
        switch storage {
        case .decoded(let rows): rows[key]
        case .mapped(let file): file.outputs(for: key)
        }
    }

    /// Distinct keys.
    public var keyCount: Int {
        switch storage {
        case .decoded(let rows): rows.count
        case .mapped(let file): file.metadata.keyCount
        }
    }

    /// The mapped file, when the table is served from one.
    public var file: SnapshotFile? {
        if case .mapped(let file) = storage { return file }
        return nil
    }

    /// Reads a snapshot's chunks from the store and decodes them; later chunks win for repeated keys.
    public static func load(_ info: SnapshotInfo, from store: any BatchStore) async throws -> SnapshotTable {
        // A sealed snapshot has no chunks left: decoding them would serve an empty table.
        guard info.file == nil else {
            throw EntitySourceError(
                message:
                    "snapshot v\(info.version) of \(info.feature) is sealed: it is served from its file, which needs a snapshot folder"
            )
        }
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

    /// The snapshot's file in `directory`, mapped (`SnapshotStorage.open`: the file already there, else
    /// materialised from the store, or written from the chunks of a snapshot not yet sealed).
    public static func load(_ info: SnapshotInfo, from store: any BatchStore, directory: String) async throws
        -> SnapshotTable
    {
        let file = try await SnapshotStorage(store: store, directory: directory).open(info)
        return SnapshotTable(info: info, file: file)
    }
}

/// Where snapshot files live, and which may go.
public enum SnapshotFiles {
    /// `DIRECTORY/FEATURE-vVERSION-ID.snap` (the feature name with anything but letters, digits, `_` and `-`
    /// percent-escaped).
    public static func path(for info: SnapshotInfo, in directory: String) -> String {
        URL(fileURLWithPath: directory).appendingPathComponent(
            "\(escaped(info.feature))-v\(info.version)-\(info.id).snap"
        )
        .path
    }

    private static func escaped(_ feature: String) -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "_-"))
        return feature.addingPercentEncoding(withAllowedCharacters: allowed) ?? "feature"
    }

    /// Removes the feature's files in `directory` whose snapshot is not in `keep`, and temporary files left by a
    /// writer that died. A file another process still maps stays readable by it until it unmaps (POSIX unlink).
    public static func prune(feature: String, keep: [SnapshotInfo], in directory: String) {
        let keepNames = Set(keep.map { URL(fileURLWithPath: path(for: $0, in: directory)).lastPathComponent })
        let prefix = "\(escaped(feature))-v"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasPrefix(prefix) && !keepNames.contains(name) {
            // `VERSION-ID.snap`, or `VERSION-ID.snap.tmp-PID`: not another feature's whose name starts like this one.
            let rest = name.dropFirst(prefix.count)
            let parts = rest.split(separator: ".", maxSplits: 1)
            let numbers = parts.first?.split(separator: "-") ?? []
            guard numbers.count == 2, numbers.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }),
                parts.count == 2
            else { continue }
            let isSnapshot = parts[1] == "snap"
            let isStaleTemporary = parts[1].hasPrefix("snap.tmp-") && !processIsAlive(String(parts[1]))
            if isSnapshot || isStaleTemporary {
                try? FileManager.default.removeItem(
                    atPath: URL(fileURLWithPath: directory).appendingPathComponent(name).path)
            }
        }
    }

    /// Whether the writer named in a temporary file (`….tmp-PID`) still runs.
    private static func processIsAlive(_ name: String) -> Bool {
        guard let pid = name.split(separator: "-").last.flatMap({ Int32($0) }) else { return false }
        return kill(pid, 0) == 0 || errno != ESRCH
    }
}
