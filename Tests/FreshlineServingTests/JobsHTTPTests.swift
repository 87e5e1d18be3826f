import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineHTTP
import FreshlineJSON
import FreshlineRuntime
import FreshlineStore
import FreshlineTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Testing

/// The async pattern through the HTTP API: submission, `Prefer`, idempotency, status with progress and
/// results, cancellation and listing.
@Suite("Async jobs over HTTP")
struct JobsHTTPTests {
    static let x = "[0.5,-1.2,0.3,2.0,0.0,1.1,-0.4,0.9,0.2,-2.2,1.5,0.7,-0.1,0.05,1.9,-0.6]"
    static let manifest = """
        version: 1
        models:
          gbdt: ZOO/gbc_binary.onnx
        features:
          report:
            model: gbdt
            pattern: async
            key: account_id
            async: {max_attempts: 3, visibility_timeout: 5s, deadline: 10m}
          live:
            model: gbdt
            latency_budget: 60s  # deadlines count from arrival, and ~300 tests start at once on 2 cores
        tokens:
          - {name: app, token: app-secret, scopes: [predict]}
          - {name: ops, token: ops-secret, scopes: [admin]}
        """
    static let app: HTTPFields = [.authorization: "Bearer app-secret", .contentType: "application/json"]
    static let ops: HTTPFields = [.authorization: "Bearer ops-secret"]

