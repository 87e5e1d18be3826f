internal import Foundation
internal import FreshlineCore

/// When a failed attempt is tried again: only retryable failures (connection errors, 429, 500, 502, 503, 504), at
/// most `maxRetries` times, after a full-jitter exponential backoff (or the upstream's `Retry-After`), and only while
/// the deadline leaves room for the wait plus another attempt. Pure: the time and the random source are passed in.
struct RetryPolicy: Sendable, Equatable {
    /// The first backoff's upper bound; attempt `n` waits a uniform random time in `0 ... base·2ⁿ` (full jitter, so
    /// that callers failing together do not retry together).
    var base = Duration.milliseconds(50)
    /// The largest backoff bound.
    var cap = Duration.seconds(5)
    /// The least time an attempt is assumed to take, when deciding whether the deadline leaves room for one.
    var minimumAttempt = Duration.milliseconds(10)
    /// Retries after the first attempt.
    var maxRetries: Int

    /// HTTP statuses worth another attempt: throttled, or a server or gateway failure that may pass.
    static let retryableStatuses: Set<Int> = [429, 500, 502, 503, 504]

    /// What to do after a failed attempt.
    enum Decision: Sendable, Equatable {
        /// Wait `after`, then try again.
        case retry(after: Duration)
        /// Retries have run out.
        case exhausted
        /// The wait (the backoff, or the upstream's `Retry-After`) would leave no room for an attempt before the
        /// deadline.
        case noTimeLeft(wait: Duration)
    }

    /// The backoff before retry number `retry` (0 for the first): uniform in `0 ... min(cap, base·2^retry)`.
    func backoff(retry: Int, using random: inout some RandomNumberGenerator) -> Duration {
        let bound = min(cap.seconds, base.seconds * Double(1 << min(max(retry, 0), 20)))
        return .seconds(Double.random(in: 0...bound, using: &random))
    }

    /// Decides after the failed attempt number `retriesSoFar` (0 after the first attempt), which took
    /// `lastAttempt`; `retryAfter` is the upstream's `Retry-After`, honoured instead of the backoff.
    func decide(
        retriesSoFar: Int, lastAttempt: Duration, retryAfter: Duration?, now: ContinuousClock.Instant,
        deadline: ContinuousClock.Instant, using random: inout some RandomNumberGenerator
    ) -> Decision {
        let wait = retryAfter ?? backoff(retry: retriesSoFar, using: &random)
        // Another attempt is assumed to take as long as the last one did: an upstream that took 400 ms to fail
        // will not answer in 5.
        let attempt = max(lastAttempt, minimumAttempt)
        if now + wait + attempt > deadline { return .noTimeLeft(wait: wait) }
        guard retriesSoFar < maxRetries else { return .exhausted }
        return .retry(after: wait)
    }
}

/// The `Retry-After` header (RFC 9110 §10.2.3): a number of seconds or an HTTP date.
enum RetryAfter {
    /// The longest wait taken from an upstream: a larger value is read as this, so that a misconfigured server
    /// cannot park a caller's retry budget for a day.
    static let maximum = Duration.seconds(3600)

    /// The wait `value` asks for, as of `unixNow` (seconds since 1970, for HTTP dates); `nil` when the value is
    /// neither form. A date in the past is a wait of zero.
    static func parse(_ value: String, unixNow: Double) -> Duration? {
        let text = value.trimmingCharacters(in: .whitespaces)
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            // Digits only; too many digits to fit is simply "very long".
            guard let seconds = Int64(text) else { return maximum }
            return min(.seconds(seconds), maximum)
        }
        guard let date = httpDate(text) else { return nil }
        return min(.seconds(max(0, date - unixNow)), maximum)
    }

    /// Seconds since 1970 of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers must send; the
    /// obsolete RFC 850 and asctime forms are not read (a `nil` makes the caller fall back to its own backoff).
    static func httpDate(_ text: String) -> Double? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[0].count == 4, parts[0].hasSuffix(","), parts[5] == "GMT",
            let day = Int(parts[1]), (1...31).contains(day),
            let month = months.firstIndex(of: String(parts[2])),
            let year = Int(parts[3]), (1970...9999).contains(year)
        else { return nil }
        let clock = parts[4].split(separator: ":")
        guard clock.count == 3, let hour = Int(clock[0]), let minute = Int(clock[1]), let second = Int(clock[2]),
            (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second)
        else { return nil }
        let days = daysFromCivil(year: year, month: month + 1, day: day)
        return Double(days * 86400 + hour * 3600 + minute * 60 + second)
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146097 + dayOfEra - 719468
    }
}
