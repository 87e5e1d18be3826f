internal import FreshlineCore
public import Logging
internal import PostgresNIO

extension PostgresStore {
    /// Creates database `name` on the server `url` points at (connecting to `url`'s database) and returns the URL
    /// of the new database, with the same credentials and TLS mode. For tests and tooling; `name` is an identifier of
    /// lower-case letters, digits and underscores.
    public static func createDatabase(named name: String, server url: String, logger: Logger) async throws -> String {
        var location = try DatabaseURL(url)
        let identifier = try quotedIdentifier(name)
        try await withAdminConnection(location, logger: logger) { client in
            _ = try await withCallConnection(client) { connection in
                try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(identifier)"), logger: logger)
                    .collect()
            }
        }
        location.database = name
        return location.text
    }

    /// Drops database `name` on the server `url` points at, disconnecting its sessions (`WITH (FORCE)`); nothing
    /// when it does not exist. For tests and tooling.
    public static func dropDatabase(named name: String, server url: String, logger: Logger) async throws {
        let location = try DatabaseURL(url)
        let identifier = try quotedIdentifier(name)
        try await withAdminConnection(location, logger: logger) { client in
            _ = try await withCallConnection(client) { connection in
                try await connection.query(
                    PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(identifier) WITH (FORCE)"), logger: logger
                ).collect()
            }
        }
    }

    /// Database names cannot be bound as parameters; only plain identifiers are accepted, quoted.
    private static func quotedIdentifier(_ name: String) throws -> String {
        let allowed = name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "_")
        }
        guard allowed, !name.isEmpty, name.utf8.count <= 63 else {
            throw PostgresStoreError.invalidURL("database name \(name) is not 1 to 63 of a-z, 0-9 and _")
        }
        return "\"\(name)\""
    }

    /// How long creating or dropping a database may take, connecting included: a server that is down fails the
    /// call instead of leaving it waiting for a connection (the pool has no acquire timeout). Generous, as dropping
    /// a database with sessions to end can take a while.
    static let adminTimeout = Duration.seconds(60)

    /// Runs `body` with a client of its own (outside any store), stopped afterwards, within `adminTimeout`.
    private static func withAdminConnection(
        _ location: DatabaseURL, logger: Logger, _ body: @escaping @Sendable (PostgresClient) async throws -> Void
    ) async throws {
        let client = PostgresClient(configuration: location.clientConfiguration(), backgroundLogger: logger)
        do {
            try await withThrowingDiscardingTaskGroup { group in
                await client.start(in: &group)
                defer { group.cancelAll() }
                // The same race as a store call's (`bounded`): the body against a timer, the loser cancelled.
                try await withThrowingTaskGroup(of: Bool.self) { race in
                    race.addTask {
                        try await body(client)
                        return true
                    }
                    race.addTask {
                        try await Task.sleep(for: adminTimeout)
                        return false
                    }
                    defer { race.cancelAll() }
                    if try await race.next() == false {
                        throw StoreUnavailableError(reason: "no answer within \(text(adminTimeout))")
                    }
                }
            }
        } catch {
            throw storeError(error, "administering \(location.redacted)")
        }
    }
}
