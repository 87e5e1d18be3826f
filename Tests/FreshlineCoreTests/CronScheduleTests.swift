import Testing

@testable import FreshlineCore

// Fixed instants (seconds since 1970, UTC). Each was worked out from the day count since 1970-01-01 (a
// Thursday) times 86_400, e.g. 2026-11-29 is day 20_786 and 20_786 × 86_400 = 1_795_910_400.
private let nov29 = 1_795_910_400.0  // 2026-11-29T00:00:00Z, a Sunday
private let nov30At0900 = 1_796_029_200.0  // 2026-11-30T09:00:00Z, a Monday
private let dec01 = 1_796_083_200.0  // 2026-12-01T00:00:00Z, a Tuesday
private let dec04 = 1_796_342_400.0  // 2026-12-04T00:00:00Z, a Friday
private let dec06 = 1_796_515_200.0  // 2026-12-06T00:00:00Z, a Sunday
private let dec11 = 1_796_947_200.0  // 2026-12-11T00:00:00Z, a Friday
private let dec13 = 1_797_120_000.0  // 2026-12-13T00:00:00Z, a Sunday
private let dec18 = 1_797_552_000.0  // 2026-12-18T00:00:00Z, a Friday
private let dec31At2359 = 1_798_761_540.0  // 2026-12-31T23:59:00Z
private let jan01Of2027 = 1_798_761_600.0  // 2027-01-01T00:00:00Z
private let mar01Of2027At1200 = 1_803_902_400.0  // 2027-03-01T12:00:00Z
private let dec31Of2027At2359 = 1_830_297_540.0  // 2027-12-31T23:59:00Z
private let nov01 = 1_793_491_200.0  // 2026-11-01T00:00:00Z
private let jan01Of2026 = 1_767_225_600.0  // 2026-01-01T00:00:00Z
private let feb29Of2024 = 1_709_164_800.0  // 2024-02-29T00:00:00Z
private let feb29Of2028 = 1_835_395_200.0  // 2028-02-29T00:00:00Z
private let feb29Of2096 = 3_981_312_000.0  // 2096-02-29T00:00:00Z
private let mar01Of2097 = 4_012_934_400.0  // 2097-03-01T00:00:00Z
private let mar01Of2099 = 4_076_006_400.0  // 2099-03-01T00:00:00Z
private let feb29Of2104 = 4_233_686_400.0  // 2104-02-29T00:00:00Z (2100 is not a leap year)

private let minute = 60.0
private let hour = 3600.0
private let day = 86_400.0

/// The values whose bits are set in `mask`.
private func values(_ mask: UInt64) -> [Int] {
    (0..<64).filter { mask & (1 << UInt64($0)) != 0 }
}

/// The message of the error that parsing `text` throws, or nil if it parses.
private func parseErrorMessage(_ text: String) -> String? {
    do {
        _ = try CronSchedule(parsing: text)
        return nil
    } catch {
        return error.message
    }
}

/// Parses a schedule the test knows to be valid.
private func schedule(_ text: String) throws -> CronSchedule {
    try CronSchedule(parsing: text)
}

/// Successive slots after `time`.
private func slots(_ schedule: CronSchedule, after time: Double, count: Int) -> [Double] {
    var result: [Double] = []
    var current = time
    for _ in 0..<count {
        guard let next = schedule.next(after: current) else { break }
        result.append(next)
        current = next
    }
    return result
}

// MARK: - Parsing

