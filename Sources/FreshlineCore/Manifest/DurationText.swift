/// Parses and prints the durations used in manifests and requests: `250ms`, `2s`, `5m`, `6h`, `7d`,
/// `1h30m`, `500us`; a bare `0` is zero. Fractions are allowed (`1.5s`).
public enum DurationText {
    /// The longest duration any text may name: 10,000 days (~27 years). Every duration from outside (manifest,
    /// headers, bodies, query strings) is read through `parse`, so this bound is what keeps a client's number out
    /// of an `Int64` nanosecond overflow (which traps) anywhere downstream.
    public static let maximumSeconds: Double = 864_000_000

    private static let units: [(suffix: String, seconds: Double)] = [
        ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 604_800),
    ]

    /// The duration, or `nil` if the text is not a duration.
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingWhitespace()
        if trimmed == "0" { return .zero }
        var rest = Substring(trimmed)
        var total = 0.0
        var parsedAny = false
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number), value.isFinite else { return nil }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix { $0.isLetter || $0 == "µ" }
            // Longest unit first, so that "ms" is not read as "m".
            guard let unit = units.filter({ $0.suffix == String(unitText) }).first else { return nil }
            rest = rest.dropFirst(unitText.count)
            total += value * unit.seconds
            parsedAny = true
        }
        guard parsedAny, total.isFinite, total <= maximumSeconds else { return nil }
        return .nanoseconds(Int64((total * 1e9).rounded()))
    }

    /// A duration of `seconds`, or `nil` when it is negative, not finite, or longer than `maximumSeconds` (a number
    /// of seconds from a client, range-checked before it becomes nanoseconds).
    public static func seconds(_ seconds: Double) -> Duration? {
        guard seconds.isFinite, seconds >= 0, seconds <= maximumSeconds else { return nil }
        return .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    /// Compact text for a duration (`250ms`, `2s`, `6h`).
    public static func format(_ duration: Duration) -> String {
        let seconds = duration.seconds
        if seconds == 0 { return "0s" }
        if seconds < 1e-3 { return "\(trim(seconds * 1e6))us" }
        if seconds < 1 { return "\(trim(seconds * 1e3))ms" }
        if seconds < 60 { return "\(trim(seconds))s" }
        if seconds < 3600 { return "\(trim(seconds / 60))m" }
        if seconds < 86_400 { return "\(trim(seconds / 3600))h" }
        return "\(trim(seconds / 86_400))d"
    }

    private static func trim(_ v: Double) -> String {
        let rounded = (v * 1000).rounded() / 1000
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
