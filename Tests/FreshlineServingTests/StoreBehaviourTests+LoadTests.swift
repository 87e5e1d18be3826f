import FreshlineCore
import Testing

/// Load-test runs (`freshline load`), on SQLite and PostgreSQL alike: recorded apart from the request log, read back
/// per feature within a window, newest first.
extension StoreBehaviourTests {
    static func loadTest(_ id: String, feature: String = "churn", at: Double, speed: Double) -> LoadTestResult {
        LoadTestResult(
            id: id, feature: feature, startedAt: at, endedAt: at + 5.5, speed: speed, durationSeconds: 5, sent: 480,
            answered: 470,
            sources: [
                SourceLatency(source: "realtime", count: 400, p50: 0.0012, p95: 0.004, p99: 0.0091, p999: 0.02),
                SourceLatency(source: "default", count: 70, p50: 0.0002, p95: 0.0003, p99: 0.0004, p999: 0.0005),
            ], shed: 6, fallback: 70, errors: 4, achievedRate: 95.9, server: "http://127.0.0.1:8080",
            outcomes: ["ok": 470, "overloaded": 6, "timeout": 4])
    }

    @Test(
        "load tests are recorded and read back per feature in the window, newest first", arguments: StoreKind.allCases)
    func loadTests(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let first = Self.loadTest("load_1", at: Self.t0, speed: 1)
            try await store.record(first)
            try await store.record(Self.loadTest("load_2", at: Self.t0 + 60, speed: 4))
            try await store.record(Self.loadTest("load_3", feature: "fraud", at: Self.t0 + 30, speed: 2))
            try await store.record(Self.loadTest("load_old", at: Self.t0 - 3_600, speed: 8))
            let read = try await store.loadTests(feature: "churn", since: Self.t0, limit: 10)
            #expect(read.map(\.id) == ["load_2", "load_1"])
            #expect(read.last == first)
            #expect(try await store.loadTests(feature: "churn", since: Self.t0, limit: 1).map(\.id) == ["load_2"])
            #expect(try await store.loadTests(feature: "fraud", since: 0, limit: 10).map(\.speed) == [2])
            // Recorded again under the same id: replaced, not doubled.
            var again = first
            again.answered = 480
            try await store.record(again)
            #expect(
                try await store.loadTests(feature: "churn", since: Self.t0, limit: 10).map(\.answered) == [470, 480])
            // Not traffic: the request log holds nothing.
            #expect(try await store.samples(feature: "churn", since: 0, until: .infinity, limit: 10).isEmpty)
        }
    }
}