@Suite("CronSchedule parsing")
struct CronScheduleParsingTests {
    @Test(
        "Refused texts name the field and the offending text",
        arguments: [
            ("", "empty schedule; expected 5 fields (minute hour day-of-month month day-of-week)"),
            ("   ", "empty schedule; expected 5 fields (minute hour day-of-month month day-of-week)"),
            ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week) but found 4 in '* * * *'"),
            (
                "* * * * * *",
                "expected 5 fields (minute hour day-of-month month day-of-week) but found 6 in '* * * * * *'"
            ),
            ("60 * * * *", "minute: 60 is out of range 0-59 in '60'"),
            ("* 24 * * *", "hour: 24 is out of range 0-23 in '24'"),
            ("* * 0 * *", "day-of-month: 0 is out of range 1-31 in '0'"),
            ("* * 1-32 * *", "day-of-month: 32 is out of range 1-31 in '1-32'"),
            ("* * * 13 *", "month: 13 is out of range 1-12 in '13'"),
            ("* * * * 8", "day-of-week: 8 is out of range 0-7 in '8'"),
            (
                "99999999999999999999 * * * *",
                "minute: 99999999999999999999 is out of range 0-59 in '99999999999999999999'"
            ),
            ("5-2 * * * *", "minute: range '5-2' starts after it ends"),
            ("* * * DEC-JAN *", "month: range 'DEC-JAN' starts after it ends"),
            ("*/0 * * * *", "minute: step must be at least 1 in '*/0'"),
            ("* 1-5/0 * * *", "hour: step must be at least 1 in '1-5/0'"),
            ("*/61 * * * *", "minute: step 61 is larger than the field's span (0-59) in '*/61'"),
            ("*/x * * * *", "minute: step 'x' is not a number in '*/x'"),
            ("*/ * * * *", "minute: step '' is not a number in '*/'"),
            ("1/2/3 * * * *", "minute: more than one '/' in '1/2/3'"),
            ("1,,2 * * * *", "minute: empty item in the list '1,,2'"),
            ("* * 1, * *", "day-of-month: empty item in the list '1,'"),
            ("* * * * ,MON", "day-of-week: empty item in the list ',MON'"),
            ("-5 * * * *", "minute: missing value in '-5'"),
            ("* 1- * * *", "hour: missing value in '1-'"),
            ("1-2-3 * * * *", "minute: malformed range '1-2-3' in '1-2-3'"),
            ("+5 * * * *", "minute: '+5' is not a number in '+5'"),
            ("MON * * * *", "minute: 'MON' is not a number in 'MON'"),
            (
                "* * * FOO *",
                "month: unknown name 'FOO' in 'FOO'; expected one of JAN, FEB, MAR, APR, MAY, JUN, JUL, AUG, SEP, "
                    + "OCT, NOV, DEC"
            ),
            (
                "* * * * MON-funday",
                "day-of-week: unknown name 'funday' in 'MON-funday'; expected one of SUN, MON, TUE, WED, THU, FRI, SAT"
            ),
            ("@reboot", "@reboot is not supported: it names no time of day, only the start of the process"),
            (
                "@often",
                "unknown shortcut '@often'; expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
            ),
            (
                "@daily 5",
                "unknown shortcut '@daily 5'; expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or "
                    + "@hourly"
            ),
        ]
    )
    func refused(text: String, message: String) {
        #expect(parseErrorMessage(text) == message)
    }

    @Test("The error's description is its message")
    func errorDescription() {
        #expect(throws: CronSchedule.ParseError("minute: 60 is out of range 0-59 in '60'")) {
            try CronSchedule(parsing: "60 * * * *")
        }
        let error = CronSchedule.ParseError("some message")
        #expect(error.description == "some message")
    }

    @Test("Description is the trimmed original text; fields may be separated by any whitespace")
    func descriptionIsTrimmedText() throws {
        let parsed = try schedule("  0   12\t* *  *\n")
        #expect(parsed.description == "0   12\t* *  *")
        #expect("\(parsed)" == "0   12\t* *  *")
        #expect(values(parsed.minutes) == [0])
        #expect(values(parsed.hours) == [12])
        #expect(try schedule(" @daily ").description == "@daily")
    }

    @Test("Equality compares the texts")
    func equality() throws {
        #expect(try schedule("0 0 * * *") == schedule(" 0 0 * * * "))
        #expect(try schedule("0 0 * * *") != schedule("0 0 * * 0-7"))
    }

    @Test("Every field syntax")
    func fieldSyntax() throws {
        #expect(values(try schedule("* * * * *").minutes) == Array(0...59))
        #expect(values(try schedule("* * * * *").hours) == Array(0...23))
        #expect(values(try schedule("* * * * *").daysOfMonth) == Array(1...31))
        #expect(values(try schedule("* * * * *").months) == Array(1...12))
        #expect(values(try schedule("* * * * *").daysOfWeek) == Array(0...6))
        #expect(values(try schedule("5 * * * *").minutes) == [5])
        #expect(values(try schedule("0 * * * *").minutes) == [0])
        #expect(values(try schedule("59 * * * *").minutes) == [59])
        #expect(values(try schedule("10-13 * * * *").minutes) == [10, 11, 12, 13])
        #expect(values(try schedule("7-7 * * * *").minutes) == [7])
        #expect(values(try schedule("*/15 * * * *").minutes) == [0, 15, 30, 45])
        #expect(values(try schedule("10-30/10 * * * *").minutes) == [10, 20, 30])
        #expect(values(try schedule("10-31/10 * * * *").minutes) == [10, 20, 30])
        #expect(values(try schedule("50/5 * * * *").minutes) == [50, 55])
        #expect(values(try schedule("*/60 * * * *").minutes) == [0])
        #expect(values(try schedule("1,5-6,*/30,59 * * * *").minutes) == [0, 1, 5, 6, 30, 59])
        #expect(values(try schedule("1,1,1 * * * *").minutes) == [1])
        #expect(values(try schedule("* */6 * * *").hours) == [0, 6, 12, 18])
        #expect(values(try schedule("* 9-17 * * *").hours) == Array(9...17))
        #expect(values(try schedule("* * 1/10 * *").daysOfMonth) == [1, 11, 21, 31])
        #expect(values(try schedule("* * 31 * *").daysOfMonth) == [31])
        #expect(values(try schedule("* * * 1/3 *").months) == [1, 4, 7, 10])
    }

    @Test("Month and weekday names, in any case, also in ranges")
    func names() throws {
        #expect(values(try schedule("* * * JAN,jul,Dec *").months) == [1, 7, 12])
        #expect(values(try schedule("* * * feb-APR *").months) == [2, 3, 4])
        #expect(values(try schedule("* * * jan-dec/6 *").months) == [1, 7])
        #expect(values(try schedule("* * * 2-mar *").months) == [2, 3])
        #expect(values(try schedule("* * * * MON-FRI").daysOfWeek) == [1, 2, 3, 4, 5])
        #expect(values(try schedule("* * * * sun,Sat").daysOfWeek) == [0, 6])
        #expect(values(try schedule("* * * * tue").daysOfWeek) == [2])
    }

    @Test("Sunday is both 0 and 7")
    func sundayIsZeroAndSeven() throws {
        #expect(values(try schedule("* * * * 0").daysOfWeek) == [0])
        #expect(values(try schedule("* * * * 7").daysOfWeek) == [0])
        #expect(values(try schedule("* * * * SUN").daysOfWeek) == [0])
        #expect(values(try schedule("* * * * 5-7").daysOfWeek) == [0, 5, 6])
        #expect(values(try schedule("* * * * 0-7").daysOfWeek) == Array(0...6))
        #expect(values(try schedule("* * * * */2").daysOfWeek) == [0, 2, 4, 6])
        #expect(values(try schedule("* * * * 1/3").daysOfWeek) == [0, 1, 4])
    }

    @Test("A day field is unrestricted when its text starts with '*', as in Vixie cron")
    func starFlags() throws {
        let both = try schedule("0 0 * * *")
        #expect(both.dayOfMonthIsStar && both.dayOfWeekIsStar)
        let stepped = try schedule("0 0 */2 * 5")
        #expect(stepped.dayOfMonthIsStar && !stepped.dayOfWeekIsStar)
        let explicit = try schedule("0 0 1-31 * 0-7")
        #expect(!explicit.dayOfMonthIsStar && !explicit.dayOfWeekIsStar)
    }

    @Test(
        "Shortcuts expand to their five fields",
        arguments: [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
            ("@DAILY", "0 0 * * *"),
        ]
    )
    func shortcuts(shortcut: String, fields: String) throws {
        let short = try schedule(shortcut)
        let long = try schedule(fields)
        #expect(short.description == shortcut)
        #expect(short.minutes == long.minutes)
        #expect(short.hours == long.hours)
        #expect(short.daysOfMonth == long.daysOfMonth)
        #expect(short.months == long.months)
        #expect(short.daysOfWeek == long.daysOfWeek)
        #expect(short.dayOfMonthIsStar == long.dayOfMonthIsStar)
        #expect(short.dayOfWeekIsStar == long.dayOfWeekIsStar)
        #expect(short.next(after: nov29) == long.next(after: nov29))
    }
}

