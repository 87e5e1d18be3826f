import Foundation
import FreshlinePostgres
import Logging
import Testing

/// A PostgreSQL failure names the store's operation and the SQLSTATE; the server's own words (which can quote row
/// values) stay out of `description`, which may reach a client, and are kept for the operator's log.
@Suite("PostgreSQL store errors")
struct PostgresStoreErrorTests {
    @Test("the server's message is kept for logs, out of the description")
    func serverDetailStaysOutOfTheDescription() {
        let error = PostgresStoreError(
            .database, operation: "submit", message: "the server refused the statement", sqlState: "23505",
            serverMessage: "duplicate key value violates unique constraint (Key (id)=(secret-42) already exists.)")
        #expect(error.code == .database)
        #expect(
            error.description == "PostgreSQL store: submit failed: the server refused the statement [SQLSTATE 23505]")
        #expect(!error.description.contains("secret-42"))
        #expect(String(reflecting: error).contains("secret-42"))
    }

    @Test("a database the server does not have: the SQLSTATE in the error, the server's text only in its debug form")
    func missingDatabase() async throws {
        guard let server = ProcessInfo.processInfo.environment["FRESHLINE_POSTGRES_URL"], !server.isEmpty,
            var parts = URLComponents(string: server)
        else {
            Issue.record("FRESHLINE_POSTGRES_URL is not set: `make test` starts a throwaway PostgreSQL (scripts/pg.sh)")
            return
        }
        parts.path = "/freshline_absent_\(UInt32.random(in: 0...UInt32.max))"
        let url = try #require(parts.string)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let store = try PostgresStore(url: url, logger: logger, callTimeout: .seconds(30))
        do {
            try await store.run()
            Issue.record("the store ran on a database that does not exist")
        } catch let error as PostgresStoreError {
            #expect(error.code == .database)
            #expect(error.sqlState == "3D000", "invalid_catalog_name")
            #expect(!error.description.contains("does not exist"), "\(error)")
            #expect(String(reflecting: error).contains("does not exist"))
        }
    }
}
