public import FreshlineCore
public import FreshlineEngine

/// What a load test will send, and where its keys and inputs came from: the feature's recorded traffic (the request
/// log of the advisor's window) or a requests file (`LoadScript`).
public struct LoadPlan: Sendable {
    public var schedule: LoadSchedule
    /// Where the keys and inputs came from, for the command's output (`keys: …`, `inputs: …`).
    public var notes: [String]

    public init(schedule: LoadSchedule, notes: [String]) {
        self.schedule = schedule
        self.notes = notes
    }

    /// The plan from the request log: the feature's samples of the advisor's window before `now`, their key hashes
    /// resolved to real keys where the published snapshot or the declared entity set has them, and shape-correct
    /// inputs built from the model's metadata (`SyntheticInputs`) for requests that carried inputs.
    public static func recorded(
        _ feature: FeatureSpec, manifest: Manifest, stores: StoreSet, metadata: ModelMetadata?, speed: Double,
        durationSeconds: Double, now: Double
    ) async throws -> LoadPlan {
        let window = manifest.advisor.windowSeconds
        let samples = try await stores.requestLog.samples(
            feature: feature.name, since: now - window, until: .infinity, limit: 500_000)
        guard !samples.isEmpty else {
            throw LoadPlanError(
                "feature '\(feature.name)' has no recorded traffic in the request log of the last "
                    + "\(CostModel.formatAge(window)) (advisor.window): serve it first, or give --requests FILE")
        }
        let known = try await LoadKeys.known(
            feature, manifest: manifest, batchStore: stores.batch, snapshotDirectory: stores.snapshotDirectory)
        var resolver = LoadKeyResolver(known: known.keys, seen: Set(samples.compactMap(\.keyHash)))
        let synthetic = SyntheticInputs(feature: feature, metadata: metadata)
        let arrivals = RecordedArrival.replaying(samples, keys: &resolver) { sample, copy in
            synthetic.values(for: sample, copy: copy)
        }
        let rates = Set(samples.map(\.sampleRate))
        var notes = [
            "traffic: \(samples.count) samples from the request log"
                + (rates == [1] ? "" : " (sampled; each stands for 1/rate requests)")
                + ", \(arrivals.count) requests to replay",
            "keys: " + resolver.summary + (known.basis.map { ", looked up in \($0)" } ?? ""),
        ]
        if samples.contains(where: \.hasRequestInputs) {
            let shapes = synthetic.slots.map { "\($0.name): \($0.elementType)\($0.shape.isEmpty ? "" : "\($0.shape)")" }
            notes.append(
                "inputs: synthesized from the model's input metadata (\(shapes.joined(separator: ", "))), the same "
                    + "recorded value hash giving the same value; the log keeps hashes, not values")
        }
        return LoadPlan(
            schedule: LoadSchedule(arrivals: arrivals, speed: speed, durationSeconds: durationSeconds), notes: notes)
    }

    /// The plan from a requests file: its real keys and inputs, at its arrival times.
    public static func script(path: String, speed: Double, durationSeconds: Double) throws -> LoadPlan {
        let arrivals = try LoadScript.read(path: path)
        return LoadPlan(
            schedule: LoadSchedule(arrivals: arrivals, speed: speed, durationSeconds: durationSeconds),
            notes: ["traffic: \(arrivals.count) requests from \(path), their keys and inputs as written"])
    }
}

/// Why a load test could not be planned.
public struct LoadPlanError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension LoadRunner {
    /// A new run id: `load_` and 16 random hex digits.
    public static func newID() -> String { RandomID.make("load_") }
}