// MARK: - Next and previous

@Suite("CronSchedule next and previous")
struct CronScheduleSearchTests {
    @Test("next() is strictly after, at whole minutes")
    func minuteBoundary() throws {
        let everyMinute = try schedule("* * * * *")
        #expect(everyMinute.next(after: nov29) == nov29 + minute)
        #expect(everyMinute.next(after: nov29 + 0.5) == nov29 + minute)
        #expect(everyMinute.next(after: nov29 + 59.999) == nov29 + minute)
        #expect(everyMinute.next(after: nov29 - 0.75) == nov29)
        #expect(everyMinute.previous(atOrBefore: nov29) == nov29)
        #expect(everyMinute.previous(atOrBefore: nov29 + 59.999) == nov29)
        #expect(everyMinute.previous(atOrBefore: nov29 - 0.001) == nov29 - minute)
    }

    @Test("Every 15 minutes")
    func everyFifteenMinutes() throws {
        let quarterly = try schedule("*/15 * * * *")
        #expect(quarterly.next(after: nov29) == nov29 + 15 * minute)
        #expect(quarterly.next(after: nov29 + 14 * minute + 59) == nov29 + 15 * minute)
        #expect(quarterly.next(after: nov29 + 15 * minute) == nov29 + 30 * minute)
        // 2026-11-29T23:50 → 2026-11-30T00:00.
        #expect(quarterly.next(after: nov29 + 23 * hour + 50 * minute) == nov29 + day)
        #expect(slots(quarterly, after: nov29, count: 5).map { ($0 - nov29) / minute } == [15, 30, 45, 60, 75])
        #expect(quarterly.previous(atOrBefore: nov29 + 14 * minute + 59.9) == nov29)
        #expect(quarterly.previous(atOrBefore: nov29 - 1) == nov29 - 15 * minute)
    }

