import FreshlineCore
import FreshlineJSON
import Testing

/// Durations from outside are bounded before they become nanoseconds (an `Int64` of them overflows past ~292 years,
/// and the conversion traps).
@Suite("DurationText")
struct DurationTextTests {
    @Test("texts up to the maximum parse; longer ones, and any that would overflow, do not")
    func bounds() {
        #expect(DurationText.parse("250ms") == .milliseconds(250))
        #expect(DurationText.parse("1h30m") == .seconds(5400))
        #expect(DurationText.parse("10000d") == .seconds(864_000_000))
        for text in ["10001d", "10000000000s", "1e11s", "99999999999999999999w", "inf", "nan", "1.5", "s", "-1s"] {
            #expect(DurationText.parse(text) == nil, "\(text)")
        }
    }

    @Test("a number of seconds from a client is range-checked")
    func seconds() {
        #expect(DurationText.seconds(1.5) == .milliseconds(1500))
        #expect(DurationText.seconds(0) == .zero)
        for value in [-1, 1e11, .infinity, .nan, Double(Int64.max), DurationText.maximumSeconds.nextUp] {
            #expect(DurationText.seconds(value) == nil, "\(value)")
        }
        #expect(DurationText.seconds(DurationText.maximumSeconds) != nil)
    }
}
