internal import FreshlineCore
internal import PostgresNIO

/// The store protocols on PostgreSQL (placeholder while the implementation lands).
final class PostgresStore: Sendable {}