    @Test("Across hour, day, month and year boundaries")
    func boundaries() throws {
        // 00:45 → 01:30.
        #expect(try schedule("30 * * * *").next(after: nov29 + 45 * minute) == nov29 + hour + 30 * minute)
        // 2026-11-29T10:00 → 2026-11-30T09:00.
        #expect(try schedule("0 9 * * *").next(after: nov29 + 10 * hour) == nov30At0900)
        // 2026-11-29 → 2026-12-01.
        #expect(try schedule("0 0 1 * *").next(after: nov29) == dec01)
        #expect(try schedule("@monthly").next(after: nov29) == dec01)
        // 2026-11-29 → 2027-01-01.
        #expect(try schedule("@yearly").next(after: nov29) == jan01Of2027)
        #expect(try schedule("0 0 1 JAN *").next(after: nov29) == jan01Of2027)
        // 2026-12-31T23:59 → 2027-12-31T23:59.
        #expect(try schedule("59 23 31 12 *").next(after: dec31At2359) == dec31Of2027At2359)
        #expect(try schedule("59 23 31 12 *").next(after: dec31At2359 - 1) == dec31At2359)
        // Skips the rest of 2026 and January and February 2027.
        #expect(try schedule("0 12 * 3 *").next(after: nov29) == mar01Of2027At1200)
        // Back from 2027-03-01T11:59:59 to 2026-03-31T12:00, 31 + 28 + 30 = 89 days after 2026-01-01.
        let mar31Of2026At1200 = jan01Of2026 + 89 * day + 12 * hour
        #expect(try schedule("0 12 * MAR *").previous(atOrBefore: mar01Of2027At1200 - 1) == mar31Of2026At1200)
        // @hourly at the top of the next hour.
        #expect(try schedule("@hourly").next(after: nov29 + 23 * hour + 1) == nov29 + day)
    }

