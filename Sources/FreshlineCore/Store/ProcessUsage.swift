internal import FreshlineJSON

/// What one serving process consumed over an interval, and what it answered and computed: the ledger the advisor
/// prices real time by (process CPU over answers, not engine time alone). Written by each server every minute.
public struct ProcessUsage: Sendable, Equatable {
    /// `host:pid` of the process.
    public var process: String
    /// The end of the interval, seconds since 1970.
    public var at: Double
    /// The interval's length in seconds.
    public var seconds: Double
    /// CPU time of the whole process over the interval (user + system), seconds.
    public var cpuSeconds: Double
    /// Per feature: what it answered and computed in the interval.
    public var features: [String: FeatureUsage]

    public init(process: String, at: Double, seconds: Double, cpuSeconds: Double, features: [String: FeatureUsage]) {
        self.process = process
        self.at = at
        self.seconds = seconds
        self.cpuSeconds = cpuSeconds
        self.features = features
    }
}

extension ProcessUsage {
    /// The features as the stores keep them: JSON text, `{"feature": {"answers": {...}, "model_seconds": …}}`.
    public static func encodeFeatures(_ features: [String: FeatureUsage]) -> String {
        var object: [String: JSONValue] = [:]
        for (name, u) in features {
            object[name] = .object([
                "answers": .object(u.answers.mapValues { .number(plausible($0)) }),
                "model_seconds": .number(plausible(u.modelSeconds)), "model_calls": .number(plausible(u.modelCalls)),
                "batch_rows": .number(plausible(u.batchRows)),
                "batch_cpu_seconds": .number(plausible(u.batchCPUSeconds)),
            ])
        }
        return String(decoding: JSONValue.object(object).serialized(), as: UTF8.self)
    }

    /// Reads what `encodeFeatures` wrote; a damaged row reads as no features (the interval then counts as idle
    /// CPU, which the advisor's evidence shows).
    public static func decodeFeatures(_ text: String) -> [String: FeatureUsage] {
        guard case .object(let object)? = try? JSONValue.parse(Array(text.utf8)) else { return [:] }
        var result: [String: FeatureUsage] = [:]
        for (name, value) in object {
            guard case .object(let fields) = value else { continue }
            var u = FeatureUsage()
            if case .object(let answers)? = fields["answers"] {
                for (source, n) in answers { u.answers[source] = plausible(n.doubleValue) }
            }
            u.modelSeconds = plausible(fields["model_seconds"]?.doubleValue)
            u.modelCalls = plausible(fields["model_calls"]?.doubleValue)
            u.batchRows = plausible(fields["batch_rows"]?.doubleValue)
            u.batchCPUSeconds = plausible(fields["batch_cpu_seconds"]?.doubleValue)
            result[name] = u
        }
        return result
    }

    private static func plausible(_ x: Double?) -> Double {
        guard let x, x.isFinite, x >= 0, x < 1e15 else { return 0 }
        return x
    }

}

/// One feature's share of a process's interval.
public struct FeatureUsage: Sendable, Equatable, Codable {
    /// Requests answered (every one, not sampled), by source (`realtime`, `batch`, `async`, `fallback`, `default`);
    /// refusals count under `refused`.
    public var answers: [String: Double] = [:]
    /// Wall time of the model calls behind real-time answers (one per call, however many rows), seconds.
    public var modelSeconds: Double = 0
    /// Model calls made for real-time answers.
    public var modelCalls: Double = 0
    /// Rows batch runs computed, and the CPU time of the threads that read and computed them, seconds.
    public var batchRows: Double = 0
    public var batchCPUSeconds: Double = 0

    public init() {}

    /// Every answer and refusal.
    public var requests: Double { answers.values.reduce(0, +) }

    mutating func add(_ other: FeatureUsage) {
        for (source, n) in other.answers { answers[source, default: 0] += n }
        modelSeconds += other.modelSeconds
        modelCalls += other.modelCalls
        batchRows += other.batchRows
        batchCPUSeconds += other.batchCPUSeconds
    }
}

