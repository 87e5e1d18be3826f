internal import Foundation
internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import FreshlineRuntime
internal import HTTPTypes
internal import Hummingbird
internal import ServiceLifecycle

/// The async pattern's API: submit a job, read it, list jobs, cancel it. Submitting needs `predict`; reading and
/// canceling a job needs `predict` too (the job id is the capability); listing needs `admin`.
struct JobRoutes {
    typealias Context = FreshlineRequestContext
    let runtime: ServingRuntime
    let maxBodyBytes: Int

    /// The most rows one job may hold.
    static var maxRows: Int { 100_000 }

    func register(on routes: ScopedRoutes) {
        routes.predict.post("/v1/features/:name/jobs") { request, context in try await submit(request, context) }
        // A job's id is its capability: whoever submitted it may read, follow or cancel it.
        routes.client.get("/v1/jobs/:id") { request, context in try await show(request, context) }
        // Many jobs by id in one request (a client collecting results needs no poll per job).
        routes.client.post("/v1/jobs/lookup") { request, context in try await lookup(request, context) }
        routes.client.get("/v1/jobs/:id/events") { request, context in try await events(request, context) }
        routes.client.delete("/v1/jobs/:id") { _, context in try await cancel(context) }
        routes.admin.post("/v1/jobs/:id/webhook/redeliver") { _, context in try await redeliver(context) }
        routes.admin.get("/v1/jobs") { request, _ in try await list(request) }
    }

    private func service() throws -> JobService {
        guard let jobs = runtime.jobs else {
            throw APIError(.serviceUnavailable, code: "unavailable", "this server has no job store")
        }
        return jobs
    }

    /// `POST /v1/features/{name}/jobs` with the predict body (`{key, inputs}` or `{rows: […]}`).
    private func submit(_ request: Request, _ context: Context) async throws -> Response {
        let name = context.parameters.get("name") ?? ""
        guard let feature = runtime.features[name] else { throw APIError.notFound("no feature named '\(name)'") }
        let body = try await FeatureRoutes.body(of: request, limit: maxBodyBytes)
        let parsed = try FeatureRoutes.PredictBody(body)
        return try await Self.accept(
            request, context: context, feature: feature, rows: try parsed.requests(maxRows: Self.maxRows),
            body: body, service: try service(), single: parsed.rows == nil)
    }

