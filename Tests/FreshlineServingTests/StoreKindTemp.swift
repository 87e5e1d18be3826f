import FreshlineCore
import FreshlineStore
import Testing

// TEMPORARY (SQLite only) until StoreFixture.swift with PostgreSQL lands from branch pg-store. Whoever merges:
// DELETE THIS FILE, and make sure StoreFixture offers what BatchStoreTests uses:
//   `static func make(_ kind: StoreKind) async throws -> StoreFixture`, `var batch: any BatchStore`,
//   `func secondBatchStore() async throws -> any BatchStore` (a second store on the same database), `func stop() async`.
enum StoreKind: String, CaseIterable, Sendable { case sqlite }

struct StoreFixture: Sendable {
    let batch: any BatchStore
    let sqlite: SQLiteStore

    static func make(_ kind: StoreKind) async throws -> StoreFixture {
        let store = try SQLiteStore()
        return StoreFixture(batch: store, sqlite: store)
    }

    func secondBatchStore() async throws -> any BatchStore { sqlite }
    func stop() async {}
}
