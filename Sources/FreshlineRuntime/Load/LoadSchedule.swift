public import FreshlineCore
public import FreshlineJSON

/// One recorded request to replay: when it arrived (seconds; only the gaps matter), its key and inputs.
public struct RecordedArrival: Sendable, Equatable {
    public var at: Double
    public var key: String?
    public var inputs: [String: JSONValue]

    public init(at: Double, key: String?, inputs: [String: JSONValue] = [:]) {
        self.at = at
        self.key = key
        self.inputs = inputs
    }
}

/// One request of a load test: when to send it (seconds after the start), its key and inputs.
public struct LoadRequest: Sendable, Equatable {
    public var offset: Double
    public var key: String?
    public var inputs: [String: JSONValue]

    /// The prediction request's body: `{"key": …, "inputs": {…}}`.
    public var body: JSONValue {
        var object: [String: JSONValue] = [:]
        if let key { object["key"] = .string(key) }
        if !inputs.isEmpty { object["inputs"] = .object(inputs) }
        return .object(object)
    }
}

/// When each request of a load test is sent: the recorded arrival offsets divided by the speed, the recorded shape
/// repeated until the bound (`duration`) when it is shorter, every request sent at its time whatever the answers
/// (open loop).
public struct LoadSchedule: Sendable {
    public var requests: [LoadRequest]
    public var speed: Double
    public var durationSeconds: Double
    /// One pass of the recorded traffic, unscaled: its span plus one mean gap (so passes follow each other evenly).
    public var passSeconds: Double
    /// Passes begun (the last may be cut by the bound).
    public var passes: Int
    /// Recorded requests in one pass.
    public var recorded: Int

    /// The most requests one load test sends (a bound on memory: about 100 bytes each plus their inputs).
    public static let maxRequests = 2_000_000

    /// The schedule for `arrivals` (any order) at `speed`× within `durationSeconds`.
    public init(arrivals: [RecordedArrival], speed: Double, durationSeconds: Double) {
        self.speed = speed
        self.durationSeconds = durationSeconds
        let sorted = arrivals.sorted { $0.at < $1.at }
        recorded = sorted.count
        guard let first = sorted.first?.at, let last = sorted.last?.at, speed > 0, durationSeconds > 0 else {
            requests = []
            passSeconds = 0
            passes = 0
            return
        }
        let span = last - first
        passSeconds = sorted.count > 1 && span > 0 ? span * Double(sorted.count) / Double(sorted.count - 1) : 1
        var requests: [LoadRequest] = []
        var pass = 0
        outer: while true {
            let base = Double(pass) * passSeconds
            guard base / speed < durationSeconds else { break }
            pass += 1
            for arrival in sorted {
                let offset = (base + arrival.at - first) / speed
                guard offset < durationSeconds, requests.count < Self.maxRequests else { break outer }
                requests.append(LoadRequest(offset: offset, key: arrival.key, inputs: arrival.inputs))
            }
        }
        self.requests = requests
        passes = pass
    }

    /// The rate the schedule asks for, requests per second.
    public var targetRate: Double {
        guard let last = requests.last?.offset, requests.count > 1, last > 0 else { return Double(requests.count) }
        return Double(requests.count) / min(durationSeconds, last * Double(requests.count) / Double(requests.count - 1))
    }
}

/// Turns the request log's key hashes back into keys a server can answer: keys of the feature's published snapshot
/// or declared entity set whose hash matches (`known`); a hash with no match gets a stable stand-in (`load-<hash>`:
/// the same hash, the same key). Copies for the keys the sampling left out (a sample at rate r stands for 1/r keys)
/// take known keys the log never saw, else stand-ins.
public struct LoadKeyResolver: Sendable {
    private let known: [String: String]
    private var spare: [String]
    private var copies: [String: String] = [:]
    /// Distinct hashes found among the known keys, and those given stand-ins.
    public private(set) var resolved = Set<String>()
    public private(set) var synthesized = Set<String>()
    /// Copies given a known key the log never saw, and copies given a stand-in.
    public private(set) var spareUsed = 0
    public private(set) var copiesSynthesized = 0

    /// `known`: key hash (hex, as the request log has it) → key; `seen`: hashes the log holds (their keys are not
    /// spare).
    public init(known: [String: String], seen: Set<String>) {
        self.known = known
        spare = known.filter { !seen.contains($0.key) }.sorted { $0.key < $1.key }.map(\.value).reversed()
    }

    /// The key for a logged hash.
    public mutating func key(hash: String) -> String {
        if let key = known[hash] {
            resolved.insert(hash)
            return key
        }
        synthesized.insert(hash)
        return "load-\(hash)"
    }

    /// The key of copy `copy` (≥ 1) of a sampled key: the same copy of the same hash always gets the same key.
    public mutating func key(hash: String, copy: Int) -> String {
        if copy == 0 { return key(hash: hash) }
        let id = "\(hash)#\(copy)"
        if let assigned = copies[id] { return assigned }
        let assigned: String
        if let next = spare.popLast() {
            assigned = next
            spareUsed += 1
        } else {
            assigned = "load-\(hash)-\(copy)"
            copiesSynthesized += 1
        }
        copies[id] = assigned
        return assigned
    }

    /// What the resolution did, for the command's output.
    public var summary: String {
        var text =
            "\(resolved.count + synthesized.count) distinct logged keys: \(resolved.count) resolved to real keys, "
            + "\(synthesized.count) synthesized (stable stand-ins load-<hash>: the log keeps hashes, not keys)"
        if spareUsed + copiesSynthesized > 0 {
            text +=
                "; keys left out by sampling: \(spareUsed) stood for by unlogged real keys, "
                + "\(copiesSynthesized) synthesized"
        }
        return text
    }
}

extension RecordedArrival {
    /// The request log's samples as arrivals to replay. Each sample stands for 1/rate requests (keyed requests are
    /// sampled by key): copy 0 keeps the logged key, the other copies take other keys (`LoadKeyResolver`) and are
    /// spread over the mean gap between samples. Requests refused as the caller's mistake are left out (their inputs
    /// cannot be rebuilt). `inputs` gives a sample's inputs beyond the key (only for samples that carried some).
    public static func replaying(
        _ samples: [RequestLogSample], keys: inout LoadKeyResolver, maxCopies: Int = 1_000,
        inputs: (RequestLogSample, _ copy: Int) -> [String: JSONValue]
    ) -> [RecordedArrival] {
        let kept = samples.filter { $0.outcome != "bad_request" }.sorted { $0.at < $1.at }
        guard let first = kept.first?.at, let last = kept.last?.at else { return [] }
        let gap = kept.count > 1 ? (last - first) / Double(kept.count - 1) : 1
        var arrivals: [RecordedArrival] = []
        for sample in kept {
            let copies = max(1, min(maxCopies, Int((1 / max(sample.sampleRate, 1e-9)).rounded())))
            for copy in 0..<copies {
                let key = sample.keyHash.map { keys.key(hash: $0, copy: copy) }
                arrivals.append(
                    RecordedArrival(
                        at: sample.at + gap * Double(copy) / Double(copies), key: key,
                        inputs: sample.hasRequestInputs ? inputs(sample, copy) : [:]))
            }
        }
        return arrivals
    }
}
