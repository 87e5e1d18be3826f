import FreshlineCore
import FreshlinePostgres
import FreshlineStore
import Logging
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The store implementations the behaviour tests run against.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    var testDescription: String {
        switch self {
        case .sqlite: "SQLite"
        case .postgres: "PostgreSQL"
        }
    }
}

/// Why a fixture could not be made.
struct StoreFixtureError: Error, CustomStringConvertible {
    var description: String
}

/// A fresh, empty store of one kind for one test: SQLite in memory, or a `PostgresStore` on a database of its own,
/// created on the server `FRESHLINE_POSTGRES_URL` names and dropped by `stop()`. Without that variable a PostgreSQL
/// fixture fails (tests never skip silently).
final class StoreFixture: Sendable {
    typealias Store = any BatchStore & JobStore & WebhookStore & RequestLogStore & LoadTestStore

    let kind: StoreKind
    let store: Store
    /// The PostgreSQL store (`nil` for SQLite), for what only it has (`listen`).
    let postgres: PostgresStore?

    private let database: (server: String, name: String, url: String)?
    private let services = Mutex<[Task<Void, any Error>]>([])
    private static let logger: Logger = {
        var logger = Logger(label: "freshline.test.store")
        logger.logLevel = .warning
        return logger
    }()

    /// Makes a fixture; call `stop()` when done (or use `with(_:_:)`).
    init(_ kind: StoreKind) async throws {
        self.kind = kind
        switch kind {
        case .sqlite:
            store = try SQLiteStore()
            postgres = nil
            database = nil
        case .postgres:
            guard let server = getenv("FRESHLINE_POSTGRES_URL").map({ String(cString: $0) }), !server.isEmpty else {
                throw StoreFixtureError(
                    description:
                        "FRESHLINE_POSTGRES_URL is not set: `make test` starts a throwaway PostgreSQL (scripts/pg.sh)")
            }
            let name = "freshline_t_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
            let url = try await PostgresStore.createDatabase(named: name, server: server, logger: Self.logger)
            database = (server, name, url)
            let store = try PostgresStore(url: url, logger: Self.logger, callTimeout: Self.callTimeout)
            self.store = store
            postgres = store
            start(store)
        }
    }

    /// The bound of a store call in behaviour tests: generous, because ~300 tests share 2 cores at start-up and a
    /// call can wait seconds for a thread; the bound itself is tested with an unreachable server (`StoreOutageHTTPTests`).
    static let callTimeout = Duration.seconds(60)

    /// A second `PostgresStore` on the same database, as another process would have (its own connections); stopped
    /// with the fixture.
    func secondStore() throws -> PostgresStore {
        guard let database else { throw StoreFixtureError(description: "only a PostgreSQL fixture has a second store") }
        let store = try PostgresStore(url: database.url, logger: Self.logger, callTimeout: Self.callTimeout)
        start(store)
        return store
    }

    /// Stops the stores and drops the database.
    func stop() async {
        let tasks = services.withLock { tasks in
            defer { tasks = [] }
            return tasks
        }
        for task in tasks { task.cancel() }
        for task in tasks { _ = await task.result }
        if let database {
            do {
                try await PostgresStore.dropDatabase(named: database.name, server: database.server, logger: Self.logger)
            } catch {
                Issue.record("could not drop the test database \(database.name): \(error)")
            }
        }
    }

    /// Runs `body` with a fresh fixture of `kind`, stopped afterwards whether `body` throws or not.
    static func with<Result>(_ kind: StoreKind, _ body: (StoreFixture) async throws -> Result) async throws -> Result {
        let fixture = try await StoreFixture(kind)
        do {
            let result = try await body(fixture)
            await fixture.stop()
            return result
        } catch {
            await fixture.stop()
            throw error
        }
    }

    private func start(_ store: PostgresStore) {
        let task = Task { try await store.run() }
        services.withLock { $0.append(task) }
    }
}

extension StoreFixture {
    /// Makes a fixture (the batch store tests' spelling).
    static func make(_ kind: StoreKind) async throws -> StoreFixture { try await StoreFixture(kind) }

    /// The store as a `BatchStore`.
    var batch: any BatchStore { store }

    /// Another process's view of the same store: a second `PostgresStore` on the database; for SQLite in memory,
    /// the same store (one process).
    func secondBatchStore() throws -> any BatchStore {
        kind == .postgres ? try secondStore() : store
    }
}
