import Foundation
import FreshlineCore
import Testing

private typealias Batcher = AdaptiveBatcherStateMachine<Int>

// MARK: - Helpers

extension Array where Element == AdaptiveBatcherStateMachine<Int>.Action {
    /// The batches dispatched, in order.
    fileprivate var dispatched: [[Int]] {
        compactMap { action -> [Int]? in
            if case .dispatch(let items) = action { items } else { nil }
        }
    }

    /// The items shed for `reason`, in order.
    fileprivate func shed(_ reason: Batcher.ShedReason) -> [Int] {
        flatMap { action -> [Int] in
            if case .shed(let items, reason) = action { items } else { [] }
        }
    }

    /// Every item shed, whatever the reason.
    fileprivate var allShed: [Int] {
        flatMap { action -> [Int] in
            if case .shed(let items, _) = action { items } else { [] }
        }
    }

    /// The ticks requested, in order.
    fileprivate var ticks: [ContinuousClock.Instant] {
        compactMap { action -> ContinuousClock.Instant? in
            if case .scheduleTick(let at) = action { at } else { nil }
        }
    }
}

/// A configuration with the prior `a·n + b`.
private func configuration(
    a: Duration, b: Duration, maxBatchSize: Int = 64, maxQueueDelay: Duration = .milliseconds(2),
    maxQueueLength: Int = 1024, computeSlots: Int = 1
) -> Batcher.Configuration {
    Batcher.Configuration(
        maxBatchSize: maxBatchSize, maxQueueDelay: maxQueueDelay, maxQueueLength: maxQueueLength,
        computeSlots: computeSlots, prior: BatchCostModel.Coefficients(perRow: a, perBatch: b)
    )
}

/// SplitMix64: a tiny, well-mixed, seedable generator, so the simulations are reproducible.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private struct Arrival {
    var id: Int
    var at: ContinuousClock.Instant
    var deadline: ContinuousClock.Instant
}

private struct DispatchRecord {
    var at: ContinuousClock.Instant
    var items: [Int]
    /// The batcher's estimate for this batch when it dispatched it.
    var estimate: Duration
    /// The simulated true duration.
    var actual: Duration
}

/// A discrete-event stand-in for the runtime: one timer, `slots` compute threads, a true cost function.
private struct Harness {
    var batcher: Batcher
    var running: [(end: ContinuousClock.Instant, rows: Int, duration: Duration)] = []
    var pendingTick: ContinuousClock.Instant?
    var dispatches: [DispatchRecord] = []
    var sheds: [(id: Int, reason: Batcher.ShedReason)] = []
    /// Events after which a slot was free but items stayed queued (the batcher chose to wait).
    var waits = 0
    /// Events after which items waited with a free slot and no tick pending (they would be stranded).
    var stranded = 0
    /// Ticks requested for a time not after the event that requested them.
    var ticksNotInFuture = 0
    /// Events after which the batcher's in-flight count disagreed with the harness's.
    var inFlightMismatches = 0

    init(batcher: Batcher) { self.batcher = batcher }

    mutating func run(arrivals: [Arrival], trueCost: (Int) -> Duration) {
        enum Event {
            case completion(Int)
            case arrival, tick
        }
        var nextArrival = 0
        for _ in 0..<10_000_000 {
            // Earliest event first; on a tie a finished batch goes first, then an arrival, then the timer.
            var best: (time: ContinuousClock.Instant, event: Event)?
            if let index = running.indices.min(by: { running[$0].end < running[$1].end }) {
                best = (running[index].end, .completion(index))
            }
            if nextArrival < arrivals.count, best.map({ arrivals[nextArrival].at < $0.time }) ?? true {
                best = (arrivals[nextArrival].at, .arrival)
            }
            if let tick = pendingTick, best.map({ tick < $0.time }) ?? true {
                best = (tick, .tick)
            }
            guard let best else { return }
            let now = best.time

            let actions: [Batcher.Action]
            switch best.event {
            case .completion(let index):
                let batch = running.remove(at: index)
                actions = batcher.batchFinished(rows: batch.rows, duration: batch.duration, now: now)
            case .arrival:
                let arrival = arrivals[nextArrival]
                nextArrival += 1
                actions = batcher.enqueue(arrival.id, deadline: arrival.deadline, now: now)
            case .tick:
                pendingTick = nil
                actions = batcher.tick(now: now)
            }
            apply(actions, now: now, trueCost: trueCost)

            if batcher.inFlightBatches != running.count { inFlightMismatches += 1 }
            if batcher.inFlightBatches < batcher.configuration.computeSlots, batcher.queuedCount > 0 {
                waits += 1
                if pendingTick == nil { stranded += 1 }
            }
        }
        Issue.record("the simulation did not finish")
    }

