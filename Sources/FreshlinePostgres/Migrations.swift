internal import PostgresNIO

/// A named schema change; applied once per database, in order, in its own transaction.
struct Migration: Sendable {
    var name: String
    var statements: [PostgresQuery]
}

extension PostgresStore {
    /// The schema, as the SQLite store's migrations (the same names) with PostgreSQL types: `bytea` blobs,
    /// `double precision` times (seconds since 1970), `bigint` counts. A `seq` identity column orders runs, jobs and
    /// deliveries created at the same time in insertion order (SQLite's `rowid`).
    static let migrations: [Migration] = [
        Migration(
            name: "v1-request-log",
            statements: [
                """
                CREATE TABLE request_log (
                    id bigserial PRIMARY KEY,
                    feature text NOT NULL,
                    key_hash text,
                    has_request_inputs boolean NOT NULL,
                    source text,
                    outcome text NOT NULL,
                    latency_seconds double precision NOT NULL CHECK (latency_seconds >= 0),
                    age_seconds double precision NOT NULL,
                    at double precision NOT NULL
                )
                """,
                "CREATE INDEX request_log_feature_at ON request_log (feature, at)",
                "CREATE INDEX request_log_at ON request_log (at)",
            ]),
        Migration(
            name: "v2-batch",
            statements: [
                """
                CREATE TABLE snapshots (
                    id bigserial PRIMARY KEY,
                    feature text NOT NULL,
                    version bigint NOT NULL,
                    run_id text NOT NULL,
                    model_version text NOT NULL,
                    input_time double precision NOT NULL,
                    created_at double precision NOT NULL,
                    published_at double precision,
                    key_count bigint NOT NULL DEFAULT 0,
                    state text NOT NULL,
                    UNIQUE (feature, version)
                )
                """,
                "CREATE UNIQUE INDEX snapshots_one_published ON snapshots (feature) WHERE state = 'published'",
                """
                CREATE TABLE snapshot_chunks (
                    id bigserial PRIMARY KEY,
                    snapshot_id bigint NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
                    chunk_index bigint NOT NULL,
                    row_count bigint NOT NULL,
                    keys bytea NOT NULL,
                    outputs bytea NOT NULL
                )
                """,
                "CREATE INDEX snapshot_chunks_snapshot ON snapshot_chunks (snapshot_id, chunk_index, id)",
                """
                CREATE TABLE runs (
                    id text PRIMARY KEY,
                    seq bigint GENERATED ALWAYS AS IDENTITY,
                    feature text NOT NULL,
                    trigger text NOT NULL,
                    state text NOT NULL,
                    snapshot_id bigint NOT NULL,
                    scheduled_for double precision,
                    started_at double precision NOT NULL,
                    finished_at double precision,
                    heartbeat_at double precision NOT NULL,
                    owner text NOT NULL,
                    rows_total bigint,
                    rows_done bigint NOT NULL DEFAULT 0,
                    rows_written bigint NOT NULL DEFAULT 0,
                    rows_failed bigint NOT NULL DEFAULT 0,
                    busy_seconds double precision NOT NULL DEFAULT 0,
                    resumes bigint NOT NULL DEFAULT 0,
                    error text,
                    model_path text,
                    keys text[]
                )
                """,
                "CREATE INDEX runs_feature_started ON runs (feature, started_at)",
                "CREATE INDEX runs_feature_state ON runs (feature, state)",
                // startRun checks the slot under a per-feature lock; the index is the backstop.
                """
                CREATE UNIQUE INDEX runs_schedule_slot ON runs (feature, scheduled_for)
                    WHERE scheduled_for IS NOT NULL
                """,
                """
                CREATE TABLE run_failures (
                    run_id text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                    ordinal bigint NOT NULL,
                    location text NOT NULL,
                    key text,
                    reason text NOT NULL,
                    PRIMARY KEY (run_id, ordinal)
                )
                """,
            ]),
        Migration(
            name: "v3-jobs",
            statements: [
                """
                CREATE TABLE jobs (
                    id text PRIMARY KEY,
                    seq bigint GENERATED ALWAYS AS IDENTITY,
                    feature text NOT NULL,
                    state text NOT NULL,
                    input bytea NOT NULL,
                    rows_total bigint NOT NULL,
                    rows_done bigint NOT NULL DEFAULT 0,
                    partial bytea,
                    result bytea,
                    attempts bigint NOT NULL DEFAULT 0,
                    max_attempts bigint NOT NULL,
                    last_error text,
                    available_at double precision NOT NULL,
                    lease_owner text,
                    lease_expires_at double precision,
                    deadline_at double precision,
                    idempotency_key text,
                    request_hash text,
                    webhook_url text,
                    created_at double precision NOT NULL,
                    updated_at double precision NOT NULL,
                    started_at double precision,
                    finished_at double precision
                )
                """,
                """
                CREATE UNIQUE INDEX jobs_idempotency ON jobs (feature, idempotency_key)
                    WHERE idempotency_key IS NOT NULL
                """,
                "CREATE INDEX jobs_due ON jobs (state, available_at)",
                "CREATE INDEX jobs_feature_created ON jobs (feature, created_at)",
            ]),
        Migration(
            name: "v4-webhooks",
            statements: [
                """
                CREATE TABLE webhook_deliveries (
                    id text PRIMARY KEY,
                    seq bigint GENERATED ALWAYS AS IDENTITY,
                    job_id text NOT NULL,
                    event_id text NOT NULL,
                    event_type text NOT NULL,
                    url text NOT NULL,
                    state text NOT NULL,
                    attempts bigint NOT NULL DEFAULT 0,
                    next_attempt_at double precision NOT NULL,
                    created_at double precision NOT NULL,
                    delivered_at double precision,
                    last_status bigint,
                    last_error text
                )
                """,
                "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at)",
                "CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, created_at)",
                """
                CREATE TABLE webhook_attempts (
                    delivery_id text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
                    attempt bigint NOT NULL,
                    at double precision NOT NULL,
                    status bigint,
                    error text,
                    PRIMARY KEY (delivery_id, attempt)
                )
                """,
            ]),
        Migration(
            name: "v5-jobs-lease-index",
            statements: ["CREATE INDEX jobs_leases ON jobs (state, lease_expires_at)"]),
        Migration(
            name: "v6-request-log-decisions",
            statements: [
                """
                ALTER TABLE request_log
                    ADD COLUMN sample_rate double precision NOT NULL DEFAULT 1,
                    ADD COLUMN computed_at double precision,
                    ADD COLUMN decision text,
                    ADD COLUMN input_hashes text
                """
            ]),
        Migration(
            name: "v7-run-ranges",
            statements: [
                """
                CREATE TABLE run_ranges (
                    run_id text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                    idx bigint NOT NULL,
                    row_start bigint NOT NULL,
                    row_end bigint NOT NULL,
                    state text NOT NULL,
                    owner text,
                    lease_expires_at double precision,
                    rows_done bigint NOT NULL DEFAULT 0,
                    leases bigint NOT NULL DEFAULT 0,
                    finished_at double precision,
                    PRIMARY KEY (run_id, idx)
                )
                """,
                "CREATE INDEX run_ranges_open ON run_ranges (state, run_id)",
            ]),
        Migration(
            name: "v8-job-owners",
            statements: [
                // A constant default: no table rewrite (PostgreSQL 11 and later); jobs from before count as the open
                // API's caller.
                "ALTER TABLE jobs ADD COLUMN owner text NOT NULL DEFAULT ''",
                "CREATE INDEX jobs_owner_state ON jobs (owner, state)",
                "CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL",
                "CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at)",
            ]),
        Migration(
            name: "v9-provider-batches",
            statements: [
                // The provider batch computing a range (`batch.provider_batch`), and the tokens a run's rows used.
                "ALTER TABLE run_ranges ADD COLUMN provider_batch text",
                """
                ALTER TABLE runs ADD COLUMN input_tokens bigint NOT NULL DEFAULT 0,
                    ADD COLUMN output_tokens bigint NOT NULL DEFAULT 0
                """,
            ]),
        Migration(
            name: "v9-request-log-tokens",
            statements: [
                // Nullable without a default, and the check NOT VALID: a catalog change only, with neither a table
                // rewrite nor a scan of the existing rows (all NULL) under the lock; new rows are checked. Rows whose
                // answer reported no token usage store nothing.
                """
                ALTER TABLE request_log
                    ADD COLUMN input_tokens bigint,
                    ADD COLUMN output_tokens bigint,
                    ADD CONSTRAINT request_log_tokens_not_negative
                        CHECK (input_tokens >= 0 AND output_tokens >= 0) NOT VALID
                """
            ]),
        Migration(
            name: "v10-upstream-budgets",
            statements: [
                """
                CREATE TABLE upstream_budgets (
                    upstream text PRIMARY KEY,
                    requests double precision NOT NULL,
                    tokens double precision NOT NULL,
                    updated_at double precision NOT NULL
                )
                """
            ]),
        Migration(
            name: "v11-sealed-snapshots",
            statements: [
                // A sealed snapshot's file: its checksum and size, and the uploader whose parts are the file (parts
                // of an upload that lost the race, or died, are dropped at the seal). A backfill's base snapshot.
                """
                ALTER TABLE snapshots ADD COLUMN file_checksum bigint, ADD COLUMN file_size bigint,
                    ADD COLUMN file_uploader text, ADD COLUMN base_id bigint
                """,
                """
                CREATE TABLE snapshot_file_parts (
                    snapshot_id bigint NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
                    uploader text NOT NULL,
                    idx integer NOT NULL,
                    bytes bytea NOT NULL,
                    PRIMARY KEY (snapshot_id, uploader, idx)
                )
                """,
            ]),
        Migration(
            name: "v12-advisor-measures",
            statements: [
                // As v9: nullable columns and NOT VALID checks, a catalog change only. The model version and
                // model-call time behind each sampled answer, and the process-usage ledger.
                """
                ALTER TABLE request_log
                    ADD COLUMN model_version text,
                    ADD COLUMN compute_seconds double precision,
                    ADD COLUMN compute_rows bigint,
                    ADD CONSTRAINT request_log_compute_plausible
                        CHECK (compute_seconds >= 0 AND compute_rows >= 1) NOT VALID
                """,
                """
                CREATE TABLE process_usage (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    process text NOT NULL,
                    at double precision NOT NULL,
                    seconds double precision NOT NULL,
                    cpu_seconds double precision NOT NULL,
                    features text NOT NULL
                )
                """,
                "CREATE INDEX process_usage_at ON process_usage (at)",
            ]),
        Migration(
            name: "v13-load-tests",
            statements: [
                // Load-test runs (`freshline load`), apart from the request log; per-source percentiles and outcome
                // counts as JSON text, as SQLite keeps them.
                """
                CREATE TABLE load_tests (
                    id text PRIMARY KEY,
                    feature text NOT NULL,
                    started_at double precision NOT NULL,
                    ended_at double precision NOT NULL,
                    speed double precision NOT NULL CHECK (speed > 0),
                    duration_seconds double precision NOT NULL,
                    sent bigint NOT NULL CHECK (sent >= 0),
                    answered bigint NOT NULL CHECK (answered >= 0),
                    shed bigint NOT NULL CHECK (shed >= 0),
                    fallback bigint NOT NULL CHECK (fallback >= 0),
                    errors bigint NOT NULL CHECK (errors >= 0),
                    achieved_rate double precision NOT NULL,
                    target_url text NOT NULL,
                    sources text NOT NULL,
                    outcomes text NOT NULL
                )
                """,
                "CREATE INDEX load_tests_feature_started ON load_tests (feature, started_at)",
            ]),
    ]

