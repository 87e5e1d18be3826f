import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineRuntime
import Hummingbird
import Testing

@testable import FreshlineHTTP

/// The single-row answer is written directly on the hot path; it must be the same text as the general writer's.
@Suite("Response body")
struct ResponseBodyTests {
    @Test("the direct writer equals the JSON value's serialization", arguments: [true, false])
    func sameText(withKey: Bool) {
        let outputs: [String: JSONValue] = [
            "label": .integer(1), "probabilities": .array([.number(0.25), .number(0.75)]), "name": .string("a\"b\n"),
        ]
        for provenance in [
            Provenance(
                source: .batch, computedAt: 1_795_910_400.5, ageSeconds: 12.75, modelVersion: "abc123def456",
                snapshot: "v3"),
            Provenance(source: .default, computedAt: 1_795_910_400, ageSeconds: 0, modelVersion: nil),
            Provenance(
                source: .fallback, computedAt: 1.5, ageSeconds: 1e9, modelVersion: "x", snapshot: "v1",
                stale: true),
        ] {
            let prediction = Prediction(key: withKey ? "user-\u{e9}" : nil, outputs: outputs, provenance: provenance)
            let direct = FeatureRoutes.body(prediction, feature: "churn")
            let general = FeatureRoutes.json(prediction, feature: "churn").serialized()
            #expect(String(decoding: direct, as: UTF8.self) == String(decoding: general, as: UTF8.self))
        }
    }

    @Test("timestamps equal Foundation's ISO 8601 text with milliseconds, 1970 to 2200")
    func timestamps() {
        var generator = SystemRandomNumberGenerator()
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
        for _ in 0..<2000 {
            // Multiples of 1/8 s are exact in binary, so neither side has a rounding choice to make.
            let millis = Int64.random(in: 0..<58_064_947_200, using: &generator) * 125
            let seconds = Double(millis) / 1000
            #expect(Timestamp.rfc3339(seconds) == Date(timeIntervalSince1970: seconds).formatted(style))
        }
    }
}