    mutating func apply(_ actions: [Batcher.Action], now: ContinuousClock.Instant, trueCost: (Int) -> Duration) {
        for action in actions {
            switch action {
            case .dispatch(let items):
                let actual = trueCost(items.count)
                dispatches.append(
                    DispatchRecord(
                        at: now, items: items, estimate: batcher.estimatedCost(rows: items.count), actual: actual))
                running.append((now + actual, items.count, actual))
            case .shed(let items, let reason):
                sheds.append(contentsOf: items.map { ($0, reason) })
            case .scheduleTick(let at):
                if at <= now { ticksNotInFuture += 1 }
                pendingTick = at
            }
        }
    }

    var meanBatchSize: Double {
        dispatches.isEmpty ? 0 : Double(dispatches.map(\.items.count).reduce(0, +)) / Double(dispatches.count)
    }
}

/// Poisson arrivals (exponential gaps with mean `meanGap` seconds), budgets uniform in `budgetMicroseconds`.
private func poissonArrivals(
    count: Int, from start: ContinuousClock.Instant, meanGap: Double, budgetMicroseconds: ClosedRange<Int>,
    using generator: inout SplitMix64
) -> [Arrival] {
    var time = 0.0
    return (0..<count).map { id in
        time += -log(1 - Double.random(in: 0..<1, using: &generator)) * meanGap
        let at = start + .nanoseconds(Int64(time * 1e9))
        let budget = Duration.microseconds(Int.random(in: budgetMicroseconds, using: &generator))
        return Arrival(id: id, at: at, deadline: at + budget)
    }
}

/// Arrivals every `interval`, each with the same time budget.
private func regularArrivals(
    count: Int, from start: ContinuousClock.Instant, every interval: Duration, budget: Duration
) -> [Arrival] {
    (0..<count).map { i in
        let at = start + interval * i
        return Arrival(id: i, at: at, deadline: at + budget)
    }
}

// MARK: - Cost model

@Suite("AdaptiveBatcher cost model")
struct AdaptiveBatcherCostModelTests {
    private let prior = BatchCostModel.Coefficients(perRow: .microseconds(5), perBatch: .microseconds(1))

    @Test func startsAtThePrior() {
        let model = BatchCostModel(prior: prior)
        #expect(model.fitKind == .prior)
        #expect(model.estimate(rows: 10) == .microseconds(51))
    }

    @Test func recoversPerRowAndPerBatchCostFromExactTimings() {
        var model = BatchCostModel(prior: prior)
        for rows in 1...40 {
            model.record(rows: rows, duration: .microseconds(3) * rows + .microseconds(25))
        }
        #expect(model.fitKind == .full)
        #expect(abs(model.coefficients.perRow.seconds - 3e-6) < 1e-9)
        #expect(abs(model.coefficients.perBatch.seconds - 25e-6) < 1e-9)
    }

    @Test func recoversCostFromNoisyTimings() {
        var model = BatchCostModel(prior: prior)
        var generator = SplitMix64(state: 7)
        for _ in 0..<50 {
            let rows = Int.random(in: 1...64, using: &generator)
            let noise = Double.random(in: -0.03...0.03, using: &generator)
            let truth = 1.5e-6 * Double(rows) + 10.5e-6
            model.record(rows: rows, duration: .nanoseconds(Int64(truth * (1 + noise) * 1e9)))
        }
        #expect(model.fitKind == .full)
        #expect(abs(model.coefficients.perRow.seconds - 1.5e-6) < 0.15e-6)
        #expect(abs(model.coefficients.perBatch.seconds - 10.5e-6) < 2e-6)
    }

    @Test func allSameRowCountKeepsThePriorSlopeAndFitsTheIntercept() {
        var model = BatchCostModel(prior: prior)
        for _ in 0..<20 {
            model.record(rows: 8, duration: .microseconds(49))  // truth: 3µs·8 + 25µs
        }
        #expect(model.fitKind == .interceptOnly)
        #expect(model.coefficients.perRow == .microseconds(5))
        #expect(model.coefficients.perBatch == .microseconds(9))
        #expect(model.estimate(rows: 8) == .microseconds(49))
    }

    @Test func degenerateFitScalesDownAPriorSlopeThatOvershoots() {
        var model = BatchCostModel(
            prior: BatchCostModel.Coefficients(perRow: .microseconds(10), perBatch: .microseconds(3)))
        for _ in 0..<5 {
            model.record(rows: 4, duration: .microseconds(20))
        }
        #expect(model.fitKind == .interceptOnly)
        #expect(model.coefficients.perBatch == .zero)
        #expect(model.coefficients.perRow == .microseconds(5))
        #expect(model.estimate(rows: 4) == .microseconds(20))
    }

