internal import AsyncHTTPClient
internal import CoreMetrics
internal import Foundation
internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import Logging
internal import NIOCore
internal import NIOHTTP1
internal import NIOPosix
internal import Synchronization

/// The call machinery one upstream's model shares across its kinds: a pooled HTTP client, the rate-limit budget,
/// retries within the caller's deadline and the circuit breaker, with the metrics of each.
///
/// A call (`guarded`) is one `infer`: the breaker admits or refuses it as a whole, and its outcome — success, or the
/// failure of any of its requests — is what the breaker counts. A request (`send`) is one HTTP exchange: it takes
/// its cost from the budget, then is attempted, and retried while the failure is retryable and the deadline leaves
/// room. Errors carry the model's name and the URL without its credentials or query, never the API key (sent only
/// as a header) or the upstream's body.
final class UpstreamClient: Sendable {
    /// The manifest's name of the model, for messages and metric labels.
    let model: String
    /// `scheme://host:port/path` of the upstream, for messages.
    let endpoint: String
    let limits: UpstreamLimits
    let metrics: UpstreamMetrics
    let http: HTTPClient
    private let authorization: String?
    private let breaker: Mutex<CircuitBreaker>
    private let budget: RateLimiter
    /// The budget shared with the other servers of a cluster, when the store is PostgreSQL.
    private let shared: SharedBudget?
    private let retry: RetryPolicy
    private let logger: Logger

    /// The most bytes read of an answer: more is a malformed answer, not an unbounded allocation.
    static let maximumAnswerBytes = 64 << 20

