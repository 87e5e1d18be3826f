import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineHTTP
import FreshlineJSON
import FreshlineRuntime
import FreshlineStore
import FreshlineTestSupport
import FreshlineTesting
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Testing

/// The hybrid pattern: a feature takes inputs from other features' snapshots (with their own staleness limits
/// and missing-key policies), joins them with request-time signals, and reports where each input came from.
@Suite("Composition")
struct CompositionTests {
    static let ops: HTTPFields = [.authorization: "Bearer ops-secret", .contentType: "application/json"]
    static let xColumns = (0..<12).map { "f\($0)" }

    /// Per-user rows: 12 features (the candidate side) and 3 ids; users u0…u19.
    static func userRow(_ u: Int) -> [Double] { (0..<15).map { j in Double((u * 7 + j * 3) % 11) - 5 } }

    static func manifest(onMissing: String = "error", extra: String = "") -> String {
        """
        version: 1
        models:
          afe: ZOO/ml_afe_scaler_normalizer.onnx
        features:
          user_vec:
            model: afe
            pattern: batch
            key: user_id
            max_staleness: 1h
            batch:
              source: {csv: users.csv}
              columns:
                X: [\(xColumns.joined(separator: ", "))]
                Xi: [s0, s1, s2]
          rerank:
            model: afe
            pattern: hybrid
            key: user_id
            latency_budget: 60s  # deadlines count from arrival, and ~300 tests start at once on 2 cores
            compose:
              X:
                from: user_vec
                output: norm_max
                max_staleness: 2h
                on_missing: \(onMissing)
        \(extra)
        tokens:
          - {name: ops, token: ops-secret, scopes: [admin, predict]}
        """
    }

    /// A server on `yaml` with `user_vec`'s snapshot published first, unless `publish` is false.
    func withServer(
        _ yaml: String, publish: Bool = true,
        _ body: @Sendable @escaping (any TestClientProtocol, ServingRuntime, ManualWallClock) async throws -> Void
    ) async throws {
        let path = try TestManifest.write(yaml)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        var csv = "user_id," + Self.xColumns.joined(separator: ",") + ",s0,s1,s2\n"
        for u in 0..<20 {
            let row = Self.userRow(u)
            csv +=
                "u\(u)," + row.prefix(12).map { String($0) }.joined(separator: ",") + ","
                + row.suffix(3).map { String(Int($0) + 5) }.joined(separator: ",") + "\n"
        }
        try csv.write(to: folder.appendingPathComponent("users.csv"), atomically: true, encoding: .utf8)
        try await ClockedServer.run(manifest: path) { client, runtime, clock in
            guard publish else { return try await body(client, runtime, clock) }
            let run = try await #require(runtime.batch).trigger(feature: "user_vec")
            try await Wait.until("user_vec serves \(run.id)") {
                runtime.features["user_vec"]?.snapshot?.info.runID == run.id
            }
            try await body(client, runtime, clock)
        }
    }

    static func predict(_ client: any TestClientProtocol, _ body: String) async throws -> (
        HTTPResponse.Status, [String: JSONValue]
    ) {
        var result: (HTTPResponse.Status, [String: JSONValue]) = (.ok, [:])
        try await client.execute(
            uri: "/v1/features/rerank/predict", method: .post, headers: ops, body: ByteBuffer(string: body)
        ) { response in
            result = (response.status, try HTTPAPITests.json(response.body))
        }
        return result
    }