/// Where the process-usage ledger is kept (SQLite or PostgreSQL).
public protocol ProcessUsageStore: Sendable {
    /// Appends one interval.
    func appendUsage(_ usage: ProcessUsage) async throws
    /// The intervals ending in `[since, until)`, oldest first.
    func usage(since: Double, until: Double) async throws -> [ProcessUsage]
    /// Deletes intervals older than `before`; returns how many.
    func deleteUsage(before: Double) async throws -> Int
}

/// What serving costs per answer besides the model, and what a batch row costs, measured from the ledger.
public struct ServingUsage: Sendable, Equatable, Codable {
    /// CPU seconds per answer of the serving process besides model time (HTTP, JSON, scheduling, logging);
    /// `nil` when the ledger has no answers in the window.
    public var servingSecondsPerAnswer: Double?
    public var servingBasis: String
    /// CPU seconds per row of the feature's batch runs; `nil` when no run computed rows in the window.
    public var batchCPUSecondsPerRow: Double?
    public var batchBasis: String

    public init(
        servingSecondsPerAnswer: Double?, servingBasis: String, batchCPUSecondsPerRow: Double?, batchBasis: String
    ) {
        self.servingSecondsPerAnswer = servingSecondsPerAnswer
        self.servingBasis = servingBasis
        self.batchCPUSecondsPerRow = batchCPUSecondsPerRow
        self.batchBasis = batchBasis
    }

    /// From the ledger's intervals: the processes' CPU less their batch runs' and their model calls', less the idle
    /// rate (CPU per second of intervals with no request and no batch row: timers, the store, the logger) over the
    /// busy intervals, divided by every answer of every feature (the serving path is shared). Batch CPU per row is
    /// the feature's own.
    public static func measure(_ records: [ProcessUsage], feature: String) -> ServingUsage {
        var idleCPU = 0.0
        var idleSeconds = 0.0
        var busyCPU = 0.0
        var busySeconds = 0.0
        var model = 0.0
        var batch = 0.0
        var answers = 0.0
        var own = FeatureUsage()
        for r in records where r.seconds > 0 && r.cpuSeconds.isFinite && r.cpuSeconds >= 0 {
            var total = FeatureUsage()
            for (_, usage) in r.features { total.add(usage) }
            if let mine = r.features[feature] { own.add(mine) }
            if total.requests == 0 && total.batchRows == 0 {
                idleCPU += r.cpuSeconds
                idleSeconds += r.seconds
                continue
            }
            busyCPU += r.cpuSeconds
            busySeconds += r.seconds
            model += total.modelSeconds
            batch += total.batchCPUSeconds
            answers += total.requests
        }
        let idleRate = idleSeconds > 0 ? idleCPU / idleSeconds : 0
        var serving: Double?
        var servingBasis = "not measured: no answers in the process ledger over the window"
        if answers > 0 {
            let net = max(0, busyCPU - batch - model - idleRate * busySeconds)
            serving = net / answers
            let idle =
                idleSeconds > 0
                ? "less \(CostModel.formatSeconds(idleRate))/s idle (\(CostModel.formatSeconds(idleSeconds)) of idle intervals)"
                : "no idle interval to subtract"
            servingBasis =
                "process CPU \(CostModel.formatSeconds(busyCPU)) over \(CostModel.format(answers)) requests, less "
                + "\(CostModel.formatSeconds(model)) model time and \(CostModel.formatSeconds(batch)) batch runs, "
                + idle
        }
        var perRow: Double?
        var batchBasis = "not measured: no batch rows in the ledger over the window"
        if own.batchRows > 0 {
            perRow = own.batchCPUSeconds / own.batchRows
            batchBasis =
                "runs' thread CPU \(CostModel.formatSeconds(own.batchCPUSeconds)) over "
                + "\(CostModel.format(own.batchRows)) rows"
        }
        return ServingUsage(
            servingSecondsPerAnswer: serving, servingBasis: servingBasis, batchCPUSecondsPerRow: perRow,
            batchBasis: batchBasis)
    }
}