    @Test func littleSpreadInRowCountsDoesNotFitASlope() {
        var model = BatchCostModel(prior: prior)
        // Rows 1 and 2 with noise would give a wild slope; the variance (0.25 rows²) is below the bar.
        for i in 0..<10 {
            model.record(rows: 1 + i % 2, duration: .microseconds(i % 2 == 0 ? 30 : 20))
        }
        #expect(model.fitKind == .interceptOnly)
        #expect(model.coefficients.perRow == .microseconds(5))
    }

    @Test func negativeSlopeIsClampedToAFlatLine() {
        var model = BatchCostModel(prior: prior)
        model.record(rows: 1, duration: .microseconds(50))
        model.record(rows: 10, duration: .microseconds(40))
        model.record(rows: 20, duration: .microseconds(30))
        #expect(model.coefficients.perRow == .zero)
        #expect(model.coefficients.perBatch == .microseconds(40))
    }

    @Test func negativeInterceptIsClampedToALineThroughTheOrigin() {
        var model = BatchCostModel(prior: prior)
        model.record(rows: 10, duration: .microseconds(10))
        model.record(rows: 20, duration: .microseconds(30))
        model.record(rows: 30, duration: .microseconds(50))
        // Free fit: 2µs·n − 10µs. Through the origin: Σxy/Σx² = 2200/1400 µs.
        #expect(model.coefficients.perBatch == .zero)
        #expect(abs(model.coefficients.perRow.seconds - 2200.0 / 1400.0 * 1e-6) < 1e-9)
    }

    @Test func forgetsBatchesOlderThanTheWindow() {
        var model = BatchCostModel(prior: prior, window: 5)
        for rows in [1, 5, 10, 20, 40] {
            model.record(rows: rows, duration: .microseconds(100) * rows + .microseconds(100))
        }
        for rows in [2, 6, 12, 24, 48] {
            model.record(rows: rows, duration: .microseconds(2) * rows + .microseconds(10))
        }
        #expect(model.sampleCount == 5)
        #expect(abs(model.coefficients.perRow.seconds - 2e-6) < 1e-9)
        #expect(abs(model.coefficients.perBatch.seconds - 10e-6) < 1e-9)
    }
}

// MARK: - State machine

@Suite("AdaptiveBatcher state machine")
struct AdaptiveBatcherStateMachineTests {
    private let t0 = ContinuousClock.now
    private let farDeadline = Duration.seconds(1)

    private func at(_ microseconds: Int) -> ContinuousClock.Instant { t0 + .microseconds(microseconds) }

    @Test func fullQueueShedsImmediately() {
        var batcher = Batcher(configuration: configuration(a: .microseconds(10), b: .zero, maxQueueLength: 2))
        #expect(batcher.enqueue(0, deadline: at(0) + farDeadline, now: at(0)) == [.dispatch([0])])
        #expect(batcher.enqueue(1, deadline: at(1) + farDeadline, now: at(1)).allShed.isEmpty)
        #expect(batcher.enqueue(2, deadline: at(2) + farDeadline, now: at(2)).allShed.isEmpty)
        #expect(batcher.queuedCount == 2)
        #expect(batcher.enqueue(3, deadline: at(3) + farDeadline, now: at(3)) == [.shed([3], .queueFull)])
        #expect(batcher.queuedCount == 2)
        let actions = batcher.batchFinished(rows: 1, duration: .microseconds(10), now: at(10))
        #expect(actions.dispatched == [[1, 2]])
    }

    @Test func unmeetableDeadlineIsShedBeforeDispatch() {
        var batcher = Batcher(configuration: configuration(a: .microseconds(100), b: .zero))
        // One row takes 100µs: a 50µs budget cannot be met even with the slot free.
        #expect(batcher.enqueue(0, deadline: at(50), now: at(0)) == [.shed([0], .deadlineUnmeetable)])
        #expect(batcher.isIdle)
        // Exactly enough is enough.
        #expect(batcher.enqueue(1, deadline: at(100), now: at(0)) == [.dispatch([1])])
        // The slot is busy until ~100µs, so a new item cannot finish before ~200µs.
        #expect(batcher.enqueue(2, deadline: at(150), now: at(10)) == [.shed([2], .deadlineUnmeetable)])
        let accepted = batcher.enqueue(3, deadline: at(200), now: at(10))
        #expect(accepted.allShed.isEmpty)
        #expect(batcher.queuedCount == 1)
    }

