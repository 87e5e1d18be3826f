internal import FreshlineCore
public import Logging
internal import PostgresNIO
public import ServiceLifecycle

/// The store protocols on PostgreSQL, for several server and worker processes sharing one state: snapshots, runs
/// and their ranges (`BatchStore`), async jobs (`JobStore`), webhook deliveries (`WebhookStore`), request-log samples
/// (`RequestLogStore`), and change events over `LISTEN/NOTIFY` (`StoreEventSource`).
///
/// It behaves like `SQLiteStore` (the same behaviour tests run against both); where several processes race, row
/// locks (`FOR UPDATE`, `SKIP LOCKED`), unique indexes and transaction-scoped advisory locks decide, and every
/// protocol method is one transaction.
///
/// Run it as a service (`run()`): it runs the connection pool and applies pending migrations; every method first
/// waits until they are applied, so callers may use the store as soon as `run()` has started in a task.
///
/// Every method is bounded by the call timeout (waiting for readiness and a connection included): a database that
/// is down, unreachable or out of connections makes calls fail with `StoreUnavailableError` instead of waiting, and
/// `unavailableReason` says so until a call succeeds again.
public final class PostgresStore: Sendable {
    /// The database URL with its password redacted, for logs.
    public let url: String

    let location: DatabaseURL
    let startupTimeout: Duration
    /// The bound of one call: waiting for readiness, for a connection, and the statements (see `bounded`).
    let callTimeout: Duration
    let client: PostgresClient
    let logger: Logger
    let readiness = Readiness()
    let health = CallOutcomes()

    /// Makes a store for `url`: `postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require]`
    /// (or `postgresql://`). Without `sslmode`, TLS is off for a loopback host and preferred otherwise. Nothing
    /// connects until `run()`, which waits up to `startupTimeout` for a server that does not accept connections yet.
    /// Each call gives up after `callTimeout` (the server's `statement_timeout` is set to it too).
    public init(
        url: String, logger: Logger, startupTimeout: Duration = .seconds(60), callTimeout: Duration = .seconds(5)
    ) throws {
        location = try DatabaseURL(url)
        self.url = location.redacted
        self.logger = logger
        self.startupTimeout = startupTimeout
        self.callTimeout = callTimeout
        client = PostgresClient(
            configuration: location.clientConfiguration(statementTimeout: callTimeout), backgroundLogger: logger)
    }
}

extension PostgresStore: Service {
    /// Runs the connection pool and applies pending migrations (once the server accepts connections); call it once.
    /// Returns when the task is cancelled or the service group shuts down gracefully. A server that cannot be reached
    /// within the start-up timeout (or refuses the URL's credentials or database) and a migration that fails are
    /// thrown, and every store method waiting for readiness throws the same error.
    public func run() async throws {
        defer { readiness.close(PostgresStoreError.stopped(url: url)) }
        try await withThrowingDiscardingTaskGroup { group in
            await client.start(in: &group)
            do {
                // A shutdown while waiting for the server ends the wait (the pool's run() returns by itself).
                try await cancelWhenGracefulShutdown {
                    try await self.waitForServer()
                    try await self.migrate()
                }
                readiness.resolve(.success(()))
                logger.info("PostgreSQL store ready", metadata: ["url": "\(url)"])
            } catch {
                // Stopped before it was ready: not a failure (the deferred close tells waiting callers).
                if Task.isCancelled || Task.isShuttingDownGracefully { return }
                let failure = Self.storeError(error, "applying migrations")
                readiness.resolve(.failure(failure))
                throw failure
            }
        }
    }
}

extension PostgresStore {
    /// Connects once outside the pool, retrying every second until `startupTimeout` while the server refuses
    /// connections or is starting up, so that a server that is down or a wrong URL fails `run()` with the reason
    /// (the pool would wait for a connection silently).
    private func waitForServer() async throws {
        let deadline = ContinuousClock.now + startupTimeout
        var attempts = 0
        while true {
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: try location.connectionConfiguration(), id: 0, logger: logger)
                try? await connection.close()
                return
            } catch {
                // Named with the URL (not as a store call's `StoreUnavailableError`): this ends `run()`, and the
                // operator needs to know which server did not answer.
                let failure =
                    (error as? PSQLError).map { Self.failure($0, "connecting to \(url)") }
                    ?? Self.storeError(error, "connecting to \(url)")
                // The server answered (bad credentials, no such database): waiting will not help, unless it is
                // starting up (SQLSTATE 57P03).
                let fatal = (error as? PSQLError)?.serverInfo?[.sqlState].map { $0 != "57P03" } ?? false
                if fatal || ContinuousClock.now >= deadline || Task.isCancelled {
                    // The operator's log gets the server's own words; the error itself keeps them out.
                    logger.error("cannot connect to PostgreSQL", metadata: ["error": "\(String(reflecting: failure))"])
                    throw failure
                }
                if attempts == 0 {
                    logger.warning(
                        "waiting for PostgreSQL to accept connections",
                        metadata: ["url": "\(url)", "error": "\(String(reflecting: failure))"])
                }
                attempts += 1
                try await Task.sleep(for: .seconds(1))
            }
        }
    }
}