    @Test("previous() across boundaries, including the instant itself")
    func previousAcrossBoundaries() throws {
        let nineDaily = try schedule("0 9 * * *")
        #expect(nineDaily.previous(atOrBefore: nov30At0900) == nov30At0900)
        #expect(nineDaily.previous(atOrBefore: nov30At0900 - 0.5) == nov30At0900 - day)
        #expect(try schedule("@monthly").previous(atOrBefore: nov29) == nov01)
        #expect(try schedule("@yearly").previous(atOrBefore: nov29) == jan01Of2026)
        #expect(try schedule("59 23 31 12 *").previous(atOrBefore: jan01Of2027) == dec31At2359)
        #expect(try schedule("30 * * * *").previous(atOrBefore: nov29 + 29 * minute) == nov29 - 30 * minute)
    }

    @Test("Leap years, and the 400-year rule")
    func leapYears() throws {
        let leapDay = try schedule("0 0 29 2 *")
        #expect(leapDay.next(after: nov29) == feb29Of2028)
        #expect(leapDay.previous(atOrBefore: nov29) == feb29Of2024)
        #expect(leapDay.next(after: feb29Of2024) == feb29Of2028)
        // 2100 is not a leap year: from 2099-03-01 the next 29 February is in 2104, still within five years ...
        #expect(leapDay.next(after: mar01Of2099) == feb29Of2104)
        // ... but from 2097-03-01 it is seven years away.
        #expect(leapDay.next(after: mar01Of2097) == nil)
        #expect(leapDay.previous(atOrBefore: mar01Of2097) == feb29Of2096)
        #expect(leapDay.previous(atOrBefore: feb29Of2104 - 1) == nil)
    }

    @Test(
        "Schedules that never fire parse, but have no slots",
        arguments: ["0 0 31 2 *", "0 0 30 2 *", "* * 31 4,6,9,11 *"]
    )
    func neverFires(text: String) throws {
        let never = try schedule(text)
        #expect(never.next(after: nov29) == nil)
        #expect(never.previous(atOrBefore: nov29) == nil)
    }

    @Test("When both day fields are restricted, either may match")
    func dayOfMonthOrDayOfWeek() throws {
        // Every 13th and every Friday: Fri 4, Fri 11, Sun 13, Fri 18 December 2026.
        let either = try schedule("0 0 13 * 5")
        #expect(slots(either, after: nov29, count: 4) == [dec04, dec11, dec13, dec18])
        #expect(either.previous(atOrBefore: dec18 - 1) == dec13)
        // Only the day of the month restricted.
        #expect(slots(try schedule("0 0 13 * *"), after: nov29, count: 1) == [dec13])
        // Only the day of the week restricted.
        #expect(slots(try schedule("0 0 * * FRI"), after: nov29, count: 3) == [dec04, dec11, dec18])
        // Vixie: '*/2' counts as unrestricted, so both must match: odd days that are Fridays.
        #expect(try schedule("0 0 */2 * 5").next(after: nov29) == dec11)
        // '1-31/2' is restricted, so either matches: 1 December is odd.
        #expect(try schedule("0 0 1-31/2 * 5").next(after: nov29) == dec01)
        // Both written out in full: every day.
        #expect(try schedule("0 0 1-31 * 0-7").next(after: nov29) == nov29 + day)
    }

