internal import AsyncHTTPClient
internal import Foundation
public import FreshlineCore
internal import FreshlineEngine
internal import Logging
internal import NIOCore
internal import NIOHTTP1

/// Delivers job events to webhook targets: `POST` of the event as JSON, signed like Stripe's —
/// `Freshline-Signature: t=TIMESTAMP,v1=HEX(HMAC-SHA256(secret, "TIMESTAMP.BODY"))` — with the event id in the body
/// and in `Freshline-Event-Id` for de-duplication. A delivery is retried with exponential backoff until a 2xx
/// answer or the end of the retry window; each attempt is logged. Targets are resolved and checked against the
/// allow-list before each attempt (private, link-local and loopback addresses are refused unless configured).
public final class WebhookDispatcher: Sendable {
    /// Deliveries and their log.
    public let store: any WebhookStore
    private let jobs: any JobStore
    private let settings: WebhookSettings
    private let metrics: ServingMetrics
    private let logger: Logger
    private let poll: Duration

    init(
        store: any WebhookStore, jobs: any JobStore, settings: WebhookSettings, metrics: ServingMetrics,
        logger: Logger, poll: Duration = .milliseconds(200)
    ) {
        self.store = store
        self.jobs = jobs
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        self.poll = poll
    }

    /// Whether a URL may be a target: an http(s) URL whose host resolves only to allowed addresses.
    public func check(_ url: String) -> String? {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
            scheme == "http" || scheme == "https",
            let host = parsed.host, !host.isEmpty
        else { return "'\(url)' is not an http:// or https:// URL" }
        let addresses = Self.resolve(host)
        if addresses.isEmpty { return "the host '\(host)' does not resolve" }
        for address in addresses {
            if let problem = settings.problem(address: address) {
                return "the host '\(host)' resolves to \(problem), which webhooks may not reach"
            }
        }
        return nil
    }

    /// Queues the event for a job that just ended, if the job has a target and a secret is configured.
    func jobEnded(_ job: Job) async {
        guard let url = job.webhookURL, job.state.isFinal else { return }
        guard settings.secret != nil else {
            logger.warning("job \(job.id): webhook not sent: no server.webhooks.secret_env configured")
            return
        }
        let delivery = WebhookDelivery(
            id: RandomID.make("whd_"), jobID: job.id, eventID: "evt_" + job.id.dropFirst(4) + "_\(job.state)",
            eventType: "job.\(job.state.rawValue)", url: url, createdAt: Clock.unixNow)
        do { try await store.enqueue(delivery) } catch {
            logger.error("job \(job.id): cannot queue its webhook: \(error)")
        }
    }

    /// Queues the job's last event again (same event id), now.
    public func redeliver(jobID: String) async throws -> WebhookDelivery? {
        guard let last = try await store.deliveries(jobID: jobID).last?.delivery else { return nil }
        let delivery = WebhookDelivery(
            id: RandomID.make("whd_"), jobID: jobID, eventID: last.eventID, eventType: last.eventType,
            url: last.url, createdAt: Clock.unixNow)
        try await store.enqueue(delivery)
        return delivery
    }

    /// Delivers due events until cancelled.
    func run() async {
        while !Task.isCancelled {
            // Claimed for as long as sending them one after another can take, so another server's dispatcher on the
            // same store leaves them alone.
            let limit = 8
            let claim = Double(limit) * settings.timeout.seconds + 30
            let due =
                (try? await store.claimDueDeliveries(now: Clock.unixNow, limit: limit, claimSeconds: claim)) ?? []
            for delivery in due { await attempt(delivery) }
            if due.isEmpty { try? await Task.sleep(for: poll) }
        }
    }

    private func attempt(_ delivery: WebhookDelivery) async {
        var delivery = delivery
        delivery.attempts += 1
        let now = Clock.unixNow
        var status: Int?
        var problem: String?
        if let refused = check(delivery.url) {
            problem = refused
        } else if let secret = settings.secret, let job = try? await jobs.job(id: delivery.jobID) {
            let body = JSONValue.object([
                "id": .string(delivery.eventID), "type": .string(delivery.eventType),
                "created": .string(Timestamp.rfc3339(delivery.createdAt)), "data": JobJSON.value(job),
            ]).serialized()
            let timestamp = Int(now)
            let signature = SHA256.hmac(key: Array(secret.utf8), message: Array("\(timestamp).".utf8) + body)
            var request = HTTPClientRequest(url: delivery.url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "Freshline-Webhooks/1")
            request.headers.add(name: "Freshline-Event-Id", value: delivery.eventID)
            request.headers.add(
                name: "Freshline-Signature", value: "t=\(timestamp),v1=\(SHA256.hexString(signature))")
            request.body = .bytes(ByteBuffer(bytes: body))
            do {
                let response = try await HTTPClient.shared.execute(
                    request, timeout: .nanoseconds(Int64(settings.timeout.seconds * 1e9)))
                status = Int(response.status.code)
                _ = try? await response.body.collect(upTo: 64 * 1024)
                if !(200..<300).contains(Int(response.status.code)) { problem = "answered \(response.status.code)" }
            } catch {
                problem = "\(error)"
            }
        } else {
            problem = settings.secret == nil ? "no signing secret configured" : "the job is gone"
        }
        delivery.lastStatus = status
        delivery.lastError = problem
        if problem == nil {
            delivery.state = .delivered
            delivery.deliveredAt = now
            metrics.webhook(outcome: "delivered")
        } else if let next = settings.nextAttempt(after: delivery.attempts, now: now, createdAt: delivery.createdAt) {
            delivery.nextAttemptAt = next
            metrics.webhook(outcome: "retry")
        } else {
            delivery.state = .failed
            metrics.webhook(outcome: "failed")
        }
        let attempt = WebhookAttempt(
            deliveryID: delivery.id, attempt: delivery.attempts, at: now, status: status, error: problem)
        do { try await store.record(delivery, attempt: attempt) } catch {
            logger.error("webhook \(delivery.id): cannot record the attempt: \(error)")
        }
    }

    /// The host's IPv4 and IPv6 addresses (4 or 16 bytes each), by the system resolver.
    static func resolve(_ host: String) -> [[UInt8]] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [[UInt8]] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if info.pointee.ai_family == AF_INET, let raw = info.pointee.ai_addr {
                raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    withUnsafeBytes(of: sin.pointee.sin_addr) { addresses.append(Array($0)) }
                }
            } else if info.pointee.ai_family == AF_INET6, let raw = info.pointee.ai_addr {
                raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    withUnsafeBytes(of: sin6.pointee.sin6_addr) { addresses.append(Array($0)) }
                }
            }
            cursor = info.pointee.ai_next
        }
        return addresses
    }
}
