/// A feature's batch section: what to enumerate, when, and how answers from the resulting snapshot are served.
/// Any feature with a `batch:` section is answered from its published snapshot first (`source: batch`);
/// `pattern: batch` requires one.
public struct BatchSpec: Sendable, Equatable {
    /// Where the entity rows come from.
    public enum Source: Sendable, Equatable {
        /// A CSV file with a header row (RFC 4180 quoting).
        case csv(path: String)
        /// A JSON Lines file: one JSON object per line.
        case jsonLines(path: String)
        /// A query against an SQLite database file. Reads are paged, so the query should have a stable order.
        case sql(database: String, query: String)

        /// The file the source reads (CSV, JSON Lines or the database).
        public var path: String {
            switch self {
            case .csv(let path), .jsonLines(let path), .sql(let path, _): path
            }
        }
    }

    /// How one model input is read from a source row.
    public enum ColumnMapping: Sendable, Equatable {
        /// One column: a scalar, or an array (a JSON array in a CSV or SQL text cell) for a vector input.
        case column(String)
        /// Several scalar columns, concatenated in this order into a vector input.
        case columns([String])
    }

    /// What to answer for a key the snapshot does not hold.
    public enum ColdStart: String, Sendable, CaseIterable {
        /// Compute it in real time from the request's inputs (default).
        case realtime
        /// Answer the feature's configured default (`on_failure.default`).
        case `default`
        /// Answer 404 `unknown_key`.
        case error
    }

    /// What to do when the snapshot is older than the caller's `max_staleness`.
    public enum OnStale: String, Sendable, CaseIterable {
        /// Recompute in real time from the request's inputs; when that cannot answer, fall back to the stale value
        /// flagged `stale` (default).
        case realtime
        /// Answer the stale value with `source: fallback` and `stale: true`.
        case fallback
        /// Refuse: the configured default if there is one, else 503 `stale`.
        case error
    }

    /// What the scheduler does about slots missed while no server was running.
    public enum CatchUp: String, Sendable, CaseIterable {
        /// Run once at start-up when at least one slot was missed (missed slots coalesce into one run; default).
        case once
        /// Wait for the next slot.
        case skip
    }

    /// The cron schedule (five fields, UTC), or `nil` for runs started by hand or by API only.
    public var schedule: CronSchedule?
    /// The entity source.
    public var source: Source
    /// The source column holding the entity key (default: the feature's `key`).
    public var keyColumn: String
    /// Model input → source column(s); inputs not listed read the column of the same name.
    public var columns: [String: ColumnMapping]
    /// Keys missing from the snapshot (default `realtime`).
    public var coldStart: ColdStart
    /// Snapshots older than the contract (default `realtime`).
    public var onStale: OnStale
    /// Missed slots (default `once`).
    public var catchUp: CatchUp
    /// Published snapshots kept (default 3, at least 1).
    public var retention: Int
    /// Rows read, computed and checkpointed together (default 4096).
    public var chunkRows: Int
    /// Threads that run the model during a run (default 2).
    public var threads: Int
    /// Source rows per range, the unit several workers share (default: whole chunks, about 16 ranges per run).
    public var rangeRows: Int?
    /// The largest share of a run's rows that may fail before the run is refused instead of published (0…1,
    /// default `PublishPolicy.defaultMaxFailedShare`).
    public var maxFailedShare: Double = PublishPolicy.defaultMaxFailedShare
    /// Whether a run with no keys may replace a snapshot that has some (default `false`).
    public var allowEmpty = false
    /// Runs through the upstream's Batch API instead of calling it row by row (`provider_batch`; `openai` models).
    public var providerBatch: ProviderBatch?
    /// Where each entry of `columns` is written, for problems about one input's mapping.
    public var columnLocations: [String: SourceLocation] = [:]
    /// Where the section starts in the manifest.
    public var location: SourceLocation

    /// Makes a batch section with the documented defaults.
    public init(
        schedule: CronSchedule? = nil, source: Source, keyColumn: String, columns: [String: ColumnMapping] = [:],
        coldStart: ColdStart = .realtime, onStale: OnStale = .realtime, catchUp: CatchUp = .once, retention: Int = 3,
        chunkRows: Int = 4096, threads: Int = 2, location: SourceLocation
    ) {
        self.schedule = schedule
        self.source = source
        self.keyColumn = keyColumn
        self.columns = columns
        self.coldStart = coldStart
        self.onStale = onStale
        self.catchUp = catchUp
        self.retention = retention
        self.chunkRows = chunkRows
        self.threads = threads
        self.location = location
    }

    /// When a finished run may replace the published snapshot.
    public var publishPolicy: PublishPolicy { PublishPolicy(maxFailedShare: maxFailedShare, allowEmpty: allowEmpty) }

    /// The source rows per range a run uses: `range_rows`, else whole chunks, about 16 ranges per run; with a
    /// provider batch (one per range), `range_rows` or else the most one provider batch takes.
    public func rangeRows(rowsTotal: Int) -> Int {
        guard providerBatch != nil else {
            return rangeRows ?? RunRange.defaultRangeRows(rowsTotal: rowsTotal, chunkRows: chunkRows)
        }
        // Each range is one provider batch: as few as the provider's limit allows.
        return min(rangeRows ?? ProviderBatch.maximumRequests, ProviderBatch.maximumRequests)
    }

    /// The column mapping for one model input (its own name when none is configured).
    public func mapping(forInput name: String) -> ColumnMapping { columns[name] ?? .column(name) }
}

/// How a batch feature runs through its upstream's Batch API (OpenAI's `/v1/batches`): each range's rows become
/// one JSONL input file, uploaded and run by the provider within `completionWindow`, at the provider's batch price.
public struct ProviderBatch: Sendable, Equatable {
    /// How often a submitted batch is polled (default 60 s).
    public var pollInterval: Duration
    /// The window the provider is given (`24h`, the only one OpenAI takes).
    public var completionWindow: String
    /// Where the setting is written in the manifest.
    public var location: SourceLocation

    /// The most requests OpenAI takes in one batch: a range of a provider-batch run never holds more rows.
    public static let maximumRequests = 50_000

    public init(pollInterval: Duration = .seconds(60), completionWindow: String = "24h", location: SourceLocation) {
        self.pollInterval = pollInterval
        self.completionWindow = completionWindow
        self.location = location
    }
}
