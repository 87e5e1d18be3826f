internal import Foundation
internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import FreshlineRuntime
internal import HTTPTypes
internal import Hummingbird

/// The batch pattern's API: start and watch runs, list snapshots. Every route needs the `admin` scope.
struct BatchRoutes {
    typealias Context = FreshlineRequestContext
    let runtime: ServingRuntime
    let maxBodyBytes: Int

    func register(on routes: ScopedRoutes) {
        routes.admin.post("/v1/features/:name/runs") { request, context in try await startRun(request, context) }
        routes.admin.get("/v1/features/:name/runs") { request, context in try await listRuns(request, context) }
        routes.admin.get("/v1/features/:name/snapshots") { request, context in
            try await listSnapshots(request, context)
        }
        routes.admin.get("/v1/runs/:id") { _, context in try await showRun(context) }
    }

    /// The feature's runner and the batch service, or a 404/409 naming what is wrong.
    private func runner(_ context: Context) throws -> (BatchService, BatchRunner) {
        let name = context.parameters.get("name") ?? ""
        guard runtime.features[name] != nil else {
            throw APIError.notFound(
                "no feature named '\(name)' (features: \(runtime.features.keys.sorted().joined(separator: ", ")))")
        }
        guard let batch = runtime.batch, let runner = batch.runners[name] else {
            throw APIError(.conflict, code: "not_batch", "feature '\(name)' has no batch section")
        }
        return (batch, runner)
    }

    private func startRun(_ request: Request, _ context: Context) async throws -> Response {
        let (batch, runner) = try runner(context)
        var keys: [String]?
        if request.headers[.contentLength].map({ $0 != "0" }) ?? true {
            let body = try await FeatureRoutes.body(of: request, limit: maxBodyBytes, allowEmpty: true)
            if case .object(let object) = body {
                for field in object.keys where field != "keys" {
                    throw APIError.badRequest("unknown field '\(field)' (a run takes an optional 'keys' list)")
                }
                switch object["keys"] {
                case nil, .null?: break
                case .array(let items)?:
                    keys = try items.enumerated().map { index, item in
                        guard let key = try FeatureRoutes.key(item, field: "keys[\(index)]") else {
                            throw APIError.badRequest("keys[\(index)] must be a string or an integer")
                        }
                        return key
                    }
                    if keys?.isEmpty == true { throw APIError.badRequest("keys: give at least one key, or omit it") }
                default: throw APIError.badRequest("keys must be a list of keys")
                }
            } else if body != .null {
                throw APIError.badRequest("body: expected a JSON object such as {\"keys\": [\"u1\"]}, or no body")
            }
        }
        let run: BatchRun
        do {
            run = try await batch.trigger(
                feature: runner.feature.name, trigger: keys == nil ? .manual : .backfill, keys: keys)
        } catch let error as BatchStoreError {
            // Each refusal under its own code (a run id that is not there is not a conflict).
            if error.code == .unknownRun { throw APIError.notFound(error.description) }
            throw APIError(.conflict, code: error.code.description, error.description)
        }
        var headers = HTTPFields()
        headers[.location] = "/v1/runs/\(run.id)"
        return JSONResponse.make(Self.json(run, failures: nil), status: .accepted, headers: headers)
    }

    private func listRuns(_ request: Request, _ context: Context) async throws -> Response {
        let (batch, runner) = try runner(context)
        let limit = try Self.limit(request)
        let runs = try await batch.batchStore.runs(feature: runner.feature.name, limit: limit)
        return JSONResponse.make(JSONValue.object(["runs": .array(runs.map { Self.json($0, failures: nil) })]))
    }

