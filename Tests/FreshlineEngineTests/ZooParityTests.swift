import Foundation
import FreshlineEngine
import FreshlineTesting
import Testing

/// Every model of the zoo against onnxruntime's outputs on the same rows: scores within 1e-5 relative to
/// magnitude, labels and top-k indices exact, ZipMap keys exact.
@Suite("Zoo parity with onnxruntime")
struct ZooParityTests {
    static let fixtures: [ZooFixture] =
        ((try? ZooFixture.all(in: Fixtures.zoo)) ?? []) + ((try? ZooFixture.all(in: Fixtures.demoModels)) ?? [])

    @Test("the zoo is present and complete")
    func zooIsPresent() throws {
        let fixtures = try ZooFixture.all(in: Fixtures.zoo)
        #expect(fixtures.count >= 30, "expected the whole zoo, found \(fixtures.count) models")
        for fixture in fixtures { #expect(!fixture.rows.isEmpty, "\(fixture.name) has no input rows") }
        // The worked example's models (two-tower retrieval, the reranker with GatherElements, GBDTs, the MLP
        // with a split input) are checked the same way.
        let demo = try ZooFixture.all(in: Fixtures.demoModels)
        #expect(demo.map(\.name).sorted() == ["fraud", "report", "rerank", "retrieval", "user_risk"])
    }

    @Test("matches onnxruntime, all rows in one batch", arguments: fixtures)
    func matchesInOneBatch(_ fixture: ZooFixture) throws {
        let problems = try fixture.differences()
        #expect(problems.isEmpty, "\(fixture.name): \(problems.prefix(5).joined(separator: "; "))")
    }

    @Test("matches onnxruntime, one row per call", arguments: fixtures)
    func matchesRowByRow(_ fixture: ZooFixture) throws {
        let problems = try fixture.differences(batchSize: 1)
        #expect(problems.isEmpty, "\(fixture.name): \(problems.prefix(5).joined(separator: "; "))")
    }
}
