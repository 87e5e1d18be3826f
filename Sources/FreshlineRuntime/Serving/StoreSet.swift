internal import Foundation
public import FreshlineCore
public import ServiceLifecycle

/// The stores a process works with: one embedded store (SQLite) or one shared store (PostgreSQL) behind the store
/// protocols. Which one is the executable's choice (`StoreSet.open` in `FreshlineStores`, from the manifest's
/// `store:` or `FRESHLINE_STORE`): the runtime links neither.
public struct StoreSet: Sendable {
    public let batch: any BatchStore
    public let jobs: any JobStore
    public let webhooks: any WebhookStore
    public let requestLog: any RequestLogStore
    /// Load-test runs (`freshline load`), kept apart from the request log.
    public let loadTests: any LoadTestStore
    /// Cross-process announcements (PostgreSQL); `nil` for SQLite.
    public let events: (any StoreEventSource)?
    /// What must run alongside the process for the store to work (PostgreSQL's connection pool); `nil` for SQLite.
    public let service: (any Service)?
    /// Whether the store can be reached, from its calls' outcomes (PostgreSQL); `nil` for SQLite (a local file).
    public let health: (any StoreHealthReporting)?
    /// Where upstream rate-limit budgets are shared by the servers of a cluster (PostgreSQL); `nil` for SQLite (one
    /// server: each budget stays in the process).
    public let budgets: (any UpstreamBudgetStore)?
    /// Where the store is, for logs (passwords redacted).
    public let location: String
    /// The folder this process keeps snapshot files in (mapped for serving); `nil`: snapshots are decoded into memory.
    public let snapshotDirectory: String?

    /// An embedded store (SQLite) at the file `location`; snapshot files beside it (`freshline.sqlite` →
    /// `freshline.snapshots/`) unless `snapshotDirectory` says otherwise.
    public init(
        embedded store: some BatchStore & JobStore & WebhookStore & RequestLogStore & LoadTestStore, location: String,
        snapshotDirectory: String? = nil
    ) {
        self.snapshotDirectory =
            snapshotDirectory ?? URL(fileURLWithPath: location).deletingPathExtension().path + ".snapshots"
        batch = store
        jobs = store
        webhooks = store
        requestLog = store
        loadTests = store
        events = nil
        service = nil
        health = nil
        budgets = nil
        self.location = location
    }

    /// A shared store that announces changes and runs as a service (PostgreSQL).
    public init(
        shared store: some BatchStore & JobStore & WebhookStore & RequestLogStore & LoadTestStore & StoreEventSource
            & Service & StoreHealthReporting & UpstreamBudgetStore,
        location: String, snapshotDirectory: String? = nil
    ) {
        self.snapshotDirectory = snapshotDirectory
        batch = store
        jobs = store
        webhooks = store
        requestLog = store
        loadTests = store
        events = store
        service = store
        health = store
        budgets = store
        self.location = location
    }

    /// Whether `location` names a PostgreSQL database.
    public static func isPostgres(_ location: String) -> Bool {
        location.hasPrefix("postgres://") || location.hasPrefix("postgresql://")
    }
}

extension StoreSet {
    /// The services a process runs for this store, before its own (services start in order and stop in reverse).
    public var services: [any Service] { service.map { [$0] } ?? [] }

    /// Runs `body` with the store's service running (for commands that are not services themselves).
    public func whileRunning<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        guard let service else { return try await body() }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await service.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }
}
