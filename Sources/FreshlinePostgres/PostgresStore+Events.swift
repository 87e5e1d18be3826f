public import FreshlineCore
internal import PostgresNIO

extension PostgresStore: StoreEventSource {
    /// The `NOTIFY` channel of every store event.
    static let eventChannel = "freshline_events"

    public func listen(_ handler: @escaping @Sendable (StoreEvent) async -> Void) async throws {
        while !Task.isCancelled {
            do {
                try await readiness.wait()
            } catch {
                // A store that failed to start or has stopped throws here.
                if Task.isCancelled { return }
                throw error
            }
            do {
                // A connection of its own for as long as it listens; the sequence ends when the task is cancelled
                // and throws when the connection is lost. Not bounded like a store call (`bounded`): it is meant to
                // last, and while the server is down it waits here for a connection (a lease request is cancelled
                // with the task). The session's statement_timeout does not end it: no statement runs while listening.
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.eventChannel) { notifications in
                        for try await notification in notifications {
                            if let event = StoreEvent(payload: notification.payload) {
                                await handler(event)
                            } else {
                                logger.debug("ignored a store event", metadata: ["payload": "\(notification.payload)"])
                            }
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning(
                    "lost the store event connection; listening again in 1 s",
                    metadata: ["error": "\(Self.storeError(error, "listening for store events"))"])
            }
            if Task.isCancelled { return }
            // Events sent until it listens again are lost; callers poll as a backstop.
            try? await Task.sleep(for: .seconds(1))
        }
    }
}

extension StoreEvent {
    /// The `NOTIFY` payload: `jobs:<feature>`, `job:<id>`, `snapshot:<feature>`, `ranges:<feature>`.
    var payload: String {
        switch self {
        case .jobsQueued(let feature): "jobs:\(feature)"
        case .jobEnded(let id): "job:\(id)"
        case .snapshotPublished(let feature): "snapshot:\(feature)"
        case .rangesAvailable(let feature): "ranges:\(feature)"
        }
    }

    /// Reads a `payload`; `nil` for anything else.
    init?(payload: String) {
        guard let colon = payload.firstIndex(of: ":") else { return nil }
        let feature = String(payload[payload.index(after: colon)...])
        switch payload[..<colon] {
        case "jobs": self = .jobsQueued(feature: feature)
        case "job": self = .jobEnded(id: feature)
        case "snapshot": self = .snapshotPublished(feature: feature)
        case "ranges": self = .rangesAvailable(feature: feature)
        default: return nil
        }
    }
}
