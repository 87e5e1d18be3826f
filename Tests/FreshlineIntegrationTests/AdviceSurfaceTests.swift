import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineRuntime
import FreshlineStore
import FreshlineStores
import FreshlineTestSupport
import FreshlineTesting
import Logging
import Metrics
import Testing

/// The advisor's configuration, the decision read from each kind of model output, and `freshline advise`.
@Suite("Advice surfaces")
struct AdviceSurfaceTests {
    @Test("the advisor and advice sections parse, and their mistakes name the line and key")
    func manifestSections() throws {
        let manifest = try ManifestLoader.load(
            path: try TestManifest.write(
                """
                models:
                  m: ZOO/gbc_binary.onnx
                features:
                  a:
                    model: m
                    advice:
                      decision: {output: probabilities, kind: label, threshold: 0.7}
                advisor:
                  window: 3d
                  min_calls_per_day: 5000
                  ages: [24h, 1h]
                """))
        #expect(manifest.advisor.windowSeconds == 3 * 86_400)
        #expect(manifest.advisor.minCallsPerDay == 5_000)
        #expect(manifest.advisor.ages == [3_600, 86_400])
        #expect(manifest.features["a"]?.decision == DecisionSpec(output: "probabilities", kind: .label, threshold: 0.7))
        do {
            _ = try ManifestLoader.load(
                path: try TestManifest.write(
                    """
                    models:
                      m: ZOO/gbc_binary.onnx
                    features:
                      a:
                        model: m
                        advice:
                          decision: {kind: vibes}
                    advisor:
                      min_calls: 5
                      decision_change_limit: 2
                    """))
            Issue.record("accepted a bad advisor section")
        } catch let errors as ManifestErrors {
            let messages = errors.errors.map(\.description)
            #expect(messages.contains { $0.contains(":7: features.a.advice.decision.kind: must be one of label") })
            #expect(messages.contains { $0.contains(":9: advisor.min_calls:") })
            #expect(messages.contains { $0.contains(":10: advisor.decision_change_limit:") })
        }
        let wrongOutput = try ManifestLoader.load(
            path: try TestManifest.write(
                """
                models:
                  m: ZOO/gbc_binary.onnx
                features:
                  a:
                    model: m
                    outputs: [label]
                    advice:
                      decision: {output: probabilities}
                """))
        let (models, _) = ServingModel.loadAll(wrongOutput)
        let problems = ManifestValidator.problems(wrongOutput, models: models).map(\.description)
        #expect(
            problems.contains { $0.contains("advice.decision.output: 'probabilities' is not among") }, "\(problems)")
    }

    @Test("each kind of model output becomes a comparable decision")
    func decisionsFromZooOutputs() throws {
        func first(_ name: String, _ spec: DecisionSpec = DecisionSpec()) throws -> DecisionValue? {
            let model = try Model(contentsOf: TestManifest.zoo.appendingPathComponent("\(name).onnx"))
            let feeds = try model.syntheticFeeds(batchSize: 1, integerRange: 5)
            let row = try RowBatch.rows(outputs: model.run(feeds), count: 1)[0]
            return DecisionExtractor(spec: spec, outputs: model.metadata.outputs.map(\.name)).decision(row)
        }
        guard case .label? = try first("gbc_binary") else { throw Failure("classifier label") }
        guard case .label? = try first("lgbm_multi_zipmap") else { throw Failure("label") }
        guard case .score(let s)? = try first("gbr"), s.count == 1 else { throw Failure("regressor score") }
        guard case .ranking(let items)? = try first("two_tower", DecisionSpec(output: "items", topK: 5)),
            items.count == 5
        else { throw Failure("two-tower ranking") }
        let thresholded = try first("gbc_binary", DecisionSpec(output: "probabilities", threshold: 0.5))
        guard case .label(let l)? = thresholded, l == "0" || l == "1" else { throw Failure("thresholded probability") }
        // A ZipMap output (a list of {class: probability} maps) becomes its most probable class.
        let zip = DecisionExtractor(spec: DecisionSpec(output: "p"), outputs: ["p"])
        #expect(zip.decision(["p": .array([.object(["a": .number(0.2), "b": .number(0.8)])])]) == .label("b"))
        #expect(zip.decision(["q": .number(1)]) == nil)
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// Runs a runtime over the manifest at `path` (feature `churn` over gbc_binary), sends one request per key
    /// in `keys`, writes the request log and returns the runtime (its advisor reads the same store).
    static func churnTraffic(_ path: String, keys: [String]) async throws -> ServingRuntime {
        let manifest = try ManifestLoader.load(path: path)
        let runtime = try ServingRuntime(
            manifest: manifest, metricsFactory: NOOPMetricsHandler.instance,
            requestLogStore: try StoreSet.open(for: manifest, environment: [:], logger: Logger(label: "test"))
                .requestLog,
            logger: Logger(label: "test"))
        let server = try #require(runtime.features["churn"])
        let x = JSONValue.array((0..<16).map { .number(Double($0) / 8) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runtime.run() }
            for key in keys { _ = try await server.predict(PredictRequest(key: key, inputs: ["X": x])) }
            await runtime.requestLogger?.flush()
            group.cancelAll()
        }
        return runtime
    }

    static func advise(_ arguments: [String], in folder: URL) throws -> (status: Int32, output: String) {
        let process = try FreshlineProcess.start(["advise"] + arguments, in: folder)
        let output = FreshlineProcess.output(process)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    @Test("freshline advise --sheet: verdicts for features that do not run here, and errors with file and line")
    func sheetCommand() throws {
        guard FileManager.default.isExecutableFile(atPath: FreshlineProcess.binary) else {
            Issue.record(
                "no freshline binary at \(FreshlineProcess.binary): build it (swift build --build-tests) first")
            return
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("advise-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try """
        feature,unbounded_input,decision_change,refresh,calls_per_day,ms_per_prediction
        fraud_check,yes,,,2000000,4
        nightly_report,no,0%,24h,5000000,200
        """.write(to: folder.appendingPathComponent("features.csv"), atomically: true, encoding: .utf8)
        let good = try Self.advise(["--sheet", "features.csv", "--format", "markdown"], in: folder)
        #expect(good.status == 0, "\(good.output)")
        #expect(good.output.contains("| fraud_check |") && good.output.contains("rule 1 → realtime"))
        #expect(good.output.contains("| nightly_report |") && good.output.contains("rule 3 → batch"))
        try "feature,calls_per_day,ms_per_prediction\nx,1,fast\n".write(
            to: folder.appendingPathComponent("bad.csv"), atomically: true, encoding: .utf8)
        let bad = try Self.advise(["--sheet", "bad.csv"], in: folder)
        #expect(bad.status != 0)
        #expect(bad.output.contains("bad.csv:2: ms_per_prediction: 'fast' is not a number"), "\(bad.output)")
    }

    @Test("freshline advise FILE reads the request log a server wrote and writes the HTML report")
    func liveCommand() async throws {
        guard FileManager.default.isExecutableFile(atPath: FreshlineProcess.binary) else {
            Issue.record(
                "no freshline binary at \(FreshlineProcess.binary): build it (swift build --build-tests) first")
            return
        }
        let path = try TestManifest.write(
            """
            models:
              gbdt: ZOO/gbc_binary.onnx
            features:
              churn:
                model: gbdt
                key: account_id
                # The traffic is sequential and about the request log, not latency: a generous budget keeps a
                # scheduling stall on a busy test machine from shedding a request.
                latency_budget: 30s
            server:
              request_log_sample_rate: 1
            """)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        _ = try await Self.churnTraffic(path, keys: (0..<50).map { "a\($0 % 5)" })
        let result = try Self.advise([path, "--format", "html", "-o", "advice.html"], in: folder)
        #expect(result.status == 0, "\(result.output)")
        let html = try String(contentsOf: folder.appendingPathComponent("advice.html"), encoding: .utf8)
        #expect(html.contains("churn") && html.contains("<svg"))
        let json = try Self.advise([path, "--format", "json", "--what-if", "churn=batch:1h"], in: folder)
        let report = try AdviceText.decode(AdviceReport.self, from: Data(json.output.utf8))
        let churn = try #require(report.features.first)
        #expect(churn.axes.cardinality.requests == 50)
        #expect(churn.whatIf.contains { $0.label == "batch every 1h" })
        let unknown = try Self.advise([path, "--what-if", "nope=batch"], in: folder)
        #expect(unknown.status != 0 && unknown.output.contains("--what-if 'nope=batch'"))
    }

    @Test("advice.keys: predictability of a real-time feature measured against its declared entity set")
    func declaredEntitySet() async throws {
        let path = try TestManifest.write(
            """
            models:
              gbdt: ZOO/gbc_binary.onnx
            features:
              churn:
                model: gbdt
                key: account_id
                # The traffic is sequential and about the request log, not latency: a generous budget keeps a
                # scheduling stall on a busy test machine from shedding a request.
                latency_budget: 30s
                advice:
                  keys: {csv: accounts.csv}
            server:
              request_log_sample_rate: 1
            """)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        try ("account_id,seats\n" + (0..<100).map { "a\($0),1" }.joined(separator: "\n") + "\n").write(
            to: folder.appendingPathComponent("accounts.csv"), atomically: true, encoding: .utf8)
        let manifest = try ManifestLoader.load(path: path)
        #expect(
            manifest.features["churn"]?.adviceKeys
                == AdviceKeys(source: .csv(path: "accounts.csv"), keyColumn: "account_id"))
        // 60 requests for 60 different accounts (each once): earlier traffic predicts none of them, the entity
        // set all of them.
        let runtime = try await Self.churnTraffic(path, keys: (0..<60).map { "a\($0)" })
        let report = try await #require(runtime.advice).report(features: ["churn"])
        let c = try #require(report.features.first).axes.cardinality
        #expect(c.predictableShare == 1)
        #expect(c.predictableBasis.contains("accounts.csv"))
        #expect(!c.unbounded)
        #expect(try #require(report.features.first).axes.cost.batchRowsPerRun == 100)
        let bad = try ManifestLoader.load(
            path: try TestManifest.write(
                """
                models:
                  gbdt: ZOO/gbc_binary.onnx
                features:
                  churn:
                    model: gbdt
                    key: account_id
                    latency_budget: 30s
                    advice:
                      keys: {csv: missing.csv}
                """))
        let (models, _) = ServingModel.loadAll(bad)
        #expect(ManifestValidator.problems(bad, models: models).contains { $0.description.contains("advice.keys") })
    }
}