    func withServer(
        workers: Int = 2, manifest yaml: String = Self.manifest,
        _ body: @Sendable @escaping (any TestClientProtocol, ServingRuntime) async throws -> Void
    ) async throws {
        let path = try TestManifest.write(yaml)
        let manifest = try ManifestLoader.load(path: path)
        let store = try SQLiteStore(
            path: URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("state.sqlite").path)
        let registry = PrometheusCollectorRegistry()
        let runtime = try ServingRuntime(
            manifest: manifest, metricsFactory: PrometheusMetricsFactory(registry: registry), requestLogStore: nil,
            jobStore: store, jobWorkers: workers, logger: Logger(label: "test"))
        let app = Application(router: FreshlineServer.router(runtime: runtime, registry: registry))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runtime.run() }
            try await app.test(.router) { client in try await body(client, runtime) }
            group.cancelAll()
        }
    }

    static func post(
        _ client: any TestClientProtocol, _ uri: String, _ body: String, headers: HTTPFields = app
    ) async throws -> (HTTPResponse.Status, [String: JSONValue], HTTPFields) {
        try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body)) {
            ($0.status, try HTTPAPITests.json($0.body), $0.headers)
        }
    }

    static func get(_ client: any TestClientProtocol, _ uri: String, headers: HTTPFields = app) async throws -> (
        HTTPResponse.Status, [String: JSONValue]
    ) {
        try await client.execute(uri: uri, method: .get, headers: headers) {
            ($0.status, try HTTPAPITests.json($0.body))
        }
    }

    @Test("an async feature answers 202 with Location; the job finishes with an async-sourced result")
    func asyncFeature() async throws {
        try await withServer { client, _ in
            let (status, job, headers) = try await Self.post(
                client, "/v1/features/report/predict", #"{"key": "acct-1", "inputs": {"X": \#(Self.x)}}"#)
            #expect(status == .accepted)
            let location = try #require(headers[.location])
            #expect(job["state"] == .string("queued"))
            #expect(
                location == "/v1/jobs/" + (job["id"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? ""))
            var latest: [String: JSONValue] = [:]
            try await Wait.until("the job succeeds") {
                latest = try await Self.get(client, location).1
                return latest["state"] == .string("succeeded")
            }
            #expect(latest["attempts"] == .integer(1))
            #expect(latest["progress"]?.doubleValue == 1)
            guard case .object(let result)? = latest["result"], case .array(let rows)? = result["results"],
                case .object(let row)? = rows.first
            else {
                Issue.record("no result: \(latest)")
                return
            }
            #expect(row["source"] == .string("async"))
            #expect(row["key"] == .string("acct-1"))
        }
    }

    @Test("Prefer: wait=N answers synchronously when the job finishes in time, on any feature with respond-async")
    func preferWait() async throws {
        try await withServer { client, _ in
            var headers = Self.app
            // Generous: the job must run within the wait, and ~300 tests share 2 cores at the start.
            headers[HTTPField.Name("Prefer")!] = "respond-async, wait=60"
            let (status, body, response) = try await Self.post(
                client, "/v1/features/live/predict", #"{"key": "a", "inputs": {"X": \#(Self.x)}}"#, headers: headers)
            #expect(status == .ok)
            #expect(body["source"] == .string("async"))
            #expect(response[.location]?.hasPrefix("/v1/jobs/job_") == true)
            // Without Prefer the same feature answers in real time.
            let (_, realtime, _) = try await Self.post(
                client, "/v1/features/live/predict", #"{"key": "a", "inputs": {"X": \#(Self.x)}}"#)
            #expect(realtime["source"] == .string("realtime"))
            #expect(realtime["outputs"] == body["outputs"])
        }
    }

    @Test("GET /v1/jobs/{id} and POST /v1/jobs/lookup honour Prefer: wait=N; a lookup names the missing ids")
    func waitOnReadAndLookup() async throws {
        try await withServer(workers: 1) { client, _ in
            let row = #"{"key": "a", "inputs": {"X": \#(Self.x)}}"#
            let many = #"{"rows": ["# + Array(repeating: row, count: 3000).joined(separator: ",") + "]}"
            var ids: [String] = []
            for _ in 0..<3 {
                let (status, job, _) = try await Self.post(client, "/v1/features/report/jobs", many)
                #expect(status == .accepted, "\(job)")
                if case .string(let id)? = job["id"] { ids.append(id) }
            }
            try #require(ids.count == 3)
            var wait = Self.app
            wait[HTTPField.Name("Prefer")!] = "wait=120"
            // The first job may still be queued or running: the read waits until it has ended.
            let (status, first) = try await Self.get(client, "/v1/jobs/\(ids[0])", headers: wait)
            #expect(status == .ok)
            #expect(first["state"] == .string("succeeded"), "\(first["state"] ?? .null)")
            let body = #"{"ids": ["\#(ids[1])", "job_nope", "\#(ids[2])", "\#(ids[1])"]}"#
            let (lookupStatus, found, _) = try await Self.post(client, "/v1/jobs/lookup", body, headers: wait)
            #expect(lookupStatus == .ok)
            guard case .array(let jobs)? = found["jobs"] else {
                Issue.record("no jobs in \(found)")
                return
            }
            #expect(jobs.count == 2)
            for job in jobs {
                guard case .object(let object) = job else { continue }
                #expect(object["state"] == .string("succeeded"))
            }
            #expect(found["missing"] == .array([.string("job_nope")]))
            // Bounds: no ids, too many, not strings.
            for bad in [#"{"ids": []}"#, #"{"ids": [1]}"#, #"{"id": "x"}"#] {
                let (s, _, _) = try await Self.post(client, "/v1/jobs/lookup", bad)
                #expect(s == .badRequest, "\(bad)")
            }
            let tooMany = #"{"ids": ["# + Array(repeating: #""j""#, count: 1001).joined(separator: ",") + "]}"
            #expect(try await Self.post(client, "/v1/jobs/lookup", tooMany).0 == .badRequest)
        }
    }

    @Test("Idempotency-Key: the same body returns the same job; another body is a 409")
    func idempotency() async throws {
        try await withServer { client, _ in
            var headers = Self.app
            headers[HTTPField.Name("Idempotency-Key")!] = "order-77"
            let body =
                #"{"rows": [{"key": "a", "inputs": {"X": \#(Self.x)}}, {"key": "b", "inputs": {"X": \#(Self.x)}}]}"#
            let (first, one, _) = try await Self.post(client, "/v1/features/report/jobs", body, headers: headers)
            let (_, two, replayed) = try await Self.post(client, "/v1/features/report/jobs", body, headers: headers)
            #expect(first == .accepted)
            #expect(one["id"] != nil && one["id"] == two["id"])
            #expect(replayed[HTTPField.Name("Idempotent-Replayed")!] == "true")
            let (conflict, error, _) = try await Self.post(
                client, "/v1/features/report/jobs", #"{"key": "c", "inputs": {"X": \#(Self.x)}}"#, headers: headers)
            #expect(conflict == .conflict)
            #expect(
                error["error"].flatMap { if case .object(let e) = $0 { e["code"] } else { nil } }
                    == .string("idempotency_conflict"))
        }
    }

    @Test("a multi-row job reports each row; a row the model cannot use is refused at submission")
    func rowsAndErrors() async throws {
        try await withServer { client, _ in
            let rows = (0..<100).map { #"{"key": "k\#($0)", "inputs": {"X": \#(Self.x)}}"# }.joined(separator: ",")
            let (status, job, _) = try await Self.post(client, "/v1/features/report/jobs", #"{"rows": [\#(rows)]}"#)
            #expect(status == .accepted)
            #expect(job["rows_total"] == .integer(100))
            let id = try #require(job["id"].flatMap { if case .string(let s) = $0 { s } else { nil } })
            var latest: [String: JSONValue] = [:]
            try await Wait.until("the job succeeds") {
                latest = try await Self.get(client, "/v1/jobs/\(id)").1
                return latest["state"] == .string("succeeded")
            }
            guard case .object(let result)? = latest["result"], case .array(let answers)? = result["results"] else {
                Issue.record("no results")
                return
            }
            #expect(answers.count == 100)
            let (bad, error, _) = try await Self.post(
                client, "/v1/features/report/jobs", #"{"rows": [{"key": "a", "inputs": {"X": [1, 2]}}]}"#)
            #expect(bad == .badRequest)
            #expect(error["error"] != nil)
        }
    }

    @Test("GET /v1/jobs/{id}/events streams progress, then the result, as Server-Sent Events")
    func events() async throws {
        try await withServer { client, _ in
            let rows = (0..<300).map { #"{"key": "k\#($0)", "inputs": {"X": \#(Self.x)}}"# }.joined(separator: ",")
            let (_, job, _) = try await Self.post(client, "/v1/features/report/jobs", #"{"rows": [\#(rows)]}"#)
            let id = try #require(job["id"].flatMap { if case .string(let s) = $0 { s } else { nil } })
            let text = try await client.execute(uri: "/v1/jobs/\(id)/events", method: .get, headers: Self.app) {
                response -> String in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/event-stream")
                return String(buffer: response.body)
            }
            let events = text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.last?.contains("event: succeeded") == true, "\(text.prefix(300))")
            #expect(events.last?.contains("\"result\":") == true)
            for event in events.dropLast() { #expect(event.contains("event: progress")) }
            #expect(try await Self.get(client, "/v1/jobs/job_nope/events").0 == .notFound)
        }
    }

    @Test("a queued job past its deadline expires without a worker, and its waiter learns it")
    func expiry() async throws {
        try await withServer(
            workers: 0, manifest: Self.manifest.replacingOccurrences(of: "deadline: 10m", with: "deadline: 1s")
        ) { client, runtime in
            let (_, job, _) = try await Self.post(
                client, "/v1/features/report/jobs", #"{"key": "a", "inputs": {"X": \#(Self.x)}}"#)
            let id = try #require(job["id"].flatMap { if case .string(let s) = $0 { s } else { nil } })
            let waited = try await runtime.jobs?.wait(for: id, timeout: .seconds(30))
            #expect(waited?.state == .expired)
            #expect(waited?.lastError?.contains("deadline") == true)
            #expect(try await Self.get(client, "/v1/jobs/\(id)").1["state"] == .string("expired"))
        }
    }

    @Test("cancel a queued job; list jobs (admin); unknown jobs are 404")
    func cancelAndList() async throws {
        try await withServer(workers: 0) { client, _ in
            let (_, job, _) = try await Self.post(
                client, "/v1/features/report/jobs", #"{"key": "a", "inputs": {"X": \#(Self.x)}}"#)
            let id = try #require(job["id"].flatMap { if case .string(let s) = $0 { s } else { nil } })
            let canceled = try await client.execute(uri: "/v1/jobs/\(id)", method: .delete, headers: Self.app) {
                ($0.status, try HTTPAPITests.json($0.body))
            }
            #expect(canceled.0 == .ok)
            #expect(canceled.1["state"] == .string("canceled"))
            let again = try await client.execute(uri: "/v1/jobs/\(id)", method: .delete, headers: Self.app) {
                $0.status
            }
            #expect(again == .conflict)
            let (listStatus, list) = try await Self.get(
                client, "/v1/jobs?feature=report&state=canceled", headers: Self.ops)
            #expect(listStatus == .ok)
            guard case .array(let items)? = list["jobs"] else {
                Issue.record("no list")
                return
            }
            #expect(items.count == 1)
            #expect(try await Self.get(client, "/v1/jobs").0 == .forbidden, "listing needs admin")
            #expect(try await Self.get(client, "/v1/jobs/job_nope").0 == .notFound)
            #expect(try await Self.get(client, "/v1/jobs?state=bogus", headers: Self.ops).0 == .badRequest)
        }
    }

    @Test("a token over its job quota gets 429 on every submission path; other tokens and replays are not affected")
    func quota() async throws {
        let manifest = Self.manifest.replacingOccurrences(
            of: "tokens:\n", with: "server:\n  max_queued_jobs_per_token: 2\ntokens:\n"
        ).replacingOccurrences(
            of: "  - {name: ops", with: "  - {name: other, token: other-secret, scopes: [predict]}\n  - {name: ops")
        try await withServer(workers: 0, manifest: manifest) { client, _ in
            let row = #"{"key": "a", "inputs": {"X": \#(Self.x)}}"#
            var keyed = Self.app
            keyed[HTTPField.Name("Idempotency-Key")!] = "order-1"
            let (firstStatus, first, _) = try await Self.post(client, "/v1/features/report/jobs", row, headers: keyed)
            let (secondStatus, second, _) = try await Self.post(client, "/v1/features/report/jobs", row)
            #expect(firstStatus == .accepted && secondStatus == .accepted)

            // The third unfinished job of `app` is refused, whichever way it is submitted.
            var async = Self.app
            async[HTTPField.Name("Prefer")!] = "respond-async"
            for (uri, headers) in [
                ("/v1/features/report/jobs", Self.app), ("/v1/features/report/predict", Self.app),
                ("/v1/features/live/predict", async),
            ] {
                let (status, body, response) = try await Self.post(client, uri, row, headers: headers)
                #expect(status == .tooManyRequests, "\(uri)")
                #expect(response[.retryAfter] != nil, "\(uri)")
                guard case .object(let error)? = body["error"] else {
                    Issue.record("no error object: \(body)")
                    continue
                }
                #expect(error["code"] == .string("too_many_jobs"))
                #expect(error["message"]?.stringValue?.contains("2 unfinished jobs") == true, "\(error)")
            }
            // The real-time path is not a job and is not counted.
            #expect(try await Self.post(client, "/v1/features/live/predict", row).0 == .ok)

            // A replay of the first job still answers it.
            let (replayStatus, replay, replayHeaders) = try await Self.post(
                client, "/v1/features/report/jobs", row, headers: keyed)
            #expect(replayStatus == .accepted && replay["id"] == first["id"])
            #expect(replayHeaders[HTTPField.Name("Idempotent-Replayed")!] == "true")

            // Another token has its own quota.
            var other = Self.app
            other[.authorization] = "Bearer other-secret"
            #expect(try await Self.post(client, "/v1/features/report/jobs", row, headers: other).0 == .accepted)
            #expect(try await Self.post(client, "/v1/features/report/jobs", row, headers: other).0 == .accepted)
            #expect(try await Self.post(client, "/v1/features/report/jobs", row, headers: other).0 == .tooManyRequests)

            // Canceling one of `app`'s jobs frees a place.
            let secondID = try #require(second["id"]?.stringValue)
            #expect(
                try await client.execute(uri: "/v1/jobs/\(secondID)", method: .delete, headers: Self.app) { $0.status }
                    == .ok)
            #expect(try await Self.post(client, "/v1/features/report/jobs", row).0 == .accepted)
            #expect(try await Self.post(client, "/v1/features/report/jobs", row).0 == .tooManyRequests)
        }
    }

    @Test("retention deletes finished jobs after server.job_retention; a deleted job answers 404, a queued one stays")
    func retention() async throws {
        let manifest = Self.manifest.replacingOccurrences(
            of: "tokens:\n", with: "server:\n  job_retention: 1h\ntokens:\n")
        try await withServer(workers: 0, manifest: manifest) { client, runtime in
            let row = #"{"key": "a", "inputs": {"X": \#(Self.x)}}"#
            let queued = try #require(try await Self.post(client, "/v1/features/report/jobs", row).1["id"]?.stringValue)
            let done = try #require(try await Self.post(client, "/v1/features/report/jobs", row).1["id"]?.stringValue)
            #expect(
                try await client.execute(uri: "/v1/jobs/\(done)", method: .delete, headers: Self.app) { $0.status }
                    == .ok)
            let jobs = try #require(runtime.jobs)
            let now = Date().timeIntervalSince1970
            // Within the retention nothing goes; past it, the finished job does.
            await jobs.applyRetention(now: now + 1800)
            #expect(try await Self.get(client, "/v1/jobs/\(done)").0 == .ok)
            await jobs.applyRetention(now: now + 3700)
            let (status, body) = try await Self.get(client, "/v1/jobs/\(done)")
            #expect(status == .notFound)
            #expect(
                body["error"].flatMap { if case .object(let e) = $0 { e["code"] } else { nil } } == .string("not_found")
            )
            #expect(try await Self.get(client, "/v1/jobs/\(queued)").1["state"] == .string("queued"))
        }
    }
}

extension JSONValue {
    /// The string, when this is one (test reading aid).
    fileprivate var stringValue: String? {
        if case .string(let s) = self { s } else { nil }
    }
}
