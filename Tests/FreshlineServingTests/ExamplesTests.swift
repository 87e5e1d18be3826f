import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineHTTP
import FreshlineJSON
import FreshlineRuntime
import FreshlineStores
import FreshlineTesting
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import ServiceLifecycle
import Testing

/// The manifests under `examples/`, as committed: every one passes what `freshline check` checks, and each pattern's
/// example is served (a live server in this process, its state in a temporary folder) and answers its README's curl
/// with the provenance of its pattern.
@Suite("Examples")
struct ExamplesTests {
    static let examples = ScriptRunner.repository.appendingPathComponent("examples")
    static let patterns = ["realtime", "batch", "async", "hybrid"]

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Every manifest under `examples/` (`examples/NAME/*.yaml`).
    static func manifests() throws -> [String] {
        var paths: [String] = []
        for folder in try FileManager.default.contentsOfDirectory(atPath: examples.path).sorted() {
            let url = examples.appendingPathComponent(folder)
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue else {
                continue
            }
            for file in try FileManager.default.contentsOfDirectory(atPath: url.path).sorted()
            where file.hasSuffix(".yaml") || file.hasSuffix(".yml") {
                paths.append(url.appendingPathComponent(file).path)
            }
        }
        return paths
    }

    @Test("examples/ holds one folder per pattern, each with its manifest and a README saying how to serve it")
    func layout() throws {
        let manifests = try Self.manifests()
        for pattern in Self.patterns {
            let folder = Self.examples.appendingPathComponent(pattern)
            let manifest = folder.appendingPathComponent("freshline.yaml").path
            #expect(manifests.contains(manifest), "no \(manifest)")
            let readme = try String(contentsOf: folder.appendingPathComponent("README.md"), encoding: .utf8)
            #expect(readme.contains("freshline serve examples/\(pattern)/freshline.yaml"), "\(pattern)/README.md")
            _ = try Curl(readme: folder.appendingPathComponent("README.md"))
            // The example's features are of its pattern.
            let loaded = try ManifestLoader.load(path: manifest)
            #expect(loaded.features.values.contains { $0.pattern.rawValue == pattern }, "\(manifest)")
        }
        #expect(manifests.contains(Self.examples.appendingPathComponent("upstreams/freshline.yaml").path))
    }

    /// What `freshline check` checks, except connecting upstream models (their examples are served against real
    /// servers and a Batch API double by `UpstreamEndToEndTests` and `ProviderBatchTests`): the manifest loads without
    /// any secret in the environment, its ONNX models load, and its features fit them.
    @Test("every manifest under examples/ passes freshline check's checks, with no secret set")
    func check() throws {
        let manifests = try Self.manifests()
        #expect(manifests.count >= Self.patterns.count + 1)
        for path in manifests {
            let (manifest, unsetSecrets) = try ManifestLoader.loadWithoutSecrets(path: path, environment: [:])
            #expect(unsetSecrets.isEmpty, "\(path): \(unsetSecrets)")
            let upstream = manifest.models.values.filter { $0.upstream != nil }.map(\.location)
            let (models, loadErrors) = ServingModel.loadAll(manifest)
            let problems =
                loadErrors.filter { !upstream.contains($0.location) }
                + ManifestValidator.problems(manifest, models: models)
            #expect(problems.isEmpty, "\(path): \(problems.map(\.description).joined(separator: "\n"))")
            #expect(manifest.models.count == models.count + upstream.count)
        }
    }