    private func listSnapshots(_ request: Request, _ context: Context) async throws -> Response {
        let (batch, runner) = try runner(context)
        let limit = try Self.limit(request)
        let snapshots = try await batch.batchStore.snapshots(feature: runner.feature.name, limit: limit)
        let serving = runtime.features[runner.feature.name]?.snapshot?.info.id
        let items = snapshots.map { s -> JSONValue in
            .object([
                "id": .integer(s.id), "version": .integer(Int64(s.version)), "label": .string("v\(s.version)"),
                "state": .string(s.state.rawValue), "run_id": .string(s.runID),
                "model_version": .string(s.modelVersion), "computed_at": .string(Timestamp.rfc3339(s.inputTime)),
                "created_at": .string(Timestamp.rfc3339(s.createdAt)),
                "published_at": s.publishedAt.map { .string(Timestamp.rfc3339($0)) } ?? .null,
                "key_count": .integer(Int64(s.keyCount)), "serving": .bool(s.id == serving),
            ])
        }
        return JSONResponse.make(
            JSONValue.object(["feature": .string(runner.feature.name), "snapshots": .array(items)]))
    }

    private func showRun(_ context: Context) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard let batch = runtime.batch, let run = try await batch.batchStore.run(id: id) else {
            throw APIError.notFound("no run with id '\(id)'")
        }
        let failures = try await batch.batchStore.failures(runID: id, limit: 100)
        let ranges = try await batch.batchStore.ranges(runID: id)
        return JSONResponse.make(Self.json(run, failures: failures, ranges: ranges))
    }

    private static func limit(_ request: Request) throws -> Int {
        guard let text = request.uri.queryParameters.get("limit") else { return 20 }
        guard let n = Int(text), (1...1000).contains(n) else { throw APIError.badRequest("limit must be 1…1000") }
        return n
    }

    static func json(_ run: BatchRun, failures: [RowFailure]?, ranges: [RunRange]? = nil) -> JSONValue {
        func time(_ t: Double?) -> JSONValue { t.map { .string(Timestamp.rfc3339($0)) } ?? .null }
        var object: [String: JSONValue] = [
            "id": .string(run.id), "feature": .string(run.feature), "trigger": .string(run.trigger.rawValue),
            "state": .string(run.state.rawValue), "snapshot_id": .integer(run.snapshotID),
            "scheduled_for": time(run.scheduledFor), "started_at": time(run.startedAt),
            "finished_at": time(run.finishedAt), "heartbeat_at": time(run.heartbeatAt), "owner": .string(run.owner),
            "rows_total": run.rowsTotal.map { .integer(Int64($0)) } ?? .null,
            "rows_done": .integer(Int64(run.rowsDone)), "rows_written": .integer(Int64(run.rowsWritten)),
            "rows_failed": .integer(Int64(run.rowsFailed)), "busy_seconds": .number(run.busySeconds),
            "rows_per_second": run.busySeconds > 0 ? .number(Double(run.rowsDone) / run.busySeconds) : .null,
            "duration_seconds": run.finishedAt.map { .number($0 - run.startedAt) } ?? .null,
            "resumes": .integer(Int64(run.resumes)), "error": run.error.map(JSONValue.string) ?? .null,
            "keys": run.keys.map { .integer(Int64($0.count)) } ?? .null,
            "usage": .object([
                "input_tokens": .integer(Int64(run.inputTokens)), "output_tokens": .integer(Int64(run.outputTokens)),
            ]),
        ]
        if let total = run.rowsTotal, total > 0 { object["progress"] = .number(Double(run.rowsDone) / Double(total)) }
        if let ranges {
            // Which worker computed what: the spread of a run over the processes sharing the store.
            object["ranges"] = .array(
                ranges.map { r in
                    .object([
                        "index": .integer(Int64(r.index)),
                        "rows": .array([.integer(Int64(r.rowStart)), .integer(Int64(r.rowEnd))]),
                        "state": .string(r.state.rawValue), "owner": r.owner.map(JSONValue.string) ?? .null,
                        "rows_done": .integer(Int64(r.rowsDone)), "leases": .integer(Int64(r.leases)),
                        "finished_at": time(r.finishedAt),
                        "provider_batch": r.providerBatch.map(JSONValue.string) ?? .null,
                    ])
                })
        }
        if let failures {
            object["failures"] = .array(
                failures.map { f in
                    .object([
                        "row": .integer(Int64(f.ordinal)), "location": .string(f.location),
                        "key": f.key.map(JSONValue.string) ?? .null, "reason": .string(f.reason),
                    ])
                })
        }
        return .object(object)
    }
}