    /// The session advisory lock migrations run under, so that processes starting at once apply each migration
    /// exactly once (the others wait, then find it applied).
    static let migrationLock = lockKey("migrations", "schema")

    /// Applies the pending migrations, on one connection holding the migration lock.
    ///
    /// The connection is its own, outside the pool and not bounded like a store call: the pool's sessions carry
    /// `statement_timeout` (the call timeout), while a migration, or waiting for another process's, may take longer.
    /// A server that goes away fails it (the connection closes); so does cancellation, which closes the connection
    /// (a statement in flight is not cancelled otherwise). The session lock goes with the connection.
    func migrate() async throws {
        let connection = try await PostgresConnection.connect(
            configuration: try location.connectionConfiguration(), id: 1, logger: logger)
        do {
            try await withTaskCancellationHandler {
                try await connection.query("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: logger)
                try await applyPending(on: connection)
            } onCancel: {
                let _: Void = connection.close()
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    private func applyPending(on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS freshline_migrations (
                name text PRIMARY KEY,
                applied_at double precision NOT NULL
            )
            """,
            logger: logger)
        var applied: Set<String> = []
        for try await name in try await connection.query("SELECT name FROM freshline_migrations", logger: logger)
            .decode(String.self)
        {
            applied.insert(name)
        }
        for migration in Self.migrations where !applied.contains(migration.name) {
            try await connection.withTransaction(logger: logger) { connection in
                for statement in migration.statements {
                    try await connection.query(statement, logger: logger)
                }
                try await connection.query(
                    """
                    INSERT INTO freshline_migrations (name, applied_at)
                    VALUES (\(migration.name), extract(epoch FROM clock_timestamp())::double precision)
                    """,
                    logger: logger)
            }
            logger.info("applied migration", metadata: ["migration": "\(migration.name)"])
        }
    }
}
