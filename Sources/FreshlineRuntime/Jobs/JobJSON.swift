public import FreshlineCore
internal import FreshlineEngine
public import FreshlineJSON

/// A job as the API shows it (and as webhook events carry it).
public enum JobJSON {
    public static func value(_ job: Job, includeRows: Bool = true) -> JSONValue {
        func time(_ t: Double?) -> JSONValue { t.map { .string(Timestamp.rfc3339($0)) } ?? .null }
        var object: [String: JSONValue] = [
            "id": .string(job.id), "feature": .string(job.feature), "state": .string(job.state.rawValue),
            "attempts": .integer(Int64(job.attempts)), "max_attempts": .integer(Int64(job.maxAttempts)),
            "rows_total": .integer(Int64(job.rowsTotal)), "rows_done": .integer(Int64(job.rowsDone)),
            "progress": .number(job.rowsTotal > 0 ? Double(job.rowsDone) / Double(job.rowsTotal) : 0),
            "error": job.lastError.map(JSONValue.string) ?? .null,
            "created_at": time(job.createdAt), "updated_at": time(job.updatedAt), "started_at": time(job.startedAt),
            "finished_at": time(job.finishedAt), "deadline_at": time(job.deadlineAt),
            "available_at": job.state == .queued ? time(job.availableAt) : .null,
        ]
        if includeRows {
            if let result = job.result, let value = try? JSONValue.parse(result) { object["result"] = value }
            if let partial = job.partial, let value = try? JSONValue.parse(partial) { object["partial"] = value }
        }
        return .object(object)
    }
}
