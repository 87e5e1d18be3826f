import Foundation
import FreshlineCore
import FreshlineHTTP
import FreshlineRuntime
import FreshlineStore
import FreshlineTesting
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus

/// A server over a manifest file, with an SQLite store beside it and a manual wall clock, so that tests drive
/// real HTTP traffic through hours of simulated time (the advisor and composition tests).
enum ClockedServer {
    static func run(
        manifest path: String,
        _ body: @Sendable @escaping (any TestClientProtocol, ServingRuntime, ManualWallClock) async throws -> Void
    ) async throws {
        let manifest = try ManifestLoader.load(path: path)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        let store = try SQLiteStore(path: folder.appendingPathComponent("state.sqlite").path)
        let clock = ManualWallClock(start: 1_800_000_000)
        let registry = PrometheusCollectorRegistry()
        // Snapshots served from files, as a server does (the advisor reads retained versions from them too).
        let runtime = try ServingRuntime(
            manifest: manifest, metricsFactory: PrometheusMetricsFactory(registry: registry), requestLogStore: store,
            batchStore: store, snapshotDirectory: folder.appendingPathComponent("snapshots").path, clock: clock,
            logger: Logger(label: "test"))
        let app = Application(router: FreshlineServer.router(runtime: runtime, registry: registry))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runtime.run() }
            try await app.test(.router) { client in try await body(client, runtime, clock) }
            group.cancelAll()
        }
    }
}