    @Test func expiredItemsAreSkippedWhenABatchFormsAfterALongInFlightBatch() {
        var batcher = Batcher(configuration: configuration(a: .microseconds(10), b: .zero))
        #expect(batcher.enqueue(0, deadline: at(0) + farDeadline, now: at(0)) == [.dispatch([0])])
        for (id, deadline) in [(1, 1000), (2, 100), (3, 2000)] {
            let actions = batcher.enqueue(id, deadline: at(deadline), now: at(1))
            #expect(actions.allShed.isEmpty && actions.dispatched.isEmpty)
        }
        // The batch was expected to take 10µs but took 300µs: item 2 (due at 100µs) is late.
        let actions = batcher.batchFinished(rows: 1, duration: .microseconds(300), now: at(300))
        #expect(actions == [.shed([2], .deadlineUnmeetable), .dispatch([1, 3])])
    }

    @Test func lateItemsAreShedWhileTheSlotIsStillBusy() {
        var batcher = Batcher(configuration: configuration(a: .microseconds(10), b: .zero))
        #expect(batcher.enqueue(0, deadline: at(0) + farDeadline, now: at(0)) == [.dispatch([0])])
        // Due at 100µs, one row takes 10µs: it turns late just after 90µs.
        let lateAt = at(90) + .nanoseconds(1)
        #expect(batcher.enqueue(1, deadline: at(100), now: at(1)) == [.scheduleTick(at: lateAt)])
        #expect(batcher.enqueue(2, deadline: at(1000), now: at(2)) == [])
        // The running batch overruns; the timer fires before it finishes.
        let actions = batcher.tick(now: lateAt)
        #expect(actions == [.shed([1], .deadlineUnmeetable), .scheduleTick(at: at(990) + .nanoseconds(1))])
        #expect(batcher.queuedCount == 1)
        #expect(batcher.inFlightBatches == 1)
    }

    @Test func batchSizeIsCappedAndOrderIsFIFO() {
        var batcher = Batcher(configuration: configuration(a: .microseconds(1), b: .zero, maxBatchSize: 4))
        var dispatched = batcher.enqueue(0, deadline: at(0) + farDeadline, now: at(0)).dispatched
        for id in 1...10 {
            dispatched += batcher.enqueue(id, deadline: at(id) + farDeadline, now: at(id)).dispatched
        }
        #expect(dispatched == [[0]])
        for finish in [20, 30, 40] {
            dispatched +=
                batcher.batchFinished(
                    rows: dispatched.last!.count, duration: .microseconds(5), now: at(finish)
                ).dispatched
        }
        #expect(dispatched == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]])
        #expect(batcher.batchFinished(rows: 2, duration: .microseconds(5), now: at(50)) == [])
        #expect(batcher.isIdle)
    }

    @Test func batchShrinksToMeetTheEarliestDeadline() {
        // cost(n) = 10µs·n + 20µs.
        var batcher = Batcher(
            configuration: configuration(a: .microseconds(10), b: .microseconds(20), maxBatchSize: 6))
        #expect(batcher.enqueue(0, deadline: at(0) + farDeadline, now: at(0)) == [.dispatch([0])])
        for id in 1...6 {
            // Item 3 is due at 100µs; the rest have time.
            let deadline = id == 3 ? at(100) : at(0) + farDeadline
            #expect(batcher.enqueue(id, deadline: deadline, now: at(1)).allShed.isEmpty)
        }
        // At 30µs: five rows end at 30 + 70 = 100µs (just in time for item 3), six would end at 110µs.
        let actions = batcher.batchFinished(rows: 1, duration: .microseconds(30), now: at(30))
        #expect(actions.dispatched == [[1, 2, 3, 4, 5]])
        #expect(batcher.queuedCount == 1)
        let next = batcher.batchFinished(rows: 5, duration: .microseconds(70), now: at(100))
        #expect(next.dispatched == [[6]])
    }

    @Test func headWithATightDeadlineGoesAlone() {
        var batcher = Batcher(
            configuration: configuration(a: .microseconds(10), b: .microseconds(20), maxBatchSize: 4))
        #expect(batcher.enqueue(0, deadline: at(0) + farDeadline, now: at(0)) == [.dispatch([0])])
        #expect(batcher.enqueue(1, deadline: at(65), now: at(1)).allShed.isEmpty)
        for id in 2...4 {
            _ = batcher.enqueue(id, deadline: at(0) + farDeadline, now: at(1))
        }
        // At 30µs one row ends at 60µs (fits 65µs), two would end at 70µs.
        let actions = batcher.batchFinished(rows: 1, duration: .microseconds(30), now: at(30))
        #expect(actions.dispatched == [[1]])
    }