// MARK: Queries

extension PostgresStore {
    /// Runs `body` in one transaction (committed when it returns, rolled back when it throws), after readiness,
    /// within the call timeout (`bulk`: the bulk timeout, for reading or publishing a whole snapshot).
    /// Errors of the store protocols (`BatchStoreError`, `JobStoreError`) come through as they are; an outage
    /// becomes `StoreUnavailableError`, other database errors `PostgresStoreError` naming `operation`.
    func transaction<Result: Sendable>(
        _ operation: String = #function, bulk: Bool = false,
        _ body: @escaping @Sendable (Transaction) async throws -> Result
    ) async throws -> Result {
        let (logger, readiness, client) = (self.logger, self.readiness, self.client)
        let timeout = bulk ? bulkTimeout : callTimeout
        return try await bounded(operation, timeout: timeout) {
            try await readiness.wait()
            return try await Self.withCallConnection(client) { connection in
                try await connection.withTransaction(logger: logger) { connection in
                    if bulk {
                        // The session's statement_timeout is the call timeout; a bulk call may take longer.
                        try await connection.query(
                            "SELECT set_config('statement_timeout', \(String(Self.milliseconds(timeout))), true)",
                            logger: logger)
                    }
                    return try await body(Transaction(connection: connection, logger: logger))
                }
            }
        }
    }

    /// Runs one statement (its own transaction) after readiness, within the call timeout, and returns its rows.
    @discardableResult
    func rows(_ query: PostgresQuery, _ operation: String = #function) async throws -> [PostgresRow] {
        let (logger, readiness, client) = (self.logger, self.readiness, self.client)
        return try await bounded(operation, timeout: callTimeout) {
            try await readiness.wait()
            return try await Self.withCallConnection(client) { connection in
                try await connection.query(query, logger: logger).collect()
            }
        }
    }

    /// The error a store method throws for `error`: the store protocols' own errors and cancellation unchanged,
    /// a transaction's error unwrapped, a database error with the server's message.
    static func storeError(_ error: any Error, _ operation: String) -> any Error {
        switch error {
        case let error as PostgresTransactionError:
            let cause = error.closureError ?? error.beginError ?? error.commitError ?? error.rollbackError
            return cause.map { storeError($0, operation) }
                ?? PostgresStoreError(
                    .database, operation: operation, message: "the transaction failed", cause: error)
        case let error as PSQLError:
            if let reason = unavailability(error) { return StoreUnavailableError(reason: reason) }
            return failure(error, operation)
        case let error as PostgresDecodingError:
            return PostgresStoreError(
                .database, operation: operation,
                message: "column \(error.columnName) is not a \(error.targetType) (\(error.postgresType))",
                cause: error)
        default:
            return error
        }
    }

    /// A `PSQLError` as the store's error: the SQLSTATE and the client-side code in its description, the server's
    /// message and detail kept for logs (`serverMessage`).
    static func failure(_ error: PSQLError, _ operation: String) -> PostgresStoreError {
        let server = error.serverInfo
        return PostgresStoreError(
            .database, operation: operation,
            message: server == nil ? "\(error.code)" : "the server refused the statement",
            sqlState: server?[.sqlState], serverMessage: server == nil ? nil : describe(error), cause: error)
    }