    @Test("Sunday as 0, 7 and SUN", arguments: ["0 12 * * 0", "0 12 * * 7", "0 12 * * sun", "0 12 * * 0,7"])
    func sunday(text: String) throws {
        let noonOnSunday = try schedule(text)
        // 2026-11-29 is a Sunday; the one before is 2026-11-22 and the one after 2026-12-06.
        #expect(noonOnSunday.next(after: nov29) == nov29 + 12 * hour)
        #expect(noonOnSunday.next(after: nov29 + 12 * hour) == dec06 + 12 * hour)
        #expect(noonOnSunday.previous(atOrBefore: nov29 + 12 * hour - 1) == nov29 - 7 * day + 12 * hour)
    }

    @Test("A weekday range ending in 7 wraps to Sunday")
    func weekendRange() throws {
        let weekend = try schedule("0 12 * * 6-7")
        // Sunday 2026-11-29, then Saturday 2026-12-05 and Sunday 2026-12-06.
        #expect(slots(weekend, after: nov29, count: 3) == [nov29 + 12 * hour, dec06 - 12 * hour, dec06 + 12 * hour])
    }

    @Test("@weekly is Sunday midnight")
    func weekly() throws {
        let weekly = try schedule("@weekly")
        #expect(weekly.next(after: nov29) == dec06)
        #expect(weekly.previous(atOrBefore: nov29) == nov29)
        #expect(weekly.previous(atOrBefore: dec06 - 1) == nov29)
    }

    @Test("Times before 1970 and times that are not finite")
    func unusualTimes() throws {
        let daily = try schedule("@daily")
        #expect(daily.next(after: -1) == 0)
        #expect(daily.previous(atOrBefore: -1) == -day)
        #expect(daily.previous(atOrBefore: -day - 0.5) == -2 * day)
        // 1969-12-31 was a Wednesday.
        #expect(try schedule("0 0 * * WED").previous(atOrBefore: 0) == -day)
        #expect(daily.next(after: .nan) == nil)
        #expect(daily.next(after: .infinity) == nil)
        #expect(daily.previous(atOrBefore: -.infinity) == nil)
    }
}

// MARK: - Brute-force comparison

/// A UTC calendar position stepped one minute at a time, independent of the schedule's own date math.
private struct SteppingClock {
    var year: Int
    var month: Int
    var day: Int
    var hour: Int
    var minute: Int
    /// 0 is Sunday.
    var weekday: Int

    mutating func advanceOneMinute() {
        minute += 1
        guard minute == 60 else { return }
        minute = 0
        hour += 1
        guard hour == 24 else { return }
        hour = 0
        weekday = (weekday + 1) % 7
        day += 1
        let isLeap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let monthLengths = [31, isLeap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day > monthLengths[month - 1] else { return }
        day = 1
        month += 1
        guard month == 13 else { return }
        month = 1
        year += 1
    }
}

/// A schedule's text and an independent statement of which minutes it selects.
struct ReferenceCase: Sendable, CustomTestStringConvertible {
    let text: String
    fileprivate let matches: @Sendable (SteppingClock) -> Bool

    var testDescription: String { text }
}

/// Deterministic pseudo-random numbers (SplitMix64), so that failures can be reproduced.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("CronSchedule against a brute-force reference")
struct CronScheduleReferenceTests {
    // The window: 2028-02-26T00:00:00Z (a Saturday) for seven days, across 29 February and into March.
    static let windowStart = 1_835_136_000.0
    static let windowMinutes = 7 * 1440
    static var windowEnd: Double { windowStart + Double(windowMinutes) * 60 }