    @Test func neverWaitsWhenThePerBatchCostIsTiny() {
        // A 200-tree GBDT: ~8µs per row, almost nothing per call. Poisson arrivals at 100k requests/s
        // (80% of capacity), so a slot often frees with a few items queued.
        var generator = SplitMix64(state: 42)
        let arrivals = poissonArrivals(
            count: 2000, from: t0, meanGap: 10e-6, budgetMicroseconds: 5000...5000, using: &generator)
        var harness = Harness(
            batcher: Batcher(configuration: configuration(a: .microseconds(8), b: .nanoseconds(500))))
        harness.run(arrivals: arrivals, trueCost: { .microseconds(8) * $0 + .nanoseconds(500) })
        #expect(harness.waits == 0)
        #expect(harness.sheds.isEmpty)
        #expect(harness.dispatches.map(\.items.count).reduce(0, +) == 2000)
        // Batches still form while the slot is busy.
        #expect(harness.dispatches.contains { $0.items.count > 1 })
    }

    @Test func waitsBrieflyWhenThePerBatchCostIsLarge() {
        // An MLP: 12µs for one row, 1.5µs per row in a large batch. 200k requests/s.
        var harness = Harness(
            batcher: Batcher(
                configuration: configuration(a: .nanoseconds(1500), b: .nanoseconds(10_500))))
        harness.run(
            arrivals: regularArrivals(count: 500, from: t0, every: .microseconds(5), budget: .milliseconds(5)),
            trueCost: { .nanoseconds(1500) * $0 + .nanoseconds(10_500) })
        #expect(harness.waits > 0)
        #expect(harness.stranded == 0)
        #expect(harness.sheds.isEmpty)
        #expect(harness.meanBatchSize > 1.5)
        // Waiting never holds an item anywhere near maxQueueDelay (2ms).
        let worstStart = harness.dispatches.map { $0.at - (t0 + .microseconds(5) * $0.items[0]) }.max()!
        #expect(worstStart < .microseconds(50))
    }

    @Test func waitsForCompanyThenDispatchesWhenTheTickFires() {
        var batcher = Batcher(configuration: configuration(a: .microseconds(1), b: .microseconds(200)))
        let deadline = at(0) + .milliseconds(10)
        #expect(batcher.enqueue(0, deadline: deadline, now: at(0)) == [.dispatch([0])])
        #expect(batcher.batchFinished(rows: 1, duration: .microseconds(201), now: at(5), recordCost: false) == [])
        // One item every 10µs; a batch costs 200µs more than its rows: worth waiting.
        #expect(batcher.enqueue(1, deadline: deadline, now: at(10)) == [.scheduleTick(at: at(210))])
        #expect(batcher.enqueue(2, deadline: deadline, now: at(20)) == [.scheduleTick(at: at(120))])
        let end = at(30) + .microseconds(200) / 3
        #expect(batcher.enqueue(3, deadline: deadline, now: at(30)) == [.scheduleTick(at: end)])
        #expect(batcher.queuedCount == 3)
        // An early tick only asks again.
        #expect(batcher.tick(now: at(50)) == [.scheduleTick(at: end)])
        #expect(batcher.tick(now: end) == [.dispatch([1, 2, 3])])
        #expect(batcher.inFlightBatches == 1)
    }

    @Test func stopsWaitingOnceWaitingCostsMoreThanItSaves() {
        var batcher = Batcher(configuration: configuration(a: .microseconds(1), b: .microseconds(40)))
        let deadline = at(0) + .milliseconds(10)
        #expect(batcher.enqueue(0, deadline: deadline, now: at(0)) == [.dispatch([0])])
        _ = batcher.batchFinished(rows: 1, duration: .microseconds(41), now: at(5), recordCost: false)
        #expect(batcher.enqueue(1, deadline: deadline, now: at(10)).ticks.count == 1)
        #expect(batcher.enqueue(2, deadline: deadline, now: at(20)).dispatched.isEmpty)
        #expect(batcher.enqueue(3, deadline: deadline, now: at(30)).dispatched.isEmpty)
        // Four queued items × 10µs = 40µs, no longer below the 40µs per-batch cost.
        #expect(batcher.enqueue(4, deadline: deadline, now: at(40)) == [.dispatch([1, 2, 3, 4])])
    }

