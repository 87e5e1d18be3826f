/// A five-field cron schedule evaluated in UTC, with the semantics of Vixie cron (the cron of most Linux
/// distributions).
///
/// The text is `minute hour day-of-month month day-of-week`, or one of the shortcuts `@yearly` (also
/// `@annually`), `@monthly`, `@weekly`, `@daily` (also `@midnight`) and `@hourly`. Each field is a comma list
/// of items; an item is `*`, a value `a`, a range `a-b`, or one of those followed by a step `/n` (`a/n` means
/// `a-max/n`). Months may be written `JAN`-`DEC` and days of the week `SUN`-`SAT`, in any case; Sunday is
/// both 0 and 7.
///
/// Days follow Vixie's rule: when both day fields are restricted, a day matches if *either* matches;
/// otherwise both must match. As in Vixie cron, a day field whose text starts with `*` (so also `*/2`)
/// counts as unrestricted.
///
/// Slots are whole minutes. Two schedules are equal when their texts are equal.
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    /// Why a schedule text was refused; `message` names the field and the offending text.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong, naming the field and the offending text.
        public var message: String

        /// The message.
        public var description: String { message }

        init(_ message: String) {
            self.message = message
        }
    }

    /// The original text, trimmed.
    public let description: String

    /// Bits 0-59.
    let minutes: UInt64
    /// Bits 0-23.
    let hours: UInt64
    /// Bits 1-31.
    let daysOfMonth: UInt64
    /// Bits 1-12.
    let months: UInt64
    /// Bits 0-6, Sunday being 0 (a written 7 is folded onto 0).
    let daysOfWeek: UInt64
    /// Whether the day-of-month text starts with `*`.
    let dayOfMonthIsStar: Bool
    /// Whether the day-of-week text starts with `*`.
    let dayOfWeekIsStar: Bool

    /// How far `next(after:)` and `previous(atOrBefore:)` look: five years, counting up to two leap days.
    static let horizonDays = 5 * 365 + 2

    /// Parses `minute hour day-of-month month day-of-week`, or a shortcut.
    public init(parsing text: String) throws(ParseError) {
        let trimmed = Self.trimmed(text)
        description = trimmed
        var fieldsText = trimmed
        if trimmed.hasPrefix("@") {
            switch trimmed.lowercased() {
            case "@yearly", "@annually": fieldsText = "0 0 1 1 *"
            case "@monthly": fieldsText = "0 0 1 * *"
            case "@weekly": fieldsText = "0 0 * * 0"
            case "@daily", "@midnight": fieldsText = "0 0 * * *"
            case "@hourly": fieldsText = "0 * * * *"
            case "@reboot":
                throw ParseError("@reboot is not supported: it names no time of day, only the start of the process")
            default:
                throw ParseError(
                    "unknown shortcut '\(trimmed)'; expected @yearly, @annually, @monthly, @weekly, @daily, "
                        + "@midnight or @hourly"
                )
            }
        }
        let fields = fieldsText.split(whereSeparator: { $0.isWhitespace })
        guard !fields.isEmpty else {
            throw ParseError("empty schedule; expected 5 fields (minute hour day-of-month month day-of-week)")
        }
        guard fields.count == 5 else {
            throw ParseError(
                "expected 5 fields (minute hour day-of-month month day-of-week) but found \(fields.count) in '\(trimmed)'"
            )
        }
        minutes = try Self.parse(fields[0], as: .minute)
        hours = try Self.parse(fields[1], as: .hour)
        daysOfMonth = try Self.parse(fields[2], as: .dayOfMonth)
        months = try Self.parse(fields[3], as: .month)
        var weekdays = try Self.parse(fields[4], as: .dayOfWeek)
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & ~(1 << 7)) | 1
        }
        daysOfWeek = weekdays
        dayOfMonthIsStar = fields[2].hasPrefix("*")
        dayOfWeekIsStar = fields[4].hasPrefix("*")
    }

    /// The first slot strictly after `time` (seconds since 1970, UTC), at whole minutes; nil if none within 5 years.
    public func next(after time: Double) -> Double? {
        guard let minute = Self.minuteContaining(time) else { return nil }
        return firstSlot(atOrAfter: minute + 1).map { Double($0) * 60 }
    }

    /// The latest slot at or before `time`; nil if none within the previous 5 years.
    public func previous(atOrBefore time: Double) -> Double? {
        guard let minute = Self.minuteContaining(time) else { return nil }
        return lastSlot(atOrBefore: minute).map { Double($0) * 60 }
    }

    // MARK: - Searching

    /// The first matching minute (counted since 1970) at or after `start`, within the horizon.
    private func firstSlot(atOrAfter start: Int) -> Int? {
        var day = Self.floorDivide(start, 1440)
        var hour = (start - day * 1440) / 60
        var minute = (start - day * 1440) % 60
        let lastMinute = start + Self.horizonDays * 1440
        var date = CivilDate(daysSince1970: day)
        while day * 1440 <= lastMinute {
            if months & (1 << date.month) == 0 {
                // Skip the rest of this month.
                if date.month == 12 {
                    date = CivilDate(year: date.year + 1, month: 1, day: 1)
                } else {
                    date = CivilDate(year: date.year, month: date.month + 1, day: 1)
                }
                day = date.daysSince1970
                hour = 0
                minute = 0
                continue
            }
            if matchesDay(date, daysSince1970: day) {
                var candidateHour = Self.lowestBit(of: hours, atOrAbove: hour)
                while let h = candidateHour {
                    if let m = Self.lowestBit(of: minutes, atOrAbove: h == hour ? minute : 0) {
                        let slot = day * 1440 + h * 60 + m
                        return slot <= lastMinute ? slot : nil
                    }
                    candidateHour = Self.lowestBit(of: hours, atOrAbove: h + 1)
                }
            }
            day += 1
            date = CivilDate(daysSince1970: day)
            hour = 0
            minute = 0
        }
        return nil
    }

    /// The last matching minute (counted since 1970) at or before `start`, within the horizon.
    private func lastSlot(atOrBefore start: Int) -> Int? {
        var day = Self.floorDivide(start, 1440)
        var hour = (start - day * 1440) / 60
        var minute = (start - day * 1440) % 60
        let firstMinute = start - Self.horizonDays * 1440
        var date = CivilDate(daysSince1970: day)
        while (day + 1) * 1440 > firstMinute {
            if months & (1 << date.month) == 0 {
                // Skip back to the last day of the previous month.
                day = CivilDate(year: date.year, month: date.month, day: 1).daysSince1970 - 1
                date = CivilDate(daysSince1970: day)
                hour = 23
                minute = 59
                continue
            }
            if matchesDay(date, daysSince1970: day) {
                var candidateHour = Self.highestBit(of: hours, atOrBelow: hour)
                while let h = candidateHour {
                    if let m = Self.highestBit(of: minutes, atOrBelow: h == hour ? minute : 59) {
                        let slot = day * 1440 + h * 60 + m
                        return slot >= firstMinute ? slot : nil
                    }
                    candidateHour = Self.highestBit(of: hours, atOrBelow: h - 1)
                }
            }
            day -= 1
            date = CivilDate(daysSince1970: day)
            hour = 23
            minute = 59
        }
        return nil
    }

    /// Vixie's day rule: either day field may match when both are restricted; otherwise both must.
    private func matchesDay(_ date: CivilDate, daysSince1970: Int) -> Bool {
        // 1970-01-01 was a Thursday (4).
        let weekday = daysSince1970 + 4 - Self.floorDivide(daysSince1970 + 4, 7) * 7
        let dayOfMonthMatches = daysOfMonth & (1 << date.day) != 0
        let dayOfWeekMatches = daysOfWeek & (1 << weekday) != 0
        if dayOfMonthIsStar || dayOfWeekIsStar {
            return dayOfMonthMatches && dayOfWeekMatches
        }
        return dayOfMonthMatches || dayOfWeekMatches
    }

    /// The whole minute (counted since 1970) containing `time`, or nil for a time that is not finite or is
    /// absurdly far from now.
    private static func minuteContaining(_ time: Double) -> Int? {
        guard time.isFinite, abs(time) < 1e13 else { return nil }
        var minute = Int((time / 60).rounded(.down))
        // Guard against the division rounding across a minute boundary.
        if Double(minute) * 60 > time { minute -= 1 }
        if Double(minute + 1) * 60 <= time { minute += 1 }
        return minute
    }

    private static func floorDivide(_ a: Int, _ b: Int) -> Int {
        let quotient = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? quotient - 1 : quotient
    }

    private static func lowestBit(of mask: UInt64, atOrAbove bit: Int) -> Int? {
        guard bit < 64 else { return nil }
        let remaining = mask & (~UInt64(0) << UInt64(max(bit, 0)))
        return remaining == 0 ? nil : remaining.trailingZeroBitCount
    }

    private static func highestBit(of mask: UInt64, atOrBelow bit: Int) -> Int? {
        guard bit >= 0 else { return nil }
        let remaining = bit >= 63 ? mask : mask & ((UInt64(1) << UInt64(bit + 1)) - 1)
        return remaining == 0 ? nil : 63 - remaining.leadingZeroBitCount
    }

    // MARK: - Parsing

    /// One of the five fields: its name for messages, its range and its names.
    private struct Field {
        let name: String
        let bounds: ClosedRange<Int>
        /// Names, the first one standing for `firstNamedValue`.
        let names: [String]
        let firstNamedValue: Int

        static let minute = Field(name: "minute", bounds: 0...59, names: [], firstNamedValue: 0)
        static let hour = Field(name: "hour", bounds: 0...23, names: [], firstNamedValue: 0)
        static let dayOfMonth = Field(name: "day-of-month", bounds: 1...31, names: [], firstNamedValue: 0)
        static let month = Field(
            name: "month",
            bounds: 1...12,
            names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
            firstNamedValue: 1
        )
        static let dayOfWeek = Field(
            name: "day-of-week",
            bounds: 0...7,
            names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
            firstNamedValue: 0
        )
    }

    /// The bitmask of the values one field's text selects.
    private static func parse(_ text: Substring, as field: Field) throws(ParseError) -> UInt64 {
        var mask: UInt64 = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else {
                throw ParseError("\(field.name): empty item in the list '\(text)'")
            }
            mask |= try parseItem(item, as: field)
        }
        return mask
    }

    /// The bitmask of one list item: `*`, `a`, `a-b`, each optionally followed by `/n`.
    private static func parseItem(_ item: Substring, as field: Field) throws(ParseError) -> UInt64 {
        let parts = item.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else {
            throw ParseError("\(field.name): more than one '/' in '\(item)'")
        }
        let base = parts[0]
        var step = 1
        if parts.count == 2 {
            let stepText = parts[1]
            guard !stepText.isEmpty, stepText.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw ParseError("\(field.name): step '\(stepText)' is not a number in '\(item)'")
            }
            guard let parsedStep = Int(stepText), parsedStep <= field.bounds.upperBound + 1 else {
                throw ParseError(
                    "\(field.name): step \(stepText) is larger than the field's span "
                        + "(\(field.bounds.lowerBound)-\(field.bounds.upperBound)) in '\(item)'"
                )
            }
            guard parsedStep >= 1 else {
                throw ParseError("\(field.name): step must be at least 1 in '\(item)'")
            }
            step = parsedStep
        }
        let low: Int
        let high: Int
        if base == "*" {
            low = field.bounds.lowerBound
            high = field.bounds.upperBound
        } else if base.contains("-") {
            let ends = base.split(separator: "-", omittingEmptySubsequences: false)
            guard ends.count == 2 else {
                throw ParseError("\(field.name): malformed range '\(base)' in '\(item)'")
            }
            low = try value(ends[0], of: field, in: item)
            high = try value(ends[1], of: field, in: item)
            guard low <= high else {
                throw ParseError("\(field.name): range '\(base)' starts after it ends")
            }
        } else {
            low = try value(base, of: field, in: item)
            high = parts.count == 2 ? field.bounds.upperBound : low
        }
        var mask: UInt64 = 0
        for selected in stride(from: low, through: high, by: step) {
            mask |= 1 << UInt64(selected)
        }
        return mask
    }

    /// One value of a field: a number within its bounds or, for months and days of the week, a name.
    private static func value(_ text: Substring, of field: Field, in item: Substring) throws(ParseError) -> Int {
        guard !text.isEmpty else {
            throw ParseError("\(field.name): missing value in '\(item)'")
        }
        if text.allSatisfy({ $0.isASCII && $0.isNumber }) {
            guard let number = Int(text), field.bounds.contains(number) else {
                throw ParseError(
                    "\(field.name): \(text) is out of range "
                        + "\(field.bounds.lowerBound)-\(field.bounds.upperBound) in '\(item)'"
                )
            }
            return number
        }
        if field.names.isEmpty {
            throw ParseError("\(field.name): '\(text)' is not a number in '\(item)'")
        }
        guard let index = field.names.firstIndex(of: text.uppercased()) else {
            throw ParseError(
                "\(field.name): unknown name '\(text)' in '\(item)'; expected one of "
                    + field.names.joined(separator: ", ")
            )
        }
        return field.firstNamedValue + index
    }

    private static func trimmed(_ text: String) -> String {
        var rest = Substring(text)
        while let first = rest.first, first.isWhitespace { rest.removeFirst() }
        while let last = rest.last, last.isWhitespace { rest.removeLast() }
        return String(rest)
    }
}

/// A proleptic Gregorian date, converted to and from days since 1970-01-01.
private struct CivilDate {
    let year: Int
    /// 1-12.
    let month: Int
    /// 1-31.
    let day: Int

    init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// The date `days` days after 1970-01-01.
    ///
    /// Works in 400-year eras starting on 1 March, so that the leap day falls at the end of the era's year.
    init(daysSince1970 days: Int) {
        // 719_468 days separate 0000-03-01 from 1970-01-01.
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097  // 0...146_096
        // Remove the leap days (every 4 years, not every 100, but every 400) before dividing by 365.
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)  // 0 is 1 March.
        let monthFromMarch = (5 * dayOfYear + 2) / 153  // 0 is March, 11 is February.
        day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }

    /// Days since 1970-01-01 (negative before it).
    var daysSince1970: Int {
        let marchYear = month <= 2 ? year - 1 : year
        let era = (marchYear >= 0 ? marchYear : marchYear - 399) / 400
        let yearOfEra = marchYear - era * 400  // 0...399
        let monthFromMarch = (month + 9) % 12
        let dayOfYear = (153 * monthFromMarch + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
