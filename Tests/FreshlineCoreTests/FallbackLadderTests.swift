import FreshlineCore
import Testing

/// The fallback ladder, table-tested: every combination of lookup, freshness, policies, default and inputs is
/// matched by exactly one row of the table below, and the ladder must return that row's step. The table is the
/// specification written out (docs/manifest.md, "Freshness and fallback"); a row that is wrong, missing or
/// overlapping fails the test.
@Suite struct FallbackLadderTests {
    /// What the lookup found, with freshness folded in (the contract is 10 minutes).
    enum Found: CaseIterable { case noSnapshot, missing, fresh, stale }

    /// One row: `nil` matches any value.
    struct Row {
        var found: Found
        var coldStart: BatchSpec.ColdStart? = nil
        var onStale: BatchSpec.OnStale? = nil
        var hasDefault: Bool? = nil
        var carriesInputs: Bool? = nil
        var step: FallbackLadder.Step

        func matches(
            _ f: Found, _ c: BatchSpec.ColdStart, _ s: BatchSpec.OnStale, _ d: Bool, _ i: Bool
        ) -> Bool {
            f == found && (coldStart ?? c) == c && (onStale ?? s) == s && (hasDefault ?? d) == d
                && (carriesInputs ?? i) == i
        }
    }

    static let table: [Row] = [
        // A fresh value answers, whatever the policies.
        Row(found: .fresh, step: .snapshot),
        // cold_start: realtime computes from the request's inputs; without them there is nothing to compute from.
        Row(
            found: .noSnapshot, coldStart: .realtime, carriesInputs: true, step: .compute(onFailure: .defaultElseError)),
        Row(found: .missing, coldStart: .realtime, carriesInputs: true, step: .compute(onFailure: .defaultElseError)),
        Row(found: .noSnapshot, coldStart: .realtime, carriesInputs: false, step: .refuse(.noSnapshot)),
        Row(found: .missing, coldStart: .realtime, carriesInputs: false, step: .refuse(.unknownKeyWithoutInputs)),
        // cold_start: default answers the default when there is one, else refuses as error does.
        Row(found: .noSnapshot, coldStart: .default, hasDefault: true, step: .defaultValue),
        Row(found: .missing, coldStart: .default, hasDefault: true, step: .defaultValue),
        Row(found: .noSnapshot, coldStart: .default, hasDefault: false, step: .refuse(.noSnapshot)),
        Row(found: .missing, coldStart: .default, hasDefault: false, step: .refuse(.unknownKey)),
        Row(found: .noSnapshot, coldStart: .error, step: .refuse(.noSnapshot)),
        Row(found: .missing, coldStart: .error, step: .refuse(.unknownKey)),
        // on_stale: realtime recomputes, the stale value catching a failure; without inputs, the stale value.
        Row(found: .stale, onStale: .realtime, carriesInputs: true, step: .compute(onFailure: .staleSnapshot)),
        Row(found: .stale, onStale: .realtime, carriesInputs: false, step: .staleSnapshot),
        Row(found: .stale, onStale: .fallback, step: .staleSnapshot),
        // on_stale: error refuses, unless a default can answer.
        Row(found: .stale, onStale: .error, hasDefault: true, step: .defaultValue),
        Row(found: .stale, onStale: .error, hasDefault: false, step: .refuse(.stale)),
    ]

    @Test func everyCombinationHasExactlyOneRowAndTheLadderFollowsIt() {
        let contract = FreshnessContract(maxStaleness: .seconds(600))
        var combinations = 0
        for found in Found.allCases {
            for coldStart in BatchSpec.ColdStart.allCases {
                for onStale in BatchSpec.OnStale.allCases {
                    for hasDefault in [false, true] {
                        for carriesInputs in [false, true] {
                            combinations += 1
                            let rows = Self.table.filter {
                                $0.matches(found, coldStart, onStale, hasDefault, carriesInputs)
                            }
                            let label =
                                "\(found) cold_start=\(coldStart) on_stale=\(onStale) default=\(hasDefault) "
                                + "inputs=\(carriesInputs)"
                            #expect(rows.count == 1, "\(rows.count) rows match \(label)")
                            guard let row = rows.first else { continue }
                            let lookup: FallbackLadder.Lookup =
                                switch found {
                                case .noSnapshot: .noSnapshot
                                case .missing: .missing
                                case .fresh: .found(ageSeconds: 599.5)
                                case .stale: .found(ageSeconds: 601)
                                }
                            let step = FallbackLadder.step(
                                lookup: lookup, contract: contract,
                                policies: .init(coldStart: coldStart, onStale: onStale, hasDefault: hasDefault),
                                carriesInputs: carriesInputs)
                            #expect(step == row.step, "\(label)")
                        }
                    }
                }
            }
        }
        #expect(combinations == 4 * 3 * 3 * 2 * 2)
    }

    @Test func theContractDecidesFreshAtItsBoundaryAndRejectsImplausibleAges() {
        let policies = FallbackLadder.Policies(coldStart: .error, onStale: .fallback, hasDefault: false)
        func step(age: Double, limit: Duration?) -> FallbackLadder.Step {
            FallbackLadder.step(
                lookup: .found(ageSeconds: age), contract: FreshnessContract(maxStaleness: limit), policies: policies,
                carriesInputs: false)
        }
        #expect(step(age: 60, limit: .seconds(60)) == .snapshot)
        #expect(step(age: 60.002, limit: .seconds(60)) == .staleSnapshot)
        #expect(step(age: 1e30, limit: nil) == .snapshot)
        // Ages from corrupt timestamps: too old for any limit, and no trap converting them.
        #expect(step(age: .infinity, limit: .seconds(86_400 * 365 * 100)) == .staleSnapshot)
        #expect(step(age: .nan, limit: .seconds(60)) == .staleSnapshot)
        #expect(step(age: 1e300, limit: .seconds(60)) == .staleSnapshot)
    }

    @Test func composedInputsTakeTheValueTheDefaultOrAnError() {
        typealias Case = (FallbackLadder.Lookup, Duration?, Bool, FallbackLadder.ComposedStep)
        let cases: [Case] = [
            (.found(ageSeconds: 30), .seconds(60), false, .value),
            (.found(ageSeconds: 30), nil, false, .value),
            (.found(ageSeconds: 90), .seconds(60), true, .defaultValue(stale: true)),
            (.found(ageSeconds: 90), .seconds(60), false, .refuse(.stale)),
            (.missing, .seconds(60), true, .defaultValue(stale: false)),
            (.missing, nil, false, .refuse(.unknownKey)),
            (.noSnapshot, nil, true, .defaultValue(stale: false)),
            (.noSnapshot, .seconds(60), false, .refuse(.noSnapshot)),
        ]
        for (lookup, limit, hasDefault, expected) in cases {
            let step = FallbackLadder.composedStep(lookup: lookup, maxStaleness: limit, hasDefault: hasDefault)
            #expect(step == expected, "\(lookup) max_staleness=\(String(describing: limit)) default=\(hasDefault)")
        }
    }
}