    @Test func anIdlePauseDoesNotHideTheBurstThatFollows() {
        var batcher = Batcher(configuration: configuration(a: .microseconds(1), b: .microseconds(200)))
        let budget = Duration.milliseconds(10)
        #expect(batcher.enqueue(0, deadline: at(0) + budget, now: at(0)) == [.dispatch([0])])
        _ = batcher.batchFinished(rows: 1, duration: .microseconds(201), now: at(5), recordCost: false)
        // A one-second pause counts as at most max(maxQueueDelay, b) = 2ms...
        let burstStart = at(1_000_000)
        #expect(batcher.enqueue(1, deadline: burstStart + budget, now: burstStart) == [.dispatch([1])])
        _ = batcher.batchFinished(rows: 1, duration: .microseconds(201), now: burstStart, recordCost: false)
        #expect(batcher.arrivalInterval == .milliseconds(2))
        // ...so a burst of one item every 10µs makes waiting pay after 18 arrivals, not after 64.
        var firstWait: Int?
        for id in 2...40 {
            let now = burstStart + .microseconds(10) * (id - 1)
            let actions = batcher.enqueue(id, deadline: now + budget, now: now)
            if !actions.ticks.isEmpty {
                firstWait = id - 1
                break
            }
            #expect(actions == [.dispatch([id])])
            _ = batcher.batchFinished(rows: 1, duration: .microseconds(201), now: now, recordCost: false)
        }
        #expect(firstWait == 18)
    }

    @Test func maxQueueDelayCapsTheWait() {
        // A huge per-batch cost (10ms) would justify a long wait; maxQueueDelay (100µs) caps it.
        var batcher = Batcher(
            configuration: configuration(a: .microseconds(1), b: .milliseconds(10), maxQueueDelay: .microseconds(100)))
        let deadline = at(0) + .seconds(1)
        #expect(batcher.enqueue(0, deadline: deadline, now: at(0)) == [.dispatch([0])])
        _ = batcher.batchFinished(rows: 1, duration: .microseconds(5), now: at(5), recordCost: false)
        #expect(batcher.enqueue(1, deadline: deadline, now: at(10)) == [.scheduleTick(at: at(110))])
        for id in 2...10 {
            #expect(batcher.enqueue(id, deadline: deadline, now: at(id * 10)) == [])
        }
        // The head has waited 100µs: the next event dispatches, tick or not.
        #expect(batcher.enqueue(11, deadline: deadline, now: at(110)) == [.dispatch(Array(1...11))])
    }

    @Test func waitingNeverCostsAQueuedItemItsDeadline() {
        var batcher = Batcher(configuration: configuration(a: .microseconds(1), b: .microseconds(200)))
        #expect(batcher.enqueue(0, deadline: at(0) + .seconds(1), now: at(0)) == [.dispatch([0])])
        _ = batcher.batchFinished(rows: 1, duration: .microseconds(201), now: at(5), recordCost: false)
        // Due at 260µs: a batch of two (202µs) must start by 58µs.
        #expect(batcher.enqueue(1, deadline: at(260), now: at(10)) == [.scheduleTick(at: at(58))])
        #expect(batcher.tick(now: at(58)) == [.dispatch([1])])
    }

    @Test func computeSlotsRunBatchesConcurrently() {
        var batcher = Batcher(configuration: configuration(a: .microseconds(10), b: .zero, computeSlots: 2))
        #expect(batcher.enqueue(0, deadline: at(0) + farDeadline, now: at(0)) == [.dispatch([0])])
        #expect(batcher.enqueue(1, deadline: at(1) + farDeadline, now: at(1)) == [.dispatch([1])])
        #expect(batcher.enqueue(2, deadline: at(2) + farDeadline, now: at(2)).dispatched.isEmpty)
        #expect(batcher.inFlightBatches == 2)
        #expect(batcher.queuedCount == 1)
        #expect(batcher.batchFinished(rows: 1, duration: .microseconds(10), now: at(10)).dispatched == [[2]])
        #expect(batcher.inFlightBatches == 2)
    }

