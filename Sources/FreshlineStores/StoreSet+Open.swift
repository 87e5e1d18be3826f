internal import Foundation
public import FreshlineCore
internal import FreshlinePostgres
public import FreshlineRuntime
internal import FreshlineStore
public import Logging

/// Chooses the concrete store: the manifest's `store:` — an SQLite file (the embedded default, relative to the
/// manifest's folder) or a `postgres://` URL — or `FRESHLINE_STORE`, which overrides it. Kept out of the runtime so
/// that it links neither store; the CLI (and tests) call it.
extension StoreSet {
    /// Opens the store `FRESHLINE_STORE` or else the manifest names (`environment`: the process's by default).
    public static func open(
        for manifest: Manifest, environment: [String: String]? = nil, logger: Logger
    ) throws -> StoreSet {
        let environment = environment ?? ProcessInfo.processInfo.environment
        let override = environment["FRESHLINE_STORE"].flatMap { $0.isEmpty ? nil : $0 }
        let location = override ?? manifest.store.location
        let base = URL(fileURLWithPath: manifest.path).deletingLastPathComponent()
        let snapshots = manifest.store.snapshots.map {
            $0.hasPrefix("/") ? $0 : base.appendingPathComponent($0).path
        }
        if isPostgres(location) {
            let store: PostgresStore
            do {
                store = try PostgresStore(url: location, logger: logger, callTimeout: manifest.store.callTimeout)
            } catch {
                throw ManifestErrors([
                    ManifestError(
                        SourceLocation(
                            file: override == nil ? manifest.path : "FRESHLINE_STORE", line: 0, keyPath: "store"),
                        "\(error)")
                ])
            }
            return StoreSet(
                shared: store, location: store.url,
                snapshotDirectory: snapshots ?? base.appendingPathComponent(".freshline/snapshots").path)
        }
        let path = location.hasPrefix("/") ? location : base.appendingPathComponent(location).path
        return StoreSet(embedded: try SQLiteStore(path: path), location: path, snapshotDirectory: snapshots)
    }
}
