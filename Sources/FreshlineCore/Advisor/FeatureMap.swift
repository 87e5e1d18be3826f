/// The feature map of `freshline advise --prometheus URL --feature-map FILE`: for each feature served elsewhere,
/// where its traffic is in Prometheus (selectors of its counters and latency histogram), the declarations the
/// advisor needs that the stack cannot give (current pattern, latency budget, staleness, compute time, entities),
/// and optionally a `--requests` file of its answers. Read by `FeatureMapLoader` (Runtime); the keys are
/// documented there and in docs/advisor.md ("Features served elsewhere").
public struct FeatureMap: Sendable, Equatable {
    /// The file the map was read from (for messages and evidence).
    public var path: String
    /// The window the numbers are read over (`window:`; the command line's `--window` wins).
    public var windowSeconds: Double?
    /// The interval of the peak-to-average measure (`step:`; default the largest of 1 h, 5 min, 1 min, 10 s that
    /// gives at least 12 intervals over the window, else 10 s).
    public var stepSeconds: Double?
    /// The features, in the file's order.
    public var features: [Entry]

    public init(path: String, windowSeconds: Double? = nil, stepSeconds: Double? = nil, features: [Entry] = []) {
        self.path = path
        self.windowSeconds = windowSeconds
        self.stepSeconds = stepSeconds
        self.features = features
    }

    /// Where one feature's traffic is in Prometheus: PromQL selectors (a metric name with optional label
    /// matchers, `http_requests_total{job="risk",handler="/score"}`).
    public struct Metrics: Sendable, Equatable {
        /// A counter of every request (required).
        public var requests: String
        /// A counter of failed requests: the request counter with a status matcher
        /// (`…{status=~"5.."}`) or an error counter of its own.
        public var errors: String?
        /// Counters of timed-out and shed requests.
        public var timeouts: String?
        public var shed: String?
        /// The latency histogram's `_bucket` series.
        public var latencyBuckets: String?
        /// Seconds per unit of the histogram's `le` (1 for seconds, the Prometheus convention; 0.001 for ms).
        public var latencyUnitSeconds: Double = 1
        /// The serving process's `process_cpu_seconds_total`, for CPU seconds per answer.
        public var cpuSeconds: String?

        public init(requests: String) {
            self.requests = requests
        }
    }

    /// One feature served elsewhere.
    public struct Entry: Sendable, Equatable {
        public var name: String
        /// The line its entry starts on.
        public var line: Int
        public var metrics: Metrics?
        /// A file of its answers (JSON Lines or CSV, `RequestsFile`), relative to the map's folder.
        public var requestsFile: String?
        public var pattern: ServingPattern = .realtime
        public var latencyBudgetSeconds: Double = 0.1
        public var userBlocking = true
        public var maxStalenessSeconds: Double?
        /// The batch interval a batch would run at, and rule 2's reference age.
        public var refreshSeconds: Double?
        /// Model compute per prediction at batch 1 and in batches, when known.
        public var msPerPrediction: Double?
        public var batchMsPerPrediction: Double?
        /// The entities a batch would compute (rows per run).
        public var entities: Double?
        /// Whether requests carry their own inputs that no batch could know (for features without a requests file).
        public var unboundedInput: Bool?
        /// The failure policy, in words.
        public var failureMode: String?
        /// How answers of the requests file are compared.
        public var decision = DecisionSpec()

        public init(name: String, line: Int) {
            self.name = name
            self.line = line
        }

        /// `FILE:LINE` of the entry.
        func origin(_ path: String) -> String { "\(path):\(line)" }
    }

    /// A mistake in the map, as `FILE:LINE: key.path: message`.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var keyPath: String
        public var message: String

        public init(file: String, line: Int, keyPath: String, message: String) {
            self.file = file
            self.line = line
            self.keyPath = keyPath
            self.message = message
        }

        public var description: String { "\(file):\(line): \(keyPath): \(message)" }
    }

    /// The default interval of the peak measure for a window: the largest of 1 h, 5 min, 1 min and 10 s that gives
    /// at least 12 intervals, else 10 s (as for the request log).
    public static func defaultStep(windowSeconds: Double) -> Double {
        [3_600.0, 300, 60, 10].first { windowSeconds / $0 >= 12 } ?? 10
    }
}