    /// What a `PSQLError` says: the server's message, detail and SQLSTATE when the server answered, else the
    /// client-side code (connection closed, pool closed…) and its cause.
    static func describe(_ error: PSQLError) -> String {
        if let server = error.serverInfo, let message = server[.message] {
            var text = message
            if let detail = server[.detail] { text += " (\(detail))" }
            if let state = server[.sqlState] { text += " [SQLSTATE \(state)]" }
            return text
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }

    /// A 64-bit key for `pg_advisory_xact_lock`, per purpose and name (FNV-1a over `freshline.<purpose>:<name>`):
    /// stable across processes and releases.
    static func lockKey(_ purpose: String, _ name: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "freshline.\(purpose):\(name)".utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }
}

extension PostgresClient {
    /// Runs the client in a task of `group`, returning once that task has started: leasing a connection before
    /// `run()` is entered works but logs a warning.
    func start(in group: inout ThrowingDiscardingTaskGroup<any Error>) async {
        await withCheckedContinuation { (started: CheckedContinuation<Void, Never>) in
            group.addTask {
                started.resume()
                await self.run()
            }
        }
    }
}

/// A connection inside a transaction, with the logger its queries log to.
struct Transaction {
    let connection: PostgresConnection
    let logger: Logger

    /// Runs `query` and returns its rows.
    @discardableResult
    func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await connection.query(query, logger: logger).collect()
    }

    /// Runs `query` and streams its rows (for large results).
    func stream(_ query: PostgresQuery) async throws -> PostgresRowSequence {
        try await connection.query(query, logger: logger)
    }

    /// Takes the transaction-scoped advisory lock for `purpose` and `name` (waiting for whoever holds it); later
    /// statements of this transaction see what the previous holder committed.
    func lock(_ purpose: String, _ name: String) async throws {
        try await rows("SELECT pg_advisory_xact_lock(\(PostgresStore.lockKey(purpose, name)))")
    }

    /// Sends `event` to every listener when (and only if) the transaction commits.
    func notify(_ event: StoreEvent) async throws {
        try await rows("SELECT pg_notify(\(PostgresStore.eventChannel), \(event.payload))")
    }
}

/// Why the PostgreSQL store failed.
public struct PostgresStoreError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The kind of failure; new kinds can be added without breaking callers that switch on the known ones.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let description: String
        private init(_ name: String) { description = name }
        /// The database URL cannot be used.
        public static let invalidURL = Code("invalid_url")
        /// A statement failed, or returned what the store did not expect.
        public static let database = Code("database")
        /// The store's `run()` ended (or was never started and the store was shut down).
        public static let stopped = Code("stopped")
        /// A snapshot chunk in the database does not decode.
        public static let corruptChunk = Code("corrupt_chunk")
    }

    public var code: Code
    /// What the store was doing: the store method, or "connecting to URL".
    public var operation: String?
    /// What went wrong, in the store's own words: never text from the server, which can hold row values.
    public var message: String
    /// The server's SQLSTATE, when the server answered.
    public var sqlState: String?
    /// The server's message and detail, for operators' logs (`debugDescription`), never in `description`.
    public var serverMessage: String?
    /// The error underneath (a `PSQLError`, a decoding error), for debugging.
    public var cause: (any Error & Sendable)?

    public init(
        _ code: Code, operation: String? = nil, message: String, sqlState: String? = nil,
        serverMessage: String? = nil, cause: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.operation = operation
        self.message = message
        self.sqlState = sqlState
        self.serverMessage = serverMessage
        self.cause = cause
    }

    /// The database URL cannot be used; `problem` says what is wrong.
    public static func invalidURL(_ problem: String) -> PostgresStoreError {
        PostgresStoreError(.invalidURL, message: problem)
    }
    /// A statement did something the store did not expect.
    public static func database(operation: String, message: String) -> PostgresStoreError {
        PostgresStoreError(.database, operation: operation, message: message)
    }
    /// The store is not running.
    public static func stopped(url: String) -> PostgresStoreError {
        PostgresStoreError(.stopped, message: "the PostgreSQL store (\(url)) is not running")
    }
    /// A snapshot chunk does not decode.
    public static let corruptChunk = PostgresStoreError(
        .corruptChunk, message: "a snapshot chunk in the PostgreSQL store is corrupt")

    public var description: String {
        var text: String
        switch code {
        case .invalidURL: text = "invalid PostgreSQL URL: \(message)"
        case .database: text = "PostgreSQL store: \(operation ?? "a call") failed: \(message)"
        default: text = message
        }
        if let sqlState { text += " [SQLSTATE \(sqlState)]" }
        return text
    }

    public var debugDescription: String {
        serverMessage.map { "\(description) — server: \($0)" } ?? description
    }
}
