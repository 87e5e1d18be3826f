/// One event to deliver to a webhook target: a job's end (`job.succeeded`, `job.failed`, `job.canceled`,
/// `job.expired`). A redelivery is a new delivery of the same event id, so receivers de-duplicate on it.
public struct WebhookDelivery: Sendable, Equatable {
    /// The lifecycle of a delivery.
    public enum State: String, Sendable, CaseIterable {
        /// Waiting for its next attempt.
        case pending
        /// A 2xx answer was received.
        case delivered
        /// The retry window ran out, or the target is not allowed.
        case failed
    }
    public var id: String
    public var jobID: String
    /// `evt_…`: the same for every delivery of one event.
    public var eventID: String
    public var eventType: String
    public var url: String
    public var state: State
    public var attempts: Int
    public var nextAttemptAt: Double
    public var createdAt: Double
    public var deliveredAt: Double?
    public var lastStatus: Int?
    public var lastError: String?

    /// A pending delivery, due now.
    public init(id: String, jobID: String, eventID: String, eventType: String, url: String, createdAt: Double) {
        self.id = id
        self.jobID = jobID
        self.eventID = eventID
        self.eventType = eventType
        self.url = url
        state = .pending
        attempts = 0
        nextAttemptAt = createdAt
        self.createdAt = createdAt
        deliveredAt = nil
        lastStatus = nil
        lastError = nil
    }
}

/// One attempt at a delivery, for the delivery log.
public struct WebhookAttempt: Sendable, Equatable {
    public var deliveryID: String
    public var attempt: Int
    public var at: Double
    /// The HTTP status, when an answer came.
    public var status: Int?
    public var error: String?

    /// Makes a log entry.
    public init(deliveryID: String, attempt: Int, at: Double, status: Int?, error: String?) {
        self.deliveryID = deliveryID
        self.attempt = attempt
        self.at = at
        self.status = status
        self.error = error
    }
}

/// How webhooks are signed, retried and where they may go (`server.webhooks` in the manifest).
public struct WebhookSettings: Sendable, Equatable {
    /// The signing secret (from the environment variable the manifest names); `nil`: webhooks are not sent.
    public var secret: String?
    /// Whether loopback targets (127.0.0.0/8, ::1) are allowed (default `false`; tests and local setups).
    public var allowLoopback: Bool
    /// Whether private (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, fec0::/10) and link-local (169.254/16,
    /// fe80::/10) targets are allowed (default `false`). Other special-purpose addresses are always refused
    /// (`WebhookAddressPolicy`).
    public var allowPrivate: Bool
    /// How long a delivery is retried from its first attempt (default 24 h).
    public var retryWindow: Duration
    /// The first retry's delay, doubled each time up to `backoffMax` (defaults 1 s and 1 h).
    public var backoffBase: Duration
    public var backoffMax: Duration
    /// How long one attempt may take (default 10 s).
    public var timeout: Duration

    /// Settings with the documented defaults.
    public init(
        secret: String? = nil, allowLoopback: Bool = false, allowPrivate: Bool = false,
        retryWindow: Duration = .seconds(86_400), backoffBase: Duration = .seconds(1),
        backoffMax: Duration = .seconds(3600), timeout: Duration = .seconds(10)
    ) {
        self.secret = secret
        self.allowLoopback = allowLoopback
        self.allowPrivate = allowPrivate
        self.retryWindow = retryWindow
        self.backoffBase = backoffBase
        self.backoffMax = backoffMax
        self.timeout = timeout
    }

    /// When attempt `attempts + 1` is due after a failed attempt at `now`, or `nil` when the window is over.
    public func nextAttempt(after attempts: Int, now: Double, createdAt: Double) -> Double? {
        let exponent = min(max(0, attempts - 1), 30)
        let delay = min(backoffBase.seconds * Double(1 << exponent), backoffMax.seconds)
        let next = now + delay
        return next <= createdAt + retryWindow.seconds ? next : nil
    }

    /// The address policy these settings describe.
    public var addressPolicy: WebhookAddressPolicy {
        WebhookAddressPolicy(allowLoopback: allowLoopback, allowPrivate: allowPrivate)
    }

    /// Why an address may not be a webhook target (`nil`: allowed). `address` is 4 (IPv4) or 16 (IPv6) bytes.
    public func problem(address: [UInt8]) -> String? {
        addressPolicy.refusal(address: address)?.description
    }
}

extension WebhookAttempt {
    /// What the job's submitter is shown of an attempt: `delivered` or `failed`. The full error stays with operators
    /// (server log and store), since it can describe the network the server sits in.
    public var outcome: String {
        error == nil && status.map { (200..<300).contains($0) } == true ? "delivered" : "failed"
    }

    /// The answer's status class (`2xx`, `3xx`, `4xx`, `5xx`; `1xx` or `6xx`… for odd answers), or `none` when no
    /// HTTP answer came (refused target, connection or TLS failure, timeout).
    public var statusClass: String {
        guard let status, (100...999).contains(status) else { return "none" }
        return "\(status / 100)xx"
    }
}

/// Webhook deliveries and their attempt log (SQLite and PostgreSQL, the same behaviour tests).
public protocol WebhookStore: Sendable {
    /// Adds a pending delivery.
    func enqueue(_ delivery: WebhookDelivery) async throws
    /// Claims up to `limit` pending deliveries due at `now`, oldest first: their next attempt moves to
    /// `now + claimSeconds`, so another dispatcher (another server on the same store) does not send them meanwhile;
    /// `record` then sets the real next attempt. A dispatcher that dies mid-attempt has it retried after the claim.
    func claimDueDeliveries(now: Double, limit: Int, claimSeconds: Double) async throws -> [WebhookDelivery]
    /// Records an attempt and the delivery's new state, in one transaction.
    func record(_ delivery: WebhookDelivery, attempt: WebhookAttempt) async throws
    /// A job's deliveries with their attempts, oldest first.
    func deliveries(jobID: String) async throws -> [(delivery: WebhookDelivery, attempts: [WebhookAttempt])]
    /// Deletes up to `limit` deliveries that are over (delivered or failed) and were created at or before
    /// `createdBefore`, with their attempt logs, oldest first; returns how many it deleted. Pending deliveries stay
    /// until their retry window ends them.
    func deleteDeliveries(createdBefore: Double, limit: Int) async throws -> Int
}