    @Test func shutdownShedsNewItemsAndDrainsQueuedOnesWithoutWaiting() {
        // Large per-batch cost and frequent arrivals: without shutdown, a lone leftover item would wait.
        func scenario(shutdown: Bool) -> (afterSecondBatch: [Batcher.Action], batcher: Batcher) {
            var batcher = Batcher(
                configuration: configuration(a: .microseconds(1), b: .microseconds(200), maxBatchSize: 4))
            let deadline = at(0) + .milliseconds(10)
            _ = batcher.enqueue(0, deadline: deadline, now: at(0))
            for id in 1...5 {
                _ = batcher.enqueue(id, deadline: deadline, now: at(id * 10))
            }
            if shutdown {
                #expect(batcher.beginShutdown(now: at(55)).dispatched.isEmpty)
                #expect(batcher.enqueue(6, deadline: deadline, now: at(56)) == [.shed([6], .shuttingDown)])
            }
            let first = batcher.batchFinished(rows: 1, duration: .microseconds(5), now: at(60), recordCost: false)
            #expect(first.dispatched == [[1, 2, 3, 4]])
            let second = batcher.batchFinished(rows: 4, duration: .microseconds(5), now: at(70), recordCost: false)
            return (second, batcher)
        }

        let control = scenario(shutdown: false)
        #expect(control.afterSecondBatch.dispatched.isEmpty)
        #expect(control.afterSecondBatch.ticks.count == 1)

        let drained = scenario(shutdown: true)
        var batcher = drained.batcher
        #expect(drained.afterSecondBatch == [.dispatch([5])])
        #expect(!batcher.isIdle)
        #expect(batcher.batchFinished(rows: 1, duration: .microseconds(5), now: at(80)) == [])
        #expect(batcher.isIdle)
        #expect(batcher.enqueue(7, deadline: at(1000), now: at(90)) == [.shed([7], .shuttingDown)])
    }

    @Test func shutdownEndsAWaitAtOnce() {
        var batcher = Batcher(configuration: configuration(a: .microseconds(1), b: .microseconds(200)))
        let deadline = at(0) + .milliseconds(10)
        _ = batcher.enqueue(0, deadline: deadline, now: at(0))
        _ = batcher.batchFinished(rows: 1, duration: .microseconds(5), now: at(5), recordCost: false)
        #expect(batcher.enqueue(1, deadline: deadline, now: at(10)).ticks.count == 1)
        #expect(batcher.beginShutdown(now: at(11)) == [.dispatch([1])])
    }

    @Test func simulatedPoissonLoadLosesNothingAndMeetsDeadlines() {
        // True cost 2µs·n + 60µs; the prior is wrong on purpose (5µs·n + 20µs) and must be learned.
        let a = 2e-6
        let b = 60e-6
        let maxBatch = 32
        let capacity = Double(maxBatch) / (a * Double(maxBatch) + b)  // rows per second at full batches
        let rate = 0.8 * capacity
        var generator = SplitMix64(state: 0x5EED)
        let arrivals = poissonArrivals(
            count: 20_000, from: t0, meanGap: 1 / rate, budgetMicroseconds: 150...1500, using: &generator)

        var harness = Harness(
            batcher: Batcher(
                configuration: configuration(
                    a: .microseconds(5), b: .microseconds(20), maxBatchSize: maxBatch, maxQueueDelay: .milliseconds(1)))
        )
        harness.run(arrivals: arrivals) { rows in
            let noise = Double.random(in: -0.05...0.05, using: &generator)
            return .nanoseconds(Int64((a * Double(rows) + b) * (1 + noise) * 1e9))
        }

        // Every item answered exactly once.
        var answers = [Int](repeating: 0, count: arrivals.count)
        for record in harness.dispatches { for id in record.items { answers[id] += 1 } }
        for shed in harness.sheds { answers[shed.id] += 1 }
        #expect(answers.allSatisfy { $0 == 1 })
        #expect(harness.batcher.isIdle)
        #expect(harness.stranded == 0)
        #expect(harness.ticksNotInFuture == 0)
        #expect(harness.inFlightMismatches == 0)

        // FIFO: dispatch order is arrival order.
        let order = harness.dispatches.flatMap(\.items)
        #expect(order == order.sorted())

        // Batching happens under load. Only tight budgets are shed (a single row takes ~60µs and a
        // running batch up to ~120µs), and only for their deadlines.
        #expect(harness.meanBatchSize > 1)
        #expect(harness.meanBatchSize > 4)
        #expect(harness.sheds.count < arrivals.count / 20)
        #expect(harness.sheds.allSatisfy { $0.reason == .deadlineUnmeetable })
        #expect(harness.sheds.allSatisfy { arrivals[$0.id].deadline - arrivals[$0.id].at < .microseconds(500) })

        // No completion misses its deadline by more than the cost model's error for that batch.
        var worstExcess = Duration.zero
        for record in harness.dispatches {
            let modelError = max(record.actual - record.estimate, .zero)
            for id in record.items {
                let miss = (record.at + record.actual) - arrivals[id].deadline
                worstExcess = max(worstExcess, miss - modelError)
            }
        }
        #expect(worstExcess <= .zero)

        // The model learned the true cost.
        let learned = harness.batcher.costModel.coefficients
        #expect(abs(learned.perRow.seconds - a) < 0.2 * a)
        #expect(abs(learned.perBatch.seconds - b) < 0.2 * b)
    }
}

