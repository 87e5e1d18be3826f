public import Foundation
import FreshlineCore
public import FreshlineRuntime
import FreshlineStore
import Logging
public import Metrics

/// Manifests over the committed zoo, written to a temporary folder.
public enum TestManifest {
    public static let zoo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/zoo")

    /// Writes `yaml` (with `ZOO` replaced by the zoo's path) to a temporary file and returns its path.
    public static func write(_ yaml: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "freshline-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("freshline.yaml").path
        try yaml.replacingOccurrences(of: "ZOO", with: zoo.path).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    public static let standard = """
        version: 1
        models:
          gbdt: ZOO/gbc_binary.onnx
          mlp:
            path: ZOO/mlp_clf.onnx
          towers: ZOO/two_tower.onnx
        features:
          churn:
            model: gbdt
            key: account_id
            latency_budget: 60s  # generous: ~300 tests start at once on 2 cores, and deadlines count from arrival
            max_staleness: 24h
            inputs:
              X: float[16]
          fraud:
            model: mlp
            latency_budget: 100ms
            outputs: [label]
            on_failure:
              default: {label: 0}
          recs:
            model: towers
            key: user_id
            latency_budget: 60s
            batching:
              max_batch_size: 32
              max_queue_delay: 1ms
        tokens:
          - name: app
            token: app-secret
            scopes: [predict]
          - name: ops
            token: ops-secret
            scopes: [admin]
        """

    /// A runtime over a manifest, with an in-memory store and a metrics factory of the caller's choice.
    public static func runtime(_ yaml: String = standard, factory: any MetricsFactory) throws -> ServingRuntime {
        try runtime(path: try write(yaml), factory: factory)
    }

    /// A runtime over the manifest at `path`, with an SQLite store beside it (runs and snapshots, request log) and
    /// its snapshots served from files mapped from `snapshots/` beside it, as a server does.
    public static func runtime(path: String, factory: any MetricsFactory) throws -> ServingRuntime {
        let manifest = try ManifestLoader.load(path: path)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        let store = try SQLiteStore(path: folder.appendingPathComponent("state.sqlite").path)
        return try ServingRuntime(
            manifest: manifest, metricsFactory: factory, requestLogStore: store, batchStore: store,
            snapshotDirectory: folder.appendingPathComponent("snapshots").path, logger: Logger(label: "test"))
    }
}