    init(
        model: String, url: String, limits: UpstreamLimits, apiKey: String?, metrics: any MetricsFactory,
        logger: Logger,
        budgetStore: (any UpstreamBudgetStore)? = nil
    ) {
        self.model = model
        self.endpoint = Self.display(url)
        self.limits = limits
        self.metrics = UpstreamMetrics(model: model, factory: metrics)
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.proxy = nil
        // Our own retries handle refused connections within the deadline; the client's would keep retrying until
        // its connect timeout, hiding a down upstream for seconds.
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, limits.maxConnections))
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(10))
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        authorization = apiKey.map { "Bearer \($0)" }
        breaker = Mutex(CircuitBreaker(failureThreshold: limits.breakerFailures, openFor: limits.breakerOpenFor))
        budget = RateLimiter(requestsPerMinute: limits.requestsPerMinute, tokensPerMinute: limits.tokensPerMinute)
        shared = budgetStore.map {
            SharedBudget(
                store: $0, upstream: model, requestsPerMinute: limits.requestsPerMinute,
                tokensPerMinute: limits.tokensPerMinute, logger: logger)
        }
        retry = RetryPolicy(maxRetries: max(0, limits.maxRetries))
        self.logger = logger
    }

    /// Shuts the HTTP client down (at server stop, or when connecting failed).
    func shutdown() async {
        do { try await http.shutdown() } catch {
            logger.debug("upstream '\(model)': HTTP client shutdown: \(error)")
        }
    }

    /// The deadline of a call: the caller's, or `limits.timeout` from now.
    func deadline(_ deadline: ContinuousClock.Instant?) -> ContinuousClock.Instant {
        deadline ?? .now + limits.timeout
    }

    /// An error about this upstream: `upstream model 'NAME' (URL): MESSAGE`.
    func error(_ kind: UpstreamError.Kind, _ message: String, retryAfter: Duration? = nil) -> UpstreamError {
        UpstreamError(kind, "\(prefix): \(message)", retryAfter: retryAfter)
    }

    var prefix: String { "upstream model '\(model)' (\(endpoint))" }

    /// Logs a notice about this upstream.
    func log(_ message: String) { logger.notice("\(prefix): \(message)") }

    // MARK: Calls

    /// Runs one call through the circuit breaker: refused at once (`.circuitOpen`, no request made) while it is
    /// open; otherwise `body` runs and its outcome is counted.
    func guarded<T>(_ body: () async throws(UpstreamError) -> T) async throws(UpstreamError) -> T {
        let admission = breaker.withLock { $0.admit(now: .now) }
        let probe: Bool
        switch admission {
        case .refuse(let retryAfter):
            metrics.request(.circuitOpen)
            throw error(.circuitOpen, "the circuit breaker is open after repeated failures", retryAfter: retryAfter)
        case .probe: probe = true
        case .call: probe = false
        }
        do {
            let result = try await body()
            record(.success, probe: probe)
            return result
        } catch {
            record(Self.breakerOutcome(error), probe: probe)
            throw error
        }
    }

    private func record(_ outcome: CircuitBreaker.Outcome, probe: Bool) {
        let (wasOpen, isOpen) = breaker.withLock { breaker in
            let before = breaker.isOpen
            breaker.record(outcome, probe: probe, now: .now)
            return (before, breaker.isOpen)
        }
        if wasOpen != isOpen {
            metrics.circuit(open: isOpen)
            if isOpen {
                logger.warning("\(prefix): circuit breaker opened")
            } else {
                logger.info("\(prefix): circuit breaker closed")
            }
        }
    }

    /// What a failed call says about the upstream's health.
    static func breakerOutcome(_ error: UpstreamError) -> CircuitBreaker.Outcome {
        switch error.kind {
        case .unavailable, .timeout: .failure
        // The upstream answered (it refused the request), or was never asked.
        case .badRequest, .rateLimited, .circuitOpen: .neutral
        }
    }

    /// The breaker's state, for tests and readiness.
    var breakerState: CircuitBreaker.State { breaker.withLock { $0.state } }

    /// Corrects the token budget once a request's real usage is known.
    func settle(estimatedTokens: Int, actualTokens: Int) {
        budget.settle(estimatedTokens: estimatedTokens, actualTokens: actualTokens)
        shared?.settle(estimatedTokens: estimatedTokens, actualTokens: actualTokens)
    }

    /// One JSON request: waits for the rate budget (`tokens` estimated; skipped when `budgeted` is false, for the
    /// calls `connect` makes), then attempts it, retrying retryable failures while the deadline allows. Returns the
    /// parsed JSON of a 2xx answer.
    func send(
        _ method: HTTPMethod, _ url: String, body: [UInt8]? = nil, priority: CallPriority = .realtime,
        tokens: Int = 0, deadline: ContinuousClock.Instant, budgeted: Bool = true
    ) async throws(UpstreamError) -> JSONValue {
        try await exchange(
            method, url, body: body, priority: priority, tokens: tokens, deadline: deadline, budgeted: budgeted
        ) { bytes in
            (try? JSONValue.parse(bytes)).map { .success($0) } ?? .failure("malformed answer: not JSON")
        }
    }

    /// The body of a request that is not JSON (a multipart upload).
    struct RequestBody: Sendable {
        var bytes: [UInt8]
        var contentType: String
    }

    /// One request, as `send` makes it, whose 2xx answer `decode` reads (a `.failure` is a malformed answer, with
    /// the message given). A request that is not `idempotent` (creating something upstream) is retried only when
    /// it cannot have been acted on: a 429 or a 503, or a connection that never opened.
    func exchange<T>(
        _ method: HTTPMethod, _ url: String, body: [UInt8]? = nil, rawBody: RequestBody? = nil,
        accept: String = "application/json", priority: CallPriority = .realtime, tokens: Int = 0,
        deadline: ContinuousClock.Instant, budgeted: Bool = true, idempotent: Bool = true,
        maximumBytes: Int = UpstreamClient.maximumAnswerBytes,
        decode: ([UInt8]) -> Result<T, MalformedAnswer>
    ) async throws(UpstreamError) -> T {
        let start = ContinuousClock.now
        defer { metrics.duration(.now - start) }
        if budgeted { try await waitForBudget(priority: priority, tokens: tokens, deadline: deadline) }
        var request = self.request(method, url, body: body, accept: accept)
        if body == nil, let rawBody {
            request.headers.add(name: "Content-Type", value: rawBody.contentType)
            request.body = .bytes(ByteBuffer(bytes: rawBody.bytes))
        }
        return try await retrying(deadline: deadline, idempotent: idempotent) { () async -> Attempt<T> in
            switch await attempt(request, deadline: deadline, maximumBytes: maximumBytes) {
            case .answered(let status, let retryAfter, let bytes):
                guard (200..<300).contains(status) else { return .refused(status: status, retryAfter: retryAfter) }
                switch decode(bytes) {
                case .success(let value): return .done(value)
                case .failure(let problem): return .failed(self.error(.unavailable, problem.message), retryable: false)
                }
            case .failed(let problem, let retryable, let neverSent):
                return .failed(problem, retryable: retryable, neverSent: neverSent)
            }
        }
    }

    /// Waits for room in the rate budget for one request of `tokens` estimated tokens.
    func waitForBudget(priority: CallPriority, tokens: Int, deadline: ContinuousClock.Instant)
        async throws(UpstreamError)
    {
        let start = ContinuousClock.now
        do {
            // This server's budget orders its callers by priority; the shared one (a cluster) comes after it.
            _ = try await budget.acquire(priority: priority, tokens: tokens, deadline: deadline, upstream: prefix)
            try await shared?.acquire(priority: priority, tokens: tokens, deadline: deadline, prefix: prefix)
            metrics.rateLimitWait(.now - start)
        } catch {
            metrics.request(error.kind == .rateLimited ? .rateLimited : .failed)
            throw error
        }
    }

    /// A request to the upstream with Freshline's headers and the API key.
    func request(_ method: HTTPMethod, _ url: String, body: [UInt8]?, accept: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Accept", value: accept)
        request.headers.add(name: "User-Agent", value: "Freshline-Upstream/1")
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        return request
    }

    /// How one attempt of a request ended, as `retrying` acts on it.
    enum Attempt<Answer> {
        /// The answer.
        case done(Answer)
        /// The upstream answered a status other than 2xx (and `Retry-After`, parsed).
        case refused(status: Int, retryAfter: Duration?)
        /// No usable answer; whether the failure is worth another attempt, and whether the request surely never
        /// reached the upstream (the connection did not open), so that even a request that creates something may be
        /// repeated.
        case failed(UpstreamError, retryable: Bool, neverSent: Bool = false)
    }

    /// Runs `attempt` until it gives an answer, retrying retryable failures (connection errors, 429, 500, 502, 503,
    /// 504) with jittered backoff or the upstream's `Retry-After` while the deadline and `maxRetries` allow; counts
    /// each request's outcome in the metrics. A request that is not `idempotent` is repeated only when it cannot
    /// have been acted on: answered 429 or 503, or never sent.
    func retrying<Answer>(
        deadline: ContinuousClock.Instant, idempotent: Bool = true, _ attempt: () async -> Attempt<Answer>
    ) async throws(UpstreamError) -> Answer {
        var retries = 0
        var random = SystemRandomNumberGenerator()
        while true {
            let attemptStart = ContinuousClock.now
            guard attemptStart < deadline else {
                metrics.request(.timeout)
                throw error(.timeout, "no answer before the deadline")
            }
            let failure: UpstreamError
            var honouredRetryAfter: Duration?
            switch await attempt() {
            case .done(let answer):
                metrics.request(.ok)
                return answer
            case .refused(let status, let retryAfter):
                let safeToRepeat = idempotent || status == 429 || status == 503
                guard RetryPolicy.retryableStatuses.contains(status), safeToRepeat else {
                    metrics.request(.failed)
                    throw Self.statusError(status, self)
                }
                if status == 429 || status == 503 { honouredRetryAfter = retryAfter }
                failure = error(status == 429 ? .rateLimited : .unavailable, "answered \(status)")
            case .failed(let problem, let retryable, let neverSent):
                guard retryable, idempotent || neverSent else {
                    metrics.request(problem.kind == .timeout ? .timeout : .failed)
                    throw problem
                }
                failure = problem
            }
            let now = ContinuousClock.now
            switch retry.decide(
                retriesSoFar: retries, lastAttempt: now - attemptStart, retryAfter: honouredRetryAfter, now: now,
                deadline: deadline, using: &random)
            {
            case .retry(let wait):
                metrics.request(.retried)
                logger.debug("\(prefix): \(failure.message); retrying in \(wait)")
                do { try await Task.sleep(until: now + wait, clock: .continuous) } catch {
                    metrics.request(.failed)
                    throw self.error(.unavailable, "cancelled")
                }
                retries += 1
            case .exhausted:
                metrics.request(failure.kind == .rateLimited ? .rateLimited : .failed)
                throw UpstreamError(
                    failure.kind, failure.message + (retries > 0 ? " (after \(retries + 1) attempts)" : ""),
                    retryAfter: honouredRetryAfter)
            case .noTimeLeft:
                metrics.request(failure.kind == .rateLimited ? .rateLimited : .failed)
                var final = failure
                if let honouredRetryAfter {
                    final.retryAfter = honouredRetryAfter
                    final.message += "; its Retry-After (\(honouredRetryAfter)) passes the deadline"
                }
                throw final
            }
        }
    }

    /// An answer's status that is not worth a retry, as an error: a request the upstream refuses as malformed is
    /// the caller's fault; any other status means the upstream cannot serve.
    static func statusError(_ status: Int, _ client: UpstreamClient) -> UpstreamError {
        switch status {
        case 400, 413, 422: client.error(.badRequest, "answered \(status)")
        case 300..<400: client.error(.unavailable, "answered \(status) (redirects are not followed)")
        default: client.error(.unavailable, "answered \(status)")
        }
    }

    /// How one HTTP exchange ended.
    enum AttemptResult {
        /// An HTTP answer: its status, `Retry-After` (parsed) and body.
        case answered(status: Int, retryAfter: Duration?, body: [UInt8])
        /// No answer; whether the failure is worth another attempt, and whether the request surely never reached
        /// the upstream.
        case failed(UpstreamError, retryable: Bool, neverSent: Bool = false)
    }

    /// One HTTP exchange bounded by `deadline`, body included: AsyncHTTPClient's deadline ends at the answer's head,
    /// so the body is read in a race with a sleep to the deadline (`collect`).
    private func attempt(
        _ request: HTTPClientRequest, deadline: ContinuousClock.Instant, maximumBytes: Int = maximumAnswerBytes
    ) async -> AttemptResult {
        let remaining = deadline - .now
        do {
            let response = try await http.execute(request, deadline: .now() + Self.timeAmount(remaining))
            let status = Int(response.status.code)
            let retryAfter = Self.retryAfter(response)
            let body = try await collect(response, deadline: deadline, maximumBytes: maximumBytes)
            return .answered(status: status, retryAfter: retryAfter, body: body)
        } catch {
            return classify(error, deadline: deadline)
        }
    }

    /// An answer's `Retry-After`, parsed.
    static func retryAfter(_ response: HTTPClientResponse) -> Duration? {
        response.headers.first(name: "Retry-After").flatMap {
            RetryAfter.parse($0, unixNow: Date().timeIntervalSince1970)
        }
    }

    /// Reads a whole answer's body (at most `maximumAnswerBytes`) in a race with a sleep to `deadline`; the read is
    /// cancelled (which cancels the request) if the sleep wins, and `HTTPClientError.deadlineExceeded` thrown.
    func collect(
        _ response: HTTPClientResponse, deadline: ContinuousClock.Instant, maximumBytes: Int = maximumAnswerBytes
    ) async throws -> [UInt8] {
        try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                let buffer = try await response.body.collect(upTo: maximumBytes)
                return Array(buffer.readableBytesView)
            }
            group.addTask {
                try await Task.sleep(until: deadline, clock: .continuous)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let bytes = first else {
                throw HTTPClientError.deadlineExceeded
            }
            return bytes
        }
    }

    /// A transport error in safe words, and whether it is retryable.
    func classify(_ error: any Error, deadline: ContinuousClock.Instant) -> AttemptResult {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout:
                return .failed(self.error(.timeout, "no answer before the deadline"), retryable: false)
            case .connectTimeout:
                return .failed(self.error(.unavailable, "connect timed out"), retryable: true)
            case .remoteConnectionClosed:
                return .failed(self.error(.unavailable, "connection closed before the answer"), retryable: true)
            case .cancelled:
                return cancelled(deadline)
            default:
                return .failed(self.error(.unavailable, "request failed (\(error))"), retryable: false)
            }
        }
        if error is CancellationError { return cancelled(deadline) }
        if error is NIOTooManyBytesError {
            return .failed(
                self.error(.unavailable, "malformed answer: larger than the most bytes an answer may have"),
                retryable: false)
        }
        if error is HTTPParserError {
            return .failed(self.error(.unavailable, "the connection broke mid-answer"), retryable: true)
        }
        if let error = error as? NIOConnectionError {
            let refused = error.connectionErrors.contains { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
            if refused {
                return .failed(self.error(.unavailable, "connection refused"), retryable: true, neverSent: true)
            }
            if error.dnsAError != nil || error.dnsAAAAError != nil, error.connectionErrors.isEmpty {
                return .failed(self.error(.unavailable, "the host does not resolve"), retryable: true, neverSent: true)
            }
            return .failed(self.error(.unavailable, "cannot connect"), retryable: true, neverSent: true)
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED:
                return .failed(self.error(.unavailable, "connection refused"), retryable: true, neverSent: true)
            case ECONNRESET, EPIPE: return .failed(self.error(.unavailable, "connection reset"), retryable: true)
            default:
                return .failed(self.error(.unavailable, "connection error (errno \(error.errnoCode))"), retryable: true)
            }
        }
        if let error = error as? ChannelError {
            switch error {
            case .connectTimeout: return .failed(self.error(.unavailable, "connect timed out"), retryable: true)
            case .ioOnClosedChannel, .eof, .outputClosed, .alreadyClosed:
                return .failed(self.error(.unavailable, "connection reset"), retryable: true)
            default: return .failed(self.error(.unavailable, "connection error"), retryable: true)
            }
        }
        // Unknown errors are named by type only: their descriptions are not known to be free of request data.
        return .failed(self.error(.unavailable, "request failed (\(type(of: error)))"), retryable: false)
    }

    private func cancelled(_ deadline: ContinuousClock.Instant) -> AttemptResult {
        if ContinuousClock.now >= deadline {
            return .failed(error(.timeout, "no answer before the deadline"), retryable: false)
        }
        return .failed(error(.unavailable, "cancelled"), retryable: false)
    }

    static func timeAmount(_ d: Duration) -> TimeAmount {
        let (seconds, attoseconds) = d.components
        guard seconds < 1 << 32 else { return .hours(24 * 365) }
        return .nanoseconds(max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
    }

    /// The URL without user, password, query or fragment: what messages may show.
    static func display(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.host != nil else { return "an invalid URL" }
        components.user = nil
        components.password = nil
        components.query = nil
        components.fragment = nil
        return components.string ?? "an invalid URL"
    }

    // MARK: Concurrency

    /// Runs `body` for `0..<count` with at most `width` running at once; the results in index order. The first
    /// failure cancels the rest and is thrown.
    func concurrently<T: Sendable>(
        _ count: Int, width: Int, _ body: @escaping @Sendable (Int) async throws(UpstreamError) -> T
    ) async throws(UpstreamError) -> [T] {
        if count == 1 { return [try await body(0)] }
        let outcome = await withTaskGroup(of: (Int, Result<T, UpstreamError>).self) { group in
            var results = [T?](repeating: nil, count: count)
            var next = 0
            var failure: UpstreamError?
            func launch() {
                let index = next
                next += 1
                group.addTask {
                    do throws(UpstreamError) { return (index, .success(try await body(index))) } catch {
                        return (index, .failure(error))
                    }
                }
            }
            while next < min(count, max(1, width)) { launch() }
            while let (index, result) = await group.next() {
                switch result {
                case .success(let value):
                    results[index] = value
                    if next < count, failure == nil { launch() }
                case .failure(let error):
                    if failure == nil {
                        failure = error
                        group.cancelAll()
                    }
                }
            }
            if let failure { return Result<[T], UpstreamError>.failure(failure) }
            return .success(results.compactMap { $0 })
        }
        return try outcome.get()
    }
}