@Suite("Stall filter for the batch cost model")
struct StallFilterTests {
    /// Feeds (duration, expected) pairs to `filter` in order; returns what it admitted.
    static func admitted(_ filter: StallFilter, _ batches: [(Duration, Duration)]) -> [Bool] {
        var filter = filter
        return batches.map { filter.admits(duration: $0.0, expected: $0.1) }
    }

    @Test("ordinary batches are learned; one stall far above the estimate is not")
    func oneStall() {
        let e = Duration.microseconds(20)
        let results = Self.admitted(
            StallFilter(),
            [
                (.microseconds(30), e), (.microseconds(390), e), (.seconds(2), e), (.microseconds(25), e),
                (.milliseconds(500), e),
            ])
        #expect(results == [true, true, false, true, false])  // 390 µs is 19.5×, under 20×
    }

    @Test("below the floor every duration counts, however far above the estimate")
    func floor() {
        let results = Self.admitted(
            StallFilter(floor: .milliseconds(5)),
            [(.milliseconds(4), .microseconds(1)), (.milliseconds(6), .microseconds(1))])
        #expect(results == [true, false])
    }

    @Test("stalls that keep coming are a slower model: from the third in a row they count; a normal batch resets")
    func streak() {
        let e = Duration.microseconds(20)
        let results = Self.admitted(
            StallFilter(streak: 3),
            [(.seconds(1), e), (.seconds(1), e), (.seconds(1), e), (.seconds(1), e), (e, e), (.seconds(1), e)])
        #expect(results == [false, false, true, true, true, false])
    }
}

/// The admission check's projection: the rows ahead go first, in full batches over the slots, then the item's batch.
@Suite("Batcher admission projection")
struct BatcherProjectionTests {
    @Test("an empty batcher projects one row's cost; a queue ahead adds its batches after the slot frees")
    func projection() {
        let t0 = ContinuousClock.now
        // Cost a·n + b = 1 ms per row + 2 ms per batch; batches of 4; waiting for company up to a minute.
        var machine = Batcher(
            configuration: configuration(
                a: .milliseconds(1), b: .milliseconds(2), maxBatchSize: 4, maxQueueDelay: .seconds(60),
                computeSlots: 1))
        #expect(machine.projectedFinish(now: t0) == t0 + .milliseconds(3))
        // The first row of an idle batcher goes out alone: the slot is busy until t0 + 3 ms.
        #expect(machine.enqueue(0, deadline: t0 + .seconds(10), now: t0).dispatched == [[0]])
        for i in 1...3 { _ = machine.enqueue(i, deadline: t0 + .seconds(10), now: t0) }
        #expect(machine.queuedCount == 3)
        // After the slot frees: the three waiting rows and the new one in one batch of 4 (6 ms).
        #expect(machine.projectedFinish(now: t0) == t0 + .milliseconds(3) + .milliseconds(6))
        for i in 4...8 { _ = machine.enqueue(i, deadline: t0 + .seconds(10), now: t0) }
        #expect(machine.queuedCount == 8)
        // Two full batches ahead (6 ms each, one slot), then the new row alone (3 ms).
        #expect(machine.projectedFinish(now: t0) == t0 + .milliseconds(3) + .milliseconds(12) + .milliseconds(3))
        // Later, the slot's estimated end has passed: the projection starts from now.
        let later = t0 + .seconds(1)
        #expect(machine.projectedFinish(now: later) == later + .milliseconds(12) + .milliseconds(3))
    }

    @Test("with two slots, full batches ahead run two at a time")
    func twoSlots() {
        let t0 = ContinuousClock.now
        var machine = Batcher(
            configuration: configuration(
                a: .milliseconds(1), b: .milliseconds(2), maxBatchSize: 2, maxQueueDelay: .seconds(60),
                computeSlots: 2))
        // Row 0 goes out alone (slot A until t0 + 3 ms); rows 1 and 2 fill a batch (slot B until t0 + 4 ms).
        #expect(machine.enqueue(0, deadline: t0 + .seconds(10), now: t0).dispatched == [[0]])
        _ = machine.enqueue(1, deadline: t0 + .seconds(10), now: t0)
        #expect(machine.enqueue(2, deadline: t0 + .seconds(10), now: t0).dispatched == [[1, 2]])
        for i in 3...7 { _ = machine.enqueue(i, deadline: t0 + .seconds(10), now: t0) }
        #expect(machine.queuedCount == 5)
        // Slot A frees first (3 ms); two full batches ahead take one round on two slots (4 ms); then the last
        // waiting row with the new one (4 ms).
        #expect(machine.projectedFinish(now: t0) == t0 + .milliseconds(3) + .milliseconds(4) + .milliseconds(4))
    }
}
