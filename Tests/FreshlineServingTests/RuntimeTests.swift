import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineRuntime
import FreshlineStore
import FreshlineTestSupport
import Logging
import Metrics
import ServiceLifecycleTestKit
import Testing

@Suite("Serving runtime")
struct RuntimeTests {
    static let row: [String: JSONValue] = ["X": .array((0..<16).map { .number(Double($0) / 10 - 0.7) })]

    @Test("graceful shutdown answers every accepted request, then refuses new ones")
    func drain() async throws {
        let runtime = try TestManifest.runtime(factory: NOOPMetricsHandler.instance)
        let feature = try #require(runtime.features["churn"])
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await runtime.run() }
                // Enough concurrent requests that several are queued when the shutdown starts.
                let results = await withTaskGroup(of: Bool.self) { requests in
                    for i in 0..<200 {
                        requests.addTask {
                            (try? await feature.predict(
                                PredictRequest(key: "k\(i)", inputs: Self.row, timeout: .seconds(10)))) != nil
                        }
                    }
                    try? await Task.sleep(for: .milliseconds(1))
                    trigger.triggerGracefulShutdown()
                    var ok = 0
                    for await result in requests where result { ok += 1 }
                    return ok
                }
                // Requests accepted before the shutdown are answered; requests after it are refused, never lost.
                #expect(results > 0)
                // The runtime learns of the shutdown asynchronously; wait (bounded) until it reports not ready.
                let clock = ContinuousClock()
                let giveUp = clock.now + .seconds(10)
                while runtime.isReady && clock.now < giveUp { try await Task.sleep(for: .milliseconds(5)) }
                #expect(!runtime.isReady)
                do {
                    _ = try await feature.predict(PredictRequest(inputs: Self.row))
                    Issue.record("a request after shutdown was accepted")
                } catch let error as PredictionError {
                    #expect(error.code == .unavailable)
                }
                try await group.waitForAll()
            }
        }
        #expect(!runtime.isReady)
    }

    @Test("every request that is accepted is answered exactly once under concurrent load")
    func concurrentLoad() async throws {
        let runtime = try TestManifest.runtime(factory: NOOPMetricsHandler.instance)
        // churn has no fallback rung: every answer here is a real model answer.
        let feature = try #require(runtime.features["churn"])
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runtime.run() }
            let answered = await withTaskGroup(of: String?.self) { requests in
                for i in 0..<500 {
                    requests.addTask {
                        (try? await feature.predict(
                            PredictRequest(key: "k\(i)", inputs: Self.row, timeout: .seconds(10))))?.key
                    }
                }
                var keys: [String] = []
                for await key in requests { if let key { keys.append(key) } }
                return keys
            }
            #expect(answered.count == 500)
            #expect(Set(answered).count == 500)
            group.cancelAll()
        }
    }

    @Test("sampled requests reach the request log with hashed keys")
    func requestLog() async throws {
        let yaml = TestManifest.standard + "\nserver:\n  request_log_sample_rate: 1.0\n"
        let store = try SQLiteStore()
        let manifest = try ManifestLoader.load(path: try TestManifest.write(yaml))
        let runtime = try ServingRuntime(
            manifest: manifest, metricsFactory: NOOPMetricsHandler.instance, requestLogStore: store,
            logger: Logger(label: "test"))
        let feature = try #require(runtime.features["churn"])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runtime.run() }
            for i in 0..<5 { _ = try await feature.predict(PredictRequest(key: "acct-\(i % 2)", inputs: Self.row)) }
            _ = try? await feature.predict(PredictRequest(key: "bad", inputs: ["X": .string("nope")]))
            await runtime.requestLogger?.flush()
            let samples = try await store.samples(feature: "churn", since: 0, until: .infinity, limit: 100)
            #expect(samples.count == 6)
            #expect(Set(samples.compactMap(\.keyHash)).count == 3)
            #expect(samples.allSatisfy { $0.keyHash?.count == 16 })
            #expect(samples.filter { $0.outcome == "ok" }.count == 5)
            #expect(samples.filter { $0.outcome == "bad_request" }.count == 1)
            #expect(samples.first?.source == .realtime)
            #expect(samples.allSatisfy { $0.hasRequestInputs })
            let deleted = try await store.deleteSamples(before: Date().timeIntervalSince1970 + 1)
            #expect(deleted == 6)
            group.cancelAll()
        }
    }
}

@Suite("Serving runtime, bad data in a batch")
struct BadRowTests {
    @Test("a row the model cannot use fails alone with bad_request; its batch-mates are answered")
    func badRowInBatch() async throws {
        let runtime = try TestManifest.runtime(factory: NOOPMetricsHandler.instance)
        let feature = try #require(runtime.features["recs"])
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runtime.run() }
            let results = await withTaskGroup(of: (String, Bool, String?).self) { requests in
                for id in ["3", "7", "100000", "11"] {
                    requests.addTask {
                        do {
                            _ = try await feature.predict(PredictRequest(key: id, inputs: [:], timeout: .seconds(10)))
                            return (id, true, nil)
                        } catch let error as PredictionError {
                            return (id, false, error.code.description)
                        } catch {
                            return (id, false, "\(error)")
                        }
                    }
                }
                var all: [String: (Bool, String?)] = [:]
                for await (id, ok, code) in requests { all[id] = (ok, code) }
                return all
            }
            #expect(results["3"]?.0 == true)
            #expect(results["7"]?.0 == true)
            #expect(results["11"]?.0 == true)
            #expect(results["100000"]?.0 == false)
            #expect(results["100000"]?.1 == "bad_request")
            group.cancelAll()
        }
    }
}
