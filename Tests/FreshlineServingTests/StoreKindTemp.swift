import FreshlineCore
import FreshlineStore
import Testing

// TEMPORARY until the PostgreSQL fixture lands.
enum StoreKind: String, CaseIterable, Sendable { case sqlite }
struct StoreFixture: Sendable {
    let batch: any BatchStore
    let sqlite: SQLiteStore
    static func make(_ kind: StoreKind) async throws -> StoreFixture {
        let s = try SQLiteStore()
        return StoreFixture(batch: s, sqlite: s)
    }
    func secondBatchStore() async throws -> any BatchStore { sqlite }
    func stop() async {}
}