    @Test("the feature detail and the answers report the same snapshot age, by the runtime's clock")
    func featureDetailAgeUsesTheRuntimeClock() async throws {
        try await withServer(Self.manifest()) { client, _, clock in
            clock.advance(by: 600)
            let (_, answer) = try await Self.predict(client, #"{"key": "u3", "inputs": {"Xi": [4, 1, 7]}}"#)
            guard case .object(let from)? = answer["inputs_from"], case .object(let x)? = from["X"] else {
                Issue.record("no inputs_from.X in \(answer)")
                return
            }
            try await client.execute(uri: "/v1/features/user_vec", method: .get, headers: Self.ops) { response in
                #expect(response.status == .ok)
                let json = try HTTPAPITests.json(response.body)
                guard case .object(let live)? = json["live"], case .object(let snapshot)? = live["snapshot"] else {
                    Issue.record("no live.snapshot in \(json)")
                    return
                }
                // The manual clock starts weeks ahead of the system's: an age read from `Date()` would be 0.
                #expect(snapshot["age_seconds"] == x["age_seconds"])
                #expect(snapshot["age_seconds"] == .number(600) || snapshot["age_seconds"] == .integer(600))
            }
        }
    }

    @Test("a composed input comes from the source's snapshot; the answer reports its source and age")
    func composesFromSnapshot() async throws {
        try await withServer(Self.manifest()) { client, runtime, clock in
            clock.advance(by: 600)
            let (status, json) = try await Self.predict(client, #"{"key": "u3", "inputs": {"Xi": [4, 1, 7]}}"#)
            #expect(status == .ok)
            #expect(json["source"] == .string("realtime"))
            guard case .object(let from)? = json["inputs_from"], case .object(let x)? = from["X"] else {
                Issue.record("no inputs_from.X in \(json)")
                return
            }
            #expect(x["feature"] == .string("user_vec"))
            #expect(x["source"] == .string("batch"))
            #expect(x["snapshot"] == .string("v1"))
            #expect(x["key"] == .string("u3"))
            #expect(x["age_seconds"] == .number(600) || x["age_seconds"] == .integer(600))
            // The answer equals the engine's on the snapshot's value joined with the request's signals.
            let stored = try #require(runtime.features["user_vec"]?.snapshot?.outputs(for: "u3")?["norm_max"])
            let model = try #require(runtime.models["afe"]?.local)
            let tensors = try RowBatch.tensors(
                rows: [["X": stored, "Xi": .array([.integer(4), .integer(1), .integer(7)])]],
                inputs: model.metadata.inputs)
            let expected = try RowBatch.rows(outputs: model.run(tensors), count: 1)[0]
            guard case .object(let outputs)? = json["outputs"] else {
                Issue.record("no outputs")
                return
            }
            func numbers(_ v: JSONValue?) -> [Double] {
                if case .array(let items)? = v { return items.compactMap(\.doubleValue) }
                return []
            }
            #expect(numbers(outputs["xi_picked"]) == numbers(expected["xi_picked"]))
            #expect(numbers(outputs["norm_max"]) == numbers(expected["norm_max"]))
            #expect(numbers(outputs["norm_max"]).count == 12)
        }
    }

    @Test("missing keys, stale values and requests that send a composed input")
    func missingStaleAndRefused() async throws {
        try await withServer(Self.manifest()) { client, _, clock in
            let (missing, body) = try await Self.predict(client, #"{"key": "nobody", "inputs": {"Xi": [1, 2, 3]}}"#)
            #expect(missing == .notFound)
            #expect("\(body)".contains("user_vec"))
            let x = "[" + Array(repeating: "0.5", count: 12).joined(separator: ",") + "]"
            let (refused, refusal) = try await Self.predict(
                client, #"{"key": "u1", "inputs": {"Xi": [1, 2, 3], "X": \#(x)}}"#)
            #expect(refused == .badRequest)
            guard case .object(let error)? = refusal["error"], case .string(let message)? = error["message"] else {
                Issue.record("no error message")
                return
            }
            #expect(message.contains("comes from feature 'user_vec'"))
            clock.advance(by: 3 * 3_600)  // older than the input's 2 h limit
            let (stale, _) = try await Self.predict(client, #"{"key": "u1", "inputs": {"Xi": [1, 2, 3]}}"#)
            #expect(stale == .serviceUnavailable)
        }
        // Before the source's first snapshot: 503 (the server's state), not a 404 that would blame the key.
        try await withServer(Self.manifest(), publish: false) { client, _, _ in
            let (status, json) = try await Self.predict(client, #"{"key": "u1", "inputs": {"Xi": [1, 2, 3]}}"#)
            #expect(status == .serviceUnavailable)
            #expect("\(json)".contains("unavailable") && "\(json)".contains("no published snapshot yet"))
        }
        let zeros = "[" + Array(repeating: "0", count: 12).joined(separator: ", ") + "]"
        try await withServer(Self.manifest(onMissing: "{default: \(zeros)}")) { client, _, _ in
            let (status, json) = try await Self.predict(client, #"{"key": "nobody", "inputs": {"Xi": [1, 2, 3]}}"#)
            #expect(status == .ok)
            guard case .object(let from)? = json["inputs_from"], case .object(let x)? = from["X"] else {
                Issue.record("no inputs_from.X")
                return
            }
            #expect(x["source"] == .string("default"))
        }
    }

    @Test("freshline check rejects circular and type-incompatible compositions")
    func checkRejects() throws {
        func problems(_ yaml: String) throws -> [String] {
            let path = try TestManifest.write(yaml)
            try "user_id,\(Self.xColumns.joined(separator: ",")),s0,s1,s2\n".write(
                to: URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("users.csv"),
                atomically: true, encoding: .utf8)
            let manifest = try ManifestLoader.load(path: path)
            let (models, errors) = ServingModel.loadAll(manifest)
            return (errors + ManifestValidator.problems(manifest, models: models)).map(\.description)
        }
        #expect(try problems(Self.manifest()).isEmpty)
        let wrongType = try problems(
            Self.manifest().replacingOccurrences(of: "output: norm_max", with: "output: xi_picked"))
        #expect(
            wrongType.contains {
                $0.contains("compose.X.output: 'user_vec.xi_picked' is int64[2] per row, but input 'X'")
            },
            "\(wrongType)")
        let cyclic = try problems(
            """
            models:
              afe: ZOO/ml_afe_scaler_normalizer.onnx
            features:
              a:
                model: afe
                key: k
                compose:
                  X: {from: b, output: norm_max}
              b:
                model: afe
                key: k
                compose:
                  X: {from: a, output: norm_max}
            """)
        #expect(cyclic.contains { $0.contains("compositions form a cycle: a → b → a") }, "\(cyclic)")
        #expect(cyclic.contains { $0.contains("feature 'b' has no batch section") })
        let unknown = try problems(Self.manifest().replacingOccurrences(of: "from: user_vec", with: "from: user_vecs"))
        #expect(unknown.contains { $0.contains("compose.X.from: unknown feature 'user_vecs'") }, "\(unknown)")
    }
}