    /// Queues the rows (honouring `Idempotency-Key`), then answers per `Prefer`: `wait=N` waits up to N seconds
    /// for the result (200 with it when done), otherwise `202 Accepted` with `Location: /v1/jobs/{id}`.
    static func accept(
        _ request: Request, context: Context, feature: FeatureServer, rows: [PredictRequest], body: JSONValue,
        service: JobService, single: Bool
    ) async throws -> Response {
        var idempotencyKey: String?
        if let key = request.headers[idempotencyKeyHeader] {
            guard (1...255).contains(key.utf8.count) else {
                throw APIError.badRequest("Idempotency-Key must be 1 to 255 bytes")
            }
            // Keys are per caller: another token's same key is another key, so it can neither replay nor learn the
            // id of someone else's job. The caller's name is length-prefixed so no (name, key) pair can spell another.
            idempotencyKey = "\(context.caller.utf8.count):\(context.caller):\(key)"
        }
        let hash = Digests.sha256Hex(body.serialized() + Array(feature.spec.name.utf8))
        var webhookURL: String?
        if case .object(let object) = body, let value = object["webhook_url"] {
            guard case .string(let url) = value else { throw APIError.badRequest("webhook_url must be a URL string") }
            webhookURL = url
        }
        let submitted: (job: Job, created: Bool)
        do {
            submitted = try await service.submit(
                feature: feature.spec.name, rows: rows, owner: context.caller, idempotencyKey: idempotencyKey,
                requestHash: hash, webhookURL: webhookURL)
        } catch let error as JobStoreError where error.code == .tooManyJobs {
            throw APIError(
                .tooManyRequests, code: "too_many_jobs",
                "this token already has \(error.limit ?? 0) unfinished jobs, its limit (server.max_queued_jobs_per_token); "
                    + "wait for some to finish or cancel them", retryAfter: 10)
        } catch let error as JobStoreError {
            throw APIError(.conflict, code: "idempotency_conflict", error.description)
        } catch let error as PredictionError {
            throw APIError(error)
        }
        var job = submitted.job
        if let wait = Prefer(request.headers[preferHeader]).wait, wait > 0 {
            job = try await Self.waitUntilFinal([job], seconds: wait, service: service)[0]
        }
        var headers = HTTPFields()
        headers[.location] = "/v1/jobs/\(job.id)"
        if !submitted.created { headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
        if job.state == .succeeded, single, let result = job.result,
            case .object(let object) = try? JSONValue.parse(result), case .array(let items)? = object["results"],
            let first = items.first
        {
            // Done within the wait: the synchronous answer, as the predict API gives it.
            if case .object(let row) = first, case .object(let error)? = row["error"] {
                let message = error["message"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? ""
                throw APIError.badRequest(message)
            }
            headers[.age] = "0"
            return JSONResponse.make(first, headers: headers)
        }
        headers[HTTPField.Name("Preference-Applied")!] = "respond-async"
        return JSONResponse.make(json(job), status: job.state.isFinal ? .ok : .accepted, headers: headers)
    }

    /// Waits up to `seconds` (at most 300) for every job of `jobs` to reach a final state, and returns them as they
    /// are then. A graceful shutdown ends the wait with the states as they are, so a SIGTERM is never held up by a
    /// client's `wait=N`.
    static func waitUntilFinal(_ jobs: [Job], seconds: Double, service: JobService) async throws -> [Job] {
        let deadline = ContinuousClock.now + .seconds(min(seconds, 300))
        do {
            return try await cancelWhenGracefulShutdown {
                var waited = jobs
                for index in waited.indices where !waited[index].state.isFinal {
                    let left = deadline - ContinuousClock.now
                    guard left > .zero else { break }
                    waited[index] = try await service.wait(for: waited[index].id, timeout: left) ?? waited[index]
                }
                return waited
            }
        } catch is CancellationError {
            var current = jobs
            for index in current.indices where !current[index].state.isFinal {
                current[index] = (try? await service.store.job(id: current[index].id)) ?? current[index]
            }
            return current
        }
    }

    /// `GET /v1/jobs/{id}`; with `Prefer: wait=N`, answered once the job has ended or after N seconds.
    private func show(_ request: Request, _ context: Context) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        let service = try service()
        guard var job = try await service.store.job(id: id) else { throw APIError.notFound("no job with id '\(id)'") }
        if let wait = Prefer(request.headers[preferHeader]).wait, wait > 0, !job.state.isFinal {
            job = try await Self.waitUntilFinal([job], seconds: wait, service: service)[0]
        }
        guard case .object(var object) = Self.json(job) else { return JSONResponse.make(Self.json(job)) }
        if let webhooks = service.webhooks, let url = job.webhookURL {
            let log = try await webhooks.store.deliveries(jobID: id)
            object["webhook"] = .object([
                "url": .string(url),
                "deliveries": .array(
                    log.map { entry in
                        .object([
                            "id": .string(entry.delivery.id), "event_id": .string(entry.delivery.eventID),
                            "type": .string(entry.delivery.eventType), "state": .string(entry.delivery.state.rawValue),
                            "attempts": .array(
                                entry.attempts.map { a in
                                    // Only the outcome and the status class: the exact status and the error text
                                    // (kept in the store and the server log for operators) would let a submitter
                                    // probe the server's network through its webhook target.
                                    .object([
                                        "attempt": .integer(Int64(a.attempt)), "at": .string(Timestamp.rfc3339(a.at)),
                                        "outcome": .string(a.outcome), "status_class": .string(a.statusClass),
                                    ])
                                }),
                        ])
                    }),
            ])
        }
        return JSONResponse.make(.object(object))
    }

    /// The most job ids one lookup may name.
    static let maxLookupIDs = 1000

    /// `POST /v1/jobs/lookup` with `{"ids": ["job_…", …]}` (1 to 1,000 ids): every job that exists, as
    /// `GET /v1/jobs/{id}` shows it (without the webhook log), and the ids that do not. With `Prefer: wait=N`,
    /// answered once every job has ended or after N seconds.
    private func lookup(_ request: Request, _ context: Context) async throws -> Response {
        let body = try await FeatureRoutes.body(of: request, limit: maxBodyBytes)
        guard case .object(let object) = body, case .array(let items)? = object["ids"] else {
            throw APIError.badRequest("expected {\"ids\": [job ids]}")
        }
        guard (1...Self.maxLookupIDs).contains(items.count) else {
            throw APIError.badRequest("ids: 1 to \(Self.maxLookupIDs) job ids")
        }
        var ids: [String] = []
        var seen: Set<String> = []
        for item in items {
            guard case .string(let id) = item, (1...128).contains(id.utf8.count) else {
                throw APIError.badRequest("ids: each id is a string of 1 to 128 bytes")
            }
            if seen.insert(id).inserted { ids.append(id) }
        }
        let service = try service()
        var jobs: [Job] = []
        var missing: [String] = []
        for id in ids {
            if let job = try await service.store.job(id: id) { jobs.append(job) } else { missing.append(id) }
        }
        if let wait = Prefer(request.headers[preferHeader]).wait, wait > 0 {
            jobs = try await Self.waitUntilFinal(jobs, seconds: wait, service: service)
        }
        return JSONResponse.make(
            JSONValue.object([
                "jobs": .array(jobs.map { Self.json($0) }), "missing": .array(missing.map(JSONValue.string)),
            ]))
    }

    /// Server-Sent Events: `progress` (rows done, partial results) whenever the job advances, `partial` whenever only
    /// the text of its streaming rows grew (`stream: true` models; at most every 100 ms), then one final event named
    /// after its end state (`succeeded` with the result, or `failed`/`canceled`/`expired` with the error),
    /// after which the stream ends. Event ids are the job's `updated_at`, so a client can tell repeats apart.
    ///
    /// The job is polled once per 100 ms for all its streams together (`JobFollowers`); a comment line is sent when
    /// nothing else was for `heartbeat`, so a client that has gone is noticed (the write fails) and its stream
    /// closed. Streams are limited per token and per server (`server.max_streams_per_token`, `max_streams`): over
    /// the limit, 429 or 503 with Retry-After. A graceful shutdown ends the stream after an event with the job's
    /// current state (`retry: 1000` tells the client to reconnect, to another server if this one is gone).
    private func events(_ request: Request, _ context: Context) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        let service = try service()
        guard let first = try await service.store.job(id: id) else { throw APIError.notFound("no job with id '\(id)'") }
        let updates: AsyncStream<Job>
        do {
            updates = try service.followers.follow(id: id, caller: context.caller)
        } catch .callerLimit(let limit) {
            throw APIError(
                .tooManyRequests, code: "too_many_streams",
                "this token already holds \(limit) open event streams; close one first", retryAfter: 5)
        } catch .serverLimit(let limit) {
            throw APIError(
                .serviceUnavailable, code: "too_many_streams",
                "the server holds its limit of \(limit) open event streams", retryAfter: 5)
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let store = service.store
        let body = ResponseBody { writer in
            try await Self.stream(first: first, updates: updates, heartbeat: Self.heartbeat) { text in
                try await writer.write(ByteBuffer(string: text))
            } current: {
                try? await store.job(id: id)
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// How long an event stream may stay silent before a heartbeat comment is sent.
    static let heartbeat = Duration.seconds(15)

    /// Writes a job's event stream: its state now, then each change from `updates` (which ends after a final
    /// state), heartbeats while nothing changes; on graceful shutdown, the `current` state and the end.
    static func stream(
        first: Job, updates: AsyncStream<Job>, heartbeat: Duration, write: (String) async throws -> Void,
        current: @Sendable () async -> Job?
    ) async throws {
        try await write("retry: 1000\n" + event(first))
        if first.state.isFinal { return }
        var last = first
        var lastWrite = ContinuousClock.now
        for await job in updates.cancelOnGracefulShutdown() {
            if job.updatedAt != last.updatedAt || job.state != last.state {
                let previous = last
                last = job
                try await write(event(job, previous: previous))
                lastWrite = .now
                if job.state.isFinal { return }
            } else if ContinuousClock.now - lastWrite >= heartbeat {
                try await write(": heartbeat\n\n")
                lastWrite = .now
            }
        }
        // Ended without a final state: the server is shutting down (or the job vanished). The state as it is now.
        if !last.state.isFinal, let job = await current(), job.updatedAt != last.updatedAt || job.state != last.state {
            try await write(event(job))
        }
    }

    /// One Server-Sent Event for a job's state: the final state's name; `partial` when, since `previous`, only the
    /// text of rows still streaming grew (a feature whose model has `stream: true`); otherwise `progress`.
    static func event(_ job: Job, previous: Job? = nil) -> String {
        let partial = job.partial.flatMap { try? JSONValue.parse($0) }
        // A row still streaming is the partial result's last entry, `{"key", "state": "streaming", "text"}`; a
        // partial result that changed otherwise (a retry dropping a half-written text, say) is progress.
        var streaming = false
        if case .array(let rows)? = partial, case .object(let last)? = rows.last,
            last["state"] == .string("streaming")
        {
            streaming = true
        }
        let onlyText =
            streaming
            && (previous.map {
                $0.state == job.state && $0.rowsDone == job.rowsDone && $0.attempts == job.attempts
                    && $0.partial != job.partial
            } ?? false)
        let event = job.state.isFinal ? job.state.rawValue : onlyText ? "partial" : "progress"
        var data: [String: JSONValue] = [
            "id": .string(job.id), "state": .string(job.state.rawValue),
            "rows_done": .integer(Int64(job.rowsDone)), "rows_total": .integer(Int64(job.rowsTotal)),
            "attempts": .integer(Int64(job.attempts)),
        ]
        if let partial { data["partial"] = partial }
        if let result = job.result, let value = try? JSONValue.parse(result) { data["result"] = value }
        if job.state.isFinal, job.state != .succeeded, let error = job.lastError {
            data["error"] = .string(error)
        }
        return "id: \(job.updatedAt)\nevent: \(event)\ndata: "
            + String(decoding: JSONValue.object(data).serialized(), as: UTF8.self) + "\n\n"
    }

    private func cancel(_ context: Context) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        let service = try service()
        guard let job = try await service.store.job(id: id) else { throw APIError.notFound("no job with id '\(id)'") }
        guard let canceled = try await service.cancel(id: id) else {
            throw APIError(.conflict, code: "job_finished", "job \(id) already ended (\(job.state.rawValue))")
        }
        return JSONResponse.make(Self.json(canceled))
    }

    /// Queues the job's last webhook event again (same event id).
    private func redeliver(_ context: Context) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        let service = try service()
        guard try await service.store.job(id: id) != nil else { throw APIError.notFound("no job with id '\(id)'") }
        guard let webhooks = service.webhooks, let delivery = try await webhooks.redeliver(jobID: id) else {
            throw APIError(.conflict, code: "no_webhook", "job \(id) has no webhook event to deliver")
        }
        return JSONResponse.make(
            JSONValue.object([
                "id": .string(delivery.id), "event_id": .string(delivery.eventID), "state": .string("pending"),
            ]), status: .accepted)
    }

    private func list(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        var state: Job.State?
        if let text = query.get("state") {
            guard let s = Job.State(rawValue: text) else {
                throw APIError.badRequest(
                    "state must be one of \(Job.State.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            state = s
        }
        var limit = 50
        if let text = query.get("limit") {
            guard let n = Int(text), (1...1000).contains(n) else { throw APIError.badRequest("limit must be 1…1000") }
            limit = n
        }
        let jobs = try await service().store.jobs(feature: query.get("feature"), state: state, limit: limit)
        return JSONResponse.make(JSONValue.object(["jobs": .array(jobs.map { Self.json($0, includeRows: false) })]))
    }

    static func json(_ job: Job, includeRows: Bool = true) -> JSONValue { JobJSON.value(job, includeRows: includeRows) }
}

/// `Idempotency-Key` (Stripe's semantics: same key and body → the same job; another body → 409).
let idempotencyKeyHeader = HTTPField.Name("Idempotency-Key")!

/// The parts of RFC 7240's `Prefer` Freshline acts on: `respond-async` and `wait=N`.
struct Prefer {
    var respondAsync = false
    var wait: Double?

    init(_ header: String?) {
        guard let header else { return }
        for part in header.split(separator: ",").flatMap({ $0.split(separator: ";") }) {
            let token = part.trimmingCharacters(in: .whitespaces).lowercased()
            if token == "respond-async" { respondAsync = true }
            if token.hasPrefix("wait="), let n = Double(token.dropFirst(5)), n >= 0, n.isFinite { wait = n }
        }
    }
}

/// RFC 7240's `Prefer` request header.
let preferHeader = HTTPField.Name("Prefer")!
