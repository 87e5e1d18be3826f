internal import AsyncHTTPClient
internal import Foundation
public import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import Logging
internal import NIOCore
internal import NIOHTTP1

/// Delivers job events to webhook targets: `POST` of the event as JSON, signed like Stripe's —
/// `Freshline-Signature: t=TIMESTAMP,v1=HEX(HMAC-SHA256(secret, "TIMESTAMP.BODY"))` — with the event id in the body
/// and in `Freshline-Event-Id` for de-duplication. A delivery is retried with exponential backoff until a 2xx
/// answer or the end of the retry window; each attempt is logged. Before each attempt the target's host is resolved
/// once and every address is checked against `WebhookAddressPolicy`; the attempt then connects to a checked address
/// itself (no second lookup), follows no redirect (a 3xx answer is a failed attempt) and runs on a client of its own
/// that is shut down before the attempt returns.
public final class WebhookDispatcher: Sendable {
    /// Deliveries and their log.
    public let store: any WebhookStore
    private let jobs: any JobStore
    private let settings: WebhookSettings
    private let metrics: ServingMetrics
    private let logger: Logger
    private let poll: Duration
    /// Real time, for leases, heartbeats and the stamps other processes compare: never accelerated by
    /// `--clock-speed`, which moves only the stamps the advisor reads.
    let systemClock: any WallClock = SystemWallClock()

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
        switch vet(url) {
        case .allowed: nil
        case .refused(let problem): problem
        }
    }

    /// Parses the URL, resolves its host once and checks every address; on success, the address to connect to.
    func vet(_ url: String) -> Vetting {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
            scheme == "http" || scheme == "https",
            let urlHost = parsed.host, !urlHost.isEmpty
        else { return .refused("'\(url)' is not an http:// or https:// URL") }
        // AsyncHTTPClient trims the brackets of an IPv6 literal the same way before it decides what to connect to.
        let host = urlHost.hasPrefix("[") && urlHost.hasSuffix("]") ? String(urlHost.dropFirst().dropLast()) : urlHost
        let literal = Self.literalAddress(host)
        let addresses = literal.map { [$0] } ?? Self.resolve(host)
        guard let first = addresses.first else { return .refused("the host '\(host)' does not resolve") }
        for address in addresses {
            if let problem = settings.problem(address: address) {
                return .refused("the host '\(host)' resolves to \(problem), which webhooks may not reach")
            }
        }
        return .allowed(VettedTarget(host: host, address: Self.text(of: first), isLiteral: literal != nil))
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
            eventType: "job.\(job.state.rawValue)", url: url, createdAt: systemClock.now)
        do { try await store.enqueue(delivery) } catch {
            logger.error("job \(job.id): cannot queue its webhook: \(error)")
        }
    }

    /// Queues the job's last event again (same event id), now.
    public func redeliver(jobID: String) async throws -> WebhookDelivery? {
        guard let last = try await store.deliveries(jobID: jobID).last?.delivery else { return nil }
        let delivery = WebhookDelivery(
            id: RandomID.make("whd_"), jobID: jobID, eventID: last.eventID, eventType: last.eventType,
            url: last.url, createdAt: systemClock.now)
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
                (try? await store.claimDueDeliveries(now: systemClock.now, limit: limit, claimSeconds: claim)) ?? []
            for delivery in due { await attempt(delivery) }
            if due.isEmpty { try? await Task.sleep(for: poll) }
        }
    }

    private func attempt(_ delivery: WebhookDelivery) async {
        var delivery = delivery
        delivery.attempts += 1
        let now = systemClock.now
        var status: Int?
        var problem: String?
        switch vet(delivery.url) {
        case .refused(let refused):
            problem = refused
        case .allowed(let target):
            guard let secret = settings.secret, let job = try? await jobs.job(id: delivery.jobID) else {
                problem = settings.secret == nil ? "no signing secret configured" : "the job is gone"
                break
            }
            let body = JSONValue.object([
                "id": .string(delivery.eventID), "type": .string(delivery.eventType),
                "created": .string(Timestamp.rfc3339(delivery.createdAt)), "data": JobJSON.value(job),
            ]).serialized()
            let timestamp = Int(now)
            let signature = Digests.hmacSHA256Hex(key: Array(secret.utf8), message: Array("\(timestamp).".utf8) + body)
            var request = HTTPClientRequest(url: delivery.url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "Freshline-Webhooks/1")
            request.headers.add(name: "Freshline-Event-Id", value: delivery.eventID)
            request.headers.add(
                name: "Freshline-Signature", value: "t=\(timestamp),v1=\(signature)")
            request.body = .bytes(ByteBuffer(bytes: body))
            do {
                let code = try await Self.post(request, to: target, timeout: settings.timeout)
                status = code
                if !(200..<300).contains(code) {
                    problem =
                        (300..<400).contains(code)
                        ? "answered \(code) (redirects are not followed)" : "answered \(code)"
                }
            } catch {
                problem = "\(error)"
            }
        }
        if let problem {
            // The URL stays out of the log (it may carry the receiver's token); the problem names the host.
            logger.warning("webhook \(delivery.id) of job \(delivery.jobID), attempt \(delivery.attempts): \(problem)")
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

    /// Sends one attempt's request to the vetted address and returns the answer's status.
    ///
    /// The connection goes to `target.address`, never to a fresh lookup of the host: AsyncHTTPClient's
    /// `Configuration.dnsOverride` (1.37; `[host: address]`) makes the pool connect to the address while the request
    /// keeps the URL's host for the `Host` header and, for https, for TLS SNI and certificate verification (the
    /// connection key's `serverNameIndicatorOverride`). It is the one mechanism the client offers for that: its
    /// `dnsResolver` only picks between the system and a randomised resolver (no hook), and rewriting the URL to the
    /// IP literal would verify an https certificate against the IP. `dnsOverride` is client-wide, so each attempt
    /// gets a client of its own on the shared event loops (no threads of its own), scoped by `withHTTPClient`, which
    /// shuts it down before returning, even on error or cancellation, so no client outlives the attempt, and none
    /// outlives `run()`, which awaits every attempt. An attempt is one request: a pooled connection would rarely be
    /// reused. An IP-literal host is connected to as written: there is nothing to resolve again. Redirects are not
    /// followed (a 3xx is returned as the status, so the attempt fails) and no proxy is used, so nothing but the
    /// vetted address is ever contacted.
    static func post(_ request: HTTPClientRequest, to target: VettedTarget, timeout: Duration) async throws -> Int {
        let limit = TimeAmount.nanoseconds(Int64(timeout.seconds * 1e9))
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: min(limit, .seconds(10)), read: limit)
        configuration.proxy = nil
        if !target.isLiteral { configuration.dnsOverride = [target.host: target.address] }
        return try await HTTPClient.withHTTPClient(configuration: configuration) { client in
            let response = try await client.execute(request, timeout: limit)
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return Int(response.status.code)
        }
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 literal (as `inet_pton` reads them, which is how AsyncHTTPClient tells
    /// a literal from a name), or `nil` for a host name.
    static func literalAddress(_ host: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: v6) { Array($0) } }
        return nil
    }

    /// An address's text, as `SocketAddress(ipAddress:)` reads it: dotted IPv4, or eight uncompressed IPv6 groups.
    static func text(of address: [UInt8]) -> String {
        if address.count == 4 { return address.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: address.count, by: 2).map {
            String(UInt16(address[$0]) << 8 | UInt16(address[$0 + 1]), radix: 16)
        }.joined(separator: ":")
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

extension WebhookDispatcher {
    /// The outcome of checking a target before an attempt.
    enum Vetting {
        /// Every address the host resolved to is allowed; the attempt connects to `target.address`.
        case allowed(VettedTarget)
        /// Why the target may not be reached.
        case refused(String)
    }

    /// A target checked for one attempt: the URL's host (for `Host`, SNI and certificate checks) and the checked
    /// address the connection goes to.
    struct VettedTarget: Sendable, Equatable {
        var host: String
        /// The address as text (`SocketAddress(ipAddress:)` syntax).
        var address: String
        /// Whether the host is an IP literal (then it is the address).
        var isLiteral: Bool
    }
}