    static let cases: [ReferenceCase] = [
        ReferenceCase(text: "* * * * *") { _ in true },
        ReferenceCase(text: "*/15 9-17 * * MON-FRI") { c in
            c.minute % 15 == 0 && (9...17).contains(c.hour) && (1...5).contains(c.weekday)
        },
        ReferenceCase(text: "30 2 1,15,29 * 1") { c in
            c.minute == 30 && c.hour == 2 && ([1, 15, 29].contains(c.day) || c.weekday == 1)
        },
        ReferenceCase(text: "0 */6 * * *") { c in c.minute == 0 && c.hour % 6 == 0 },
        ReferenceCase(text: "5,10 0 29 2 *") { c in
            [5, 10].contains(c.minute) && c.hour == 0 && c.day == 29 && c.month == 2
        },
        ReferenceCase(text: "0 0 */2 * 5") { c in c.minute == 0 && c.hour == 0 && c.day % 2 == 1 && c.weekday == 5 },
        ReferenceCase(text: "0 12 * 3 *") { c in c.minute == 0 && c.hour == 12 && c.month == 3 },
        ReferenceCase(text: "7 7 * * 0,7") { c in c.minute == 7 && c.hour == 7 && c.weekday == 0 },
        ReferenceCase(text: "59 23 28-31 * *") { c in c.minute == 59 && c.hour == 23 && c.day >= 28 },
        ReferenceCase(text: "0 0 31 2 *") { _ in false },
    ]

    @Test("previous() and next() agree with a minute-by-minute scan", arguments: cases)
    func agreesWithBruteForce(reference: ReferenceCase) throws {
        let parsed = try CronSchedule(parsing: reference.text)
        var clock = SteppingClock(year: 2028, month: 2, day: 26, hour: 0, minute: 0, weekday: 6)
        var expectedSlots: [Double] = []
        for index in 0..<Self.windowMinutes {
            if reference.matches(clock) {
                expectedSlots.append(Self.windowStart + Double(index) * 60)
            }
            clock.advanceOneMinute()
        }
        #expect(clock.year == 2028 && clock.month == 3 && clock.day == 4 && clock.hour == 0 && clock.weekday == 6)

        var generator = SeededGenerator(state: 0x5EED_0000 &+ UInt64(reference.text.utf8.count))
        for sample in 0..<300 {
            // Times in the middle of the window, so that the answers fall inside it whenever the schedule fires
            // at least every two and a half days; a third of them exactly on a minute.
            var time = Self.windowStart + 2.5 * 86_400 + Double.random(in: 0..<(2 * 86_400), using: &generator)
            if sample % 3 == 0 { time = (time / 60).rounded(.down) * 60 }

            let previous = parsed.previous(atOrBefore: time)
            let next = parsed.next(after: time)
            if let expected = expectedSlots.last(where: { $0 <= time }) {
                #expect(previous == expected, "previous(atOrBefore: \(time))")
            } else {
                #expect(previous.map { $0 < Self.windowStart } ?? true, "previous(atOrBefore: \(time))")
            }
            if let expected = expectedSlots.first(where: { $0 > time }) {
                #expect(next == expected, "next(after: \(time))")
            } else {
                #expect(next.map { $0 >= Self.windowEnd } ?? true, "next(after: \(time))")
            }
            if let previous {
                // previous <= time < next(after: previous), with no slot in between.
                #expect(previous <= time)
                #expect(previous.truncatingRemainder(dividingBy: 60) == 0)
                let following = parsed.next(after: previous)
                #expect(following == next)
                if let following { #expect(time < following) }
                #expect(parsed.previous(atOrBefore: previous) == previous)
            }
            if let next {
                #expect(parsed.previous(atOrBefore: next) == next)
                #expect(parsed.previous(atOrBefore: next - 0.001) == previous)
            }
        }
    }
}
