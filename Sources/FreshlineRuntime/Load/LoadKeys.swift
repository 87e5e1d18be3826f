public import FreshlineCore
internal import FreshlineJSON
internal import FreshlineSnapshot

/// The real keys a load test can send for the request log's key hashes: the feature's published snapshot's keys
/// (batch and hybrid features), else its declared entity set (`advice.keys`). Read once per run.
public enum LoadKeys {
    /// Key hash (hex, as the request log keeps it) → key, at most `limit` keys, and where they came from (`nil`
    /// when the feature has neither).
    public static func known(
        _ feature: FeatureSpec, manifest: Manifest, batchStore: any BatchStore, snapshotDirectory: String?,
        limit: Int = 5_000_000
    ) async throws -> (keys: [String: String], basis: String?) {
        var keys: [String: String] = [:]
        func add(_ key: String) -> Bool {
            guard keys.count < limit else { return false }
            keys[KeyHash.hex(key)] = key
            return true
        }
        if feature.batch != nil, let info = try await batchStore.publishedSnapshot(feature: feature.name) {
            if let snapshotDirectory {
                let file = try await SnapshotStorage(store: batchStore, directory: snapshotDirectory).open(info)
                for row in file.rows where file.isLive(row: row) {
                    guard add(file.key(row: row)) else { break }
                }
            } else {
                chunks: for chunk in try await batchStore.chunks(snapshotID: info.id) {
                    for key in chunk.keys { guard add(key) else { break chunks } }
                }
            }
            return (keys, "the published snapshot v\(info.version)")
        }
        if let declared = feature.adviceKeys {
            let reader = try EntitySources.open(declared.source, manifestPath: manifest.path, skipping: 0)
            reading: while true {
                let records = try reader.next(maxRows: 65_536)
                if records.isEmpty { break }
                for record in records {
                    guard case .success(let fields) = record.fields else { continue }
                    switch fields[declared.keyColumn] {
                    case .string(let s)?: guard add(s) else { break reading }
                    case .integer(let i)?: guard add(String(i)) else { break reading }
                    default: continue
                    }
                }
            }
            return (keys, "the declared entity set \(declared.source.path) (advice.keys)")
        }
        return (keys, nil)
    }
}