    @Test(
        "each pattern's example, served, answers its README's curl with its pattern's provenance", arguments: patterns)
    func serve(pattern: String) async throws {
        let folder = Self.examples.appendingPathComponent(pattern)
        let path = folder.appendingPathComponent("freshline.yaml").path
        var loaded = try ManifestLoader.load(path: path)
        // Generous budgets: the other tests share the 2 cores, and a deadline counts from arrival.
        for name in loaded.features.keys { loaded.features[name]?.latencyBudget = .seconds(60) }
        let manifest = loaded
        let curl = try Curl(readme: folder.appendingPathComponent("README.md"))
        // The store and snapshot files in a temporary folder, never in examples/.
        let hadState = FileManager.default.fileExists(atPath: folder.appendingPathComponent(".freshline").path)
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("example-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: state) }
        var logger = Logger(label: "example-\(pattern)")
        logger.logLevel = .warning
        let stores = try StoreSet.open(
            for: manifest, environment: ["FRESHLINE_STORE": state.appendingPathComponent("freshline.sqlite").path],
            logger: logger)
        let registry = PrometheusCollectorRegistry()
        // Schedules off: the test runs the batch itself, as a nightly run would, before the requests.
        let runtime = try ServingRuntime(
            manifest: manifest, metricsFactory: PrometheusMetricsFactory(registry: registry), stores: stores,
            batchSchedules: false, logger: logger)
        let app = Application(router: FreshlineServer.router(runtime: runtime, registry: registry))
        try await withThrowingTaskGroup(of: Void.self) { group in
            defer { group.cancelAll() }
            for service in stores.services { group.addTask { try await service.run() } }
            group.addTask { try await runtime.run() }
            try await app.test(.live) { client in
                try await Self.exercise(pattern, manifest: manifest, curl: curl, client: client, runtime: runtime)
            }
        }
        let leftInExample = FileManager.default.fileExists(atPath: folder.appendingPathComponent(".freshline").path)
        #expect(hadState || !leftInExample, "serving the example wrote state into \(folder.path)")
    }

    /// The batch features' runs, one prediction per feature, and the README's curl.
    static func exercise(
        _ pattern: String, manifest: Manifest, curl: Curl, client: any TestClientProtocol, runtime: ServingRuntime
    ) async throws {
        for feature in manifest.features.values.sorted(by: { $0.name < $1.name }) {
            guard let batch = feature.batch else { continue }
            let run = try await BatchServingTests.publish(runtime, feature.name)
            #expect(run.state == .succeeded && run.rowsFailed == 0 && run.rowsWritten > 0, "\(feature.name): \(run)")
            // One key of the source, looked up.
            guard case .csv(let csv) = batch.source else { throw Failure("\(feature.name): not a CSV source") }
            let text = try String(
                contentsOfFile: EntitySources.resolve(csv, manifestPath: manifest.path), encoding: .utf8)
            let lines = text.split(separator: "\n")
            guard lines.count > 1, let key = lines[1].split(separator: ",").first else {
                throw Failure("\(csv): no rows")
            }
            let (status, json) = try await Self.post(
                client, "/v1/features/\(feature.name)/predict", #"{"key": "\#(key)"}"#)
            #expect(status == .ok, "\(json)")
            #expect(json["source"] == .string("batch") && json["snapshot"] == .string("v1"), "\(json)")
            #expect(json["key"] == .string(String(key)), "\(json)")
            #expect(json["stale"] == .bool(false), "\(json)")
        }
        var headers = curl.headers
        // The README waits 30 s for the job; here the other tests share the cores.
        if headers[HTTPField.Name("Prefer")!] != nil { headers[HTTPField.Name("Prefer")!] = "wait=120" }
        let (status, json) = try await Self.post(client, curl.path, curl.body, headers: headers)
        #expect(status == .ok, "\(curl.path): \(json)")
        guard case .object(let outputs)? = json["outputs"] else {
            Issue.record("\(pattern): no outputs in \(json)")
            return
        }
        #expect(Set(outputs.keys) == ["label", "probabilities"], "\(json)")
        #expect([.integer(0), .integer(1), .number(0), .number(1)].contains(outputs["label"]), "\(json)")
        switch pattern {
        case "realtime":
            #expect(json["source"] == .string("realtime"), "\(json)")
            #expect(json["age_seconds"] == .integer(0) || json["age_seconds"] == .number(0), "\(json)")
        case "batch":
            #expect(json["source"] == .string("batch") && json["snapshot"] == .string("v1"), "\(json)")
        case "async":
            #expect(json["source"] == .string("async"), "\(json)")
        case "hybrid":
            #expect(json["source"] == .string("realtime"), "\(json)")
            guard case .object(let from)? = json["inputs_from"], case .object(let risk)? = from["risk"] else {
                Issue.record("hybrid: no inputs_from.risk in \(json)")
                return
            }
            #expect(risk["feature"] == .string("user_risk") && risk["source"] == .string("batch"), "\(json)")
            #expect(risk["snapshot"] == .string("v1") && risk["stale"] == .bool(false), "\(json)")
        default:
            Issue.record("no expectations for the pattern \(pattern)")
        }
    }

    static func post(
        _ client: any TestClientProtocol, _ path: String, _ body: String, headers: HTTPFields = [:]
    ) async throws -> (HTTPResponse.Status, [String: JSONValue]) {
        try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body)) {
            response in
            (response.status, try HTTPAPITests.json(response.body))
        }
    }

    /// The one `curl` line of an example's README: `curl -s [-H 'NAME: VALUE']… localhost:8080/PATH -d 'BODY'`.
    struct Curl: Sendable {
        var path: String
        var headers: HTTPFields = [:]
        var body: String

        init(readme: URL) throws {
            let text = try String(contentsOf: readme, encoding: .utf8)
            let lines = text.split(separator: "\n").filter { $0.hasPrefix("curl ") }
            guard lines.count == 1, let line = lines.first else {
                throw Failure("\(readme.path): \(lines.count) lines start with curl, not one")
            }
            guard let host = line.range(of: "localhost:8080/") else {
                throw Failure("\(readme.path): the curl does not call localhost:8080")
            }
            path = String(line[line.index(before: host.upperBound)...].prefix { $0 != " " && $0 != "'" })
            guard let data = line.range(of: " -d '"), line.hasSuffix("'") else {
                throw Failure("\(readme.path): the curl has no -d 'BODY' at its end")
            }
            body = String(line[data.upperBound..<line.index(before: line.endIndex)])
            var rest = line[..<data.lowerBound]
            while let header = rest.range(of: "-H '") {
                let tail = rest[header.upperBound...]
                guard let end = tail.firstIndex(of: "'"), let colon = tail[..<end].firstIndex(of: ":"),
                    let name = HTTPField.Name(String(tail[..<colon]))
                else { throw Failure("\(readme.path): a header of the curl is not 'NAME: VALUE'") }
                headers[name] = tail[tail.index(after: colon)..<end].trimmingCharacters(in: .whitespaces)
                rest = tail[tail.index(after: end)...]
            }
        }
    }
}
