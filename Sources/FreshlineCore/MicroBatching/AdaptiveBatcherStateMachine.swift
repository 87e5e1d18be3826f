/// The decisions of one feature's adaptive micro-batcher, as a pure state machine.
///
/// The runtime owns the clock, the timer and the compute threads. It reports every event — an item
/// arriving (``enqueue(_:deadline:now:)``), its timer firing (``tick(now:)``), a batch finishing
/// (``batchFinished(rows:duration:now:recordCost:)``), shutdown (``beginShutdown(now:)``) — with the
/// current time, and carries out the returned ``Action``s in order. The machine reads no clock, starts
/// no task and takes no lock, so every decision can be unit-tested with made-up instants.
///
/// ## What it decides
///
/// - **Admission.** The queue is bounded by ``Configuration/maxQueueLength``; an item beyond it is shed
///   at once with ``BatchShedReason/queueFull`` (the runtime answers 503 with `Retry-After`). An item that
///   cannot meet its caller's deadline even if it ran next, alone, is shed at once with
///   ``BatchShedReason/deadlineUnmeetable``.
/// - **Deadlines before compute.** An item can no longer meet its deadline when
///   `deadline < start + cost(1 row)`, where `start` is now if a compute slot is free, else the
///   estimated end of the earliest in-flight batch (an estimate: it ignores the items queued ahead). Such
///   items leave the queue as ``BatchShedReason/deadlineUnmeetable`` — whenever a batch is formed, whenever a
///   batch finishes, and, while all slots are busy, at a tick scheduled for the moment the first queued
///   item would become late. So a timeout does not wait for the running batch to end (Triton's
///   known weakness); the caller gets its error as soon as it is known.
/// - **Batch size.** When a slot is free the batch takes up to ``Configuration/maxBatchSize`` items in
///   FIFO order, then shrinks `n` (never below 1) while `now + cost(n)` would pass the earliest
///   deadline among those `n`: a larger batch is slower, and the most urgent item sets the limit.
///   Items left out stay at the head of the queue for the next batch.
/// - **Waiting for company.** With a slot free and fewer than `maxBatchSize` items queued, the batcher
///   may hold the items for more to arrive. Waiting for one more item costs each of the `n` queued items
///   the arrival interval `w` (an exponentially weighted average of inter-arrival times), `n·w` in
///   total; dispatching now and serving the next arrival in a batch of its own costs about `b`, the
///   fixed per-batch cost. So it waits only while `n·w < b`, and then only until the earliest of:
///   the head has waited ``Configuration/maxQueueDelay``; the newest item has waited `b/n` (by then
///   waiting has already cost what it could save, so `w` is evidently stale); and the last moment at
///   which a batch one item larger would still meet every queued deadline. It returns
///   ``Action/scheduleTick(at:)`` for that moment; an arrival in between re-evaluates. It never waits
///   with a full queue (that would shed arrivals it could serve) nor during shutdown. For a model with
///   almost no per-batch cost (a tree ensemble: `b ≈ 0`) it effectively never waits; for a network
///   whose single-row call is far dearer than a row of a large batch (`b` large) it waits briefly once
///   arrivals are frequent. Under load it rarely needs to: items queue while every slot is busy, and
///   everything queued (up to `maxBatchSize`) goes out as soon as a slot frees.
/// - **Concurrency.** Up to ``Configuration/computeSlots`` batches run at once.
/// - **Shutdown.** After ``beginShutdown(now:)`` new items are shed with ``BatchShedReason/shuttingDown``;
///   queued items are still dispatched, without waiting for company. ``isIdle`` tells when the drain
///   is done.
///
/// ## Driving it
///
/// - Perform the actions in the order returned. ``Action/dispatch(_:)`` must start computing at once
///   (the deadline arithmetic assumes it starts at the `now` passed in) and must later be answered by
///   exactly one ``batchFinished(rows:duration:now:recordCost:)`` with the same row count.
/// - Keep one timer. ``Action/scheduleTick(at:)`` replaces any timer already set; when it fires, call
///   ``tick(now:)``, even if it fires late. Never drop a requested tick: the machine remembers the
///   pending one and does not ask again for a later instant, counting on it to re-evaluate. Extra or
///   early ticks are harmless (the machine re-evaluates and, if needed, asks again), so the runtime
///   never needs to cancel a timer; a tick may well find nothing to do.
/// - Pass the caller's deadline minus whatever the runtime spends after compute (decoding, encoding the
///   response), since the machine plans for the model call to *end* by the deadline.
/// - Not thread-safe by itself (it is a value): confine it to one actor or lock.
public struct AdaptiveBatcherStateMachine<Item: Sendable>: Sendable {
    /// The limits and the cost prior of one batcher.
    public struct Configuration: Sendable, Equatable {
        /// The most items in one batch (at least 1).
        public var maxBatchSize: Int
        /// The longest the head of the queue is held waiting for company while a slot is free. It is a
        /// cap, not a target: the batcher usually waits far less, or not at all.
        public var maxQueueDelay: Duration
        /// The most items queued (not counting those in flight); beyond it items are shed (at least 1).
        public var maxQueueLength: Int
        /// How many batches may compute at once (at least 1; default 1).
        public var computeSlots: Int
        /// The cost of a batch before any has finished (see ``BatchCostModel``).
        public var prior: BatchCostModel.Coefficients
        /// How many recent batches the cost model fits over (default 50).
        public var costWindow: Int

        /// Makes a configuration. Counts below 1 are raised to 1 and a negative delay counts as zero.
        public init(
            maxBatchSize: Int = 64, maxQueueDelay: Duration = .milliseconds(2), maxQueueLength: Int = 1024,
            computeSlots: Int = 1, prior: BatchCostModel.Coefficients, costWindow: Int = 50
        ) {
            self.maxBatchSize = max(maxBatchSize, 1)
            self.maxQueueDelay = max(maxQueueDelay, .zero)
            self.maxQueueLength = max(maxQueueLength, 1)
            self.computeSlots = max(computeSlots, 1)
            self.prior = prior
            self.costWindow = max(costWindow, 1)
        }

        /// A configuration from a feature's manifest settings.
        public init(_ settings: BatchingSettings, computeSlots: Int = 1, prior: BatchCostModel.Coefficients) {
            self.init(
                maxBatchSize: settings.maxBatchSize, maxQueueDelay: settings.maxQueueDelay,
                maxQueueLength: settings.maxQueueLength, computeSlots: computeSlots, prior: prior
            )
        }
    }

    /// What the runtime must do next.
    public enum Action: Sendable {
        /// Run these items now as one batch, in this order; call `batchFinished` when it ends.
        case dispatch([Item])
        /// Answer these items now with an error (overload or timeout), without computing them.
        case shed([Item], ShedReason)
        /// Call `tick(now:)` at this instant (always after the `now` of the call that returned it);
        /// replaces any earlier request.
        case scheduleTick(at: ContinuousClock.Instant)
    }

    /// Why items were shed (one type for every `Item`, see ``BatchShedReason``).
    public typealias ShedReason = BatchShedReason

    private struct Entry: Sendable {
        var item: Item
        var deadline: ContinuousClock.Instant
        var enqueuedAt: ContinuousClock.Instant
    }

    private struct InFlightBatch: Sendable {
        var rows: Int
        var expectedEnd: ContinuousClock.Instant
    }

    /// The weight of a new inter-arrival time in the moving average (1/8, as TCP's RTT estimate).
    private static var arrivalSmoothingDivisor: Int { 8 }

    /// The configuration in force.
    public let configuration: Configuration
    /// The cost model, refitted after every finished batch.
    public private(set) var costModel: BatchCostModel
    /// Whether ``beginShutdown(now:)`` has been called.
    public private(set) var isShuttingDown = false
    /// The smoothed interval between arrivals (`w`), or `nil` before the second arrival. Every arrival
    /// counts, including items shed at admission: the offered load is what matters. Each interval counts
    /// at most `max(maxQueueDelay, b)`: a longer gap argues against waiting no more strongly (on its own
    /// it already fails `w < b`), and the cap keeps one idle pause from hiding the burst that follows it.
    public private(set) var arrivalInterval: Duration?

    /// Queued entries live in `queue[head...]`; the prefix is consumed and compacted lazily.
    private var queue: [Entry] = []
    private var head = 0
    private var inFlight: [InFlightBatch] = []
    private var lastArrival: ContinuousClock.Instant?
    /// The tick the runtime was last asked for and has not reported yet.
    private var pendingTick: ContinuousClock.Instant?

    /// Makes an idle batcher.
    public init(configuration: Configuration) {
        self.configuration = configuration
        self.costModel = BatchCostModel(prior: configuration.prior, window: configuration.costWindow)
    }

    // MARK: Observability

    /// Items waiting for a batch (not counting those in flight).
    public var queuedCount: Int { queue.count - head }
    /// Batches dispatched and not yet finished.
    public var inFlightBatches: Int { inFlight.count }
    /// Nothing queued and nothing in flight: a shutdown drain is complete.
    public var isIdle: Bool { queuedCount == 0 && inFlight.isEmpty }
    /// The cost model's current estimate for a batch of `rows` rows.
    public func estimatedCost(rows: Int) -> Duration { costModel.estimate(rows: rows) }

    // MARK: Events

    /// An item arrives with its caller's deadline. It is shed at once if the batcher is shutting down,
    /// the queue is full, or the deadline cannot be met even by running it next; otherwise it is queued
    /// and, if a slot is free, a batch may go out now.
    public mutating func enqueue(
        _ item: Item, deadline: ContinuousClock.Instant, now: ContinuousClock.Instant
    ) -> [Action] {
        if isShuttingDown { return [.shed([item], .shuttingDown)] }
        noteArrival(now: now)
        if queuedCount >= configuration.maxQueueLength { return [.shed([item], .queueFull)] }
        let singleRow = estimatedCost(rows: 1)
        if deadline < earliestStart(now: now) + singleRow { return [.shed([item], .deadlineUnmeetable)] }

        queue.append(Entry(item: item, deadline: deadline, enqueuedAt: now))
        var actions: [Action] = []
        if hasFreeSlot {
            // The queue is short here (a free slot means it held fewer than maxBatchSize items).
            run(now: now, into: &actions)
        } else {
            // Every slot is busy and the rest of the queue was checked when the slots filled: only
            // this item's own lateness may need an earlier tick.
            requestTick(at: Self.lateAfter(deadline: deadline, singleRow: singleRow), into: &actions)
        }
        return actions
    }

    /// The runtime's timer fired: shed what became late, dispatch what stopped waiting.
    public mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        pendingTick = nil
        var actions: [Action] = []
        run(now: now, into: &actions)
        return actions
    }

    /// A dispatched batch of `rows` items ended (successfully or not) after computing for `duration`.
    /// Frees its slot, teaches the cost model (unless `recordCost` is false, e.g. for a batch that
    /// failed before doing the work), and dispatches what queued meanwhile.
    public mutating func batchFinished(
        rows: Int, duration: Duration, now: ContinuousClock.Instant, recordCost: Bool = true
    ) -> [Action] {
        // Batches are not identified, so free the one most likely to be this one: same size, earliest
        // expected end. This only steers lateness estimates; with one slot it is exact.
        if !inFlight.isEmpty {
            let sameSize = inFlight.indices.filter { inFlight[$0].rows == rows }
            let candidates = sameSize.isEmpty ? Array(inFlight.indices) : sameSize
            if let index = candidates.min(by: { inFlight[$0].expectedEnd < inFlight[$1].expectedEnd }) {
                inFlight.remove(at: index)
            }
        }
        if recordCost { costModel.record(rows: rows, duration: duration) }
        var actions: [Action] = []
        run(now: now, into: &actions)
        return actions
    }

    /// Teaches the cost model a measurement taken outside the batcher (for instance a warm-up call),
    /// without touching the queue or the slots.
    public mutating func recordCostSample(rows: Int, duration: Duration) {
        costModel.record(rows: rows, duration: duration)
    }

    /// Stops accepting items: later ``enqueue(_:deadline:now:)`` calls shed with
    /// ``BatchShedReason/shuttingDown``. Queued items are dispatched as slots allow, without waiting for
    /// company; keep reporting finished batches (and ticks) until ``isIdle``.
    public mutating func beginShutdown(now: ContinuousClock.Instant) -> [Action] {
        isShuttingDown = true
        var actions: [Action] = []
        run(now: now, into: &actions)
        return actions
    }

    /// When an item queued now would be answered, by the cost model: the rows already waiting go first (the queue
    /// is first in, first out), in full batches spread over the compute slots, then the batch that holds it; all
    /// after the first slot frees. An admission check before a request costs anything (its body read, its row
    /// validated): a deadline before this instant will not be met however the batches form.
    public func projectedFinish(now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        let batch = configuration.maxBatchSize
        let ahead = queuedCount
        let fullBatchesAhead = ahead / batch
        // Full batches ahead run `computeSlots` at a time; the item's own batch holds the remainder and the item.
        let rounds = fullBatchesAhead / configuration.computeSlots
        return earliestStart(now: now) + estimatedCost(rows: batch) * rounds
            + estimatedCost(rows: ahead % batch + 1)
    }

    // MARK: Decisions

    private var hasFreeSlot: Bool { inFlight.count < configuration.computeSlots }

    /// When a new batch could start: now if a slot is free, else the estimated end of the batch
    /// expected to finish first (or now, if that estimate has already passed).
    private func earliestStart(now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        // Plain loops here and below: this runs for every request, and key paths in generic code cost a runtime
        // lookup per call.
        guard !hasFreeSlot, var firstEnd = inFlight.first?.expectedEnd else { return now }
        for batch in inFlight where batch.expectedEnd < firstEnd { firstEnd = batch.expectedEnd }
        return max(now, firstEnd)
    }

    /// The first instant at which an item with this deadline can no longer make it, even run alone.
    private static func lateAfter(
        deadline: ContinuousClock.Instant, singleRow: Duration
    ) -> ContinuousClock.Instant {
        deadline - singleRow + .nanoseconds(1)
    }

    /// Sheds what is late, dispatches while slots are free and waiting does not pay, then asks for the
    /// next tick: the end of a wait, or the moment the first queued item turns late.
    private mutating func run(now: ContinuousClock.Instant, into actions: inout [Action]) {
        let singleRow = estimatedCost(rows: 1)
        var late: [Item] = []
        var dispatched: [Action] = []
        var waitEnd: ContinuousClock.Instant?

        if hasFreeSlot {
            _ = removeEntries(deadlineBefore: now + singleRow, into: &late)
            while hasFreeSlot, queuedCount > 0 {
                if let end = waitingEnd(now: now) {
                    waitEnd = end
                    break
                }
                let rows = batchLength(now: now)
                dispatched.append(.dispatch(popFront(rows)))
                inFlight.append(InFlightBatch(rows: rows, expectedEnd: now + estimatedCost(rows: rows)))
            }
        }

        var lateTick: ContinuousClock.Instant?
        if !hasFreeSlot, queuedCount > 0 {
            // All slots busy: whatever cannot make it after the first slot frees leaves now, not when
            // the running batch ends.
            let start = earliestStart(now: now)
            if let earliest = removeEntries(deadlineBefore: start + singleRow, into: &late) {
                lateTick = Self.lateAfter(deadline: earliest, singleRow: singleRow)
            }
        }

        if !late.isEmpty { actions.append(.shed(late, .deadlineUnmeetable)) }
        actions.append(contentsOf: dispatched)
        if let next = waitEnd ?? lateTick { requestTick(at: next, into: &actions) }
    }

    /// If the queued items should wait for company, the instant the wait should end; else `nil`.
    /// Requires a free slot and a non-empty queue.
    private func waitingEnd(now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        let count = queuedCount
        guard !isShuttingDown, count < configuration.maxBatchSize, count < configuration.maxQueueLength,
            let interval = arrivalInterval
        else { return nil }
        let perBatch = costModel.coefficients.perBatch
        // Waiting for one more costs the queued items count·w; not waiting costs about b.
        guard interval * count < perBatch else { return nil }

        var end = queue[head].enqueuedAt + configuration.maxQueueDelay
        end = min(end, queue[queue.count - 1].enqueuedAt + perBatch / count)
        // A batch one larger must still meet every queued deadline.
        var earliestDeadline = queue[head].deadline
        for index in (head + 1)..<queue.count where queue[index].deadline < earliestDeadline {
            earliestDeadline = queue[index].deadline
        }
        end = min(end, earliestDeadline - estimatedCost(rows: count + 1))
        return now < end ? end : nil
    }

    /// The longest FIFO prefix (at most maxBatchSize, at least 1) that finishes by its earliest deadline.
    private func batchLength(now: ContinuousClock.Instant) -> Int {
        let limit = min(queuedCount, configuration.maxBatchSize)
        var earliestDeadline = queue[head].deadline
        var rows = 1
        // The cost grows with n and the earliest deadline can only move closer, so the first n that
        // fails means every larger n fails too.
        while rows < limit {
            earliestDeadline = min(earliestDeadline, queue[head + rows].deadline)
            if now + estimatedCost(rows: rows + 1) > earliestDeadline { break }
            rows += 1
        }
        return rows
    }

    /// Removes the queued entries whose deadline is before `limit`, keeping the order of the rest;
    /// returns the earliest deadline left, if any.
    private mutating func removeEntries(
        deadlineBefore limit: ContinuousClock.Instant, into late: inout [Item]
    ) -> ContinuousClock.Instant? {
        var write = head
        var earliest: ContinuousClock.Instant?
        for read in head..<queue.count {
            let entry = queue[read]
            if entry.deadline < limit {
                late.append(entry.item)
            } else {
                if write != read { queue[write] = entry }
                write += 1
                earliest = min(earliest ?? entry.deadline, entry.deadline)
            }
        }
        queue.removeLast(queue.count - write)
        compactIfEmpty()
        return earliest
    }

    private mutating func popFront(_ count: Int) -> [Item] {
        var items: [Item] = []
        items.reserveCapacity(count)
        for index in head..<(head + count) { items.append(queue[index].item) }
        head += count
        if !compactIfEmpty(), head >= 64, head * 2 >= queue.count {
            queue.removeFirst(head)
            head = 0
        }
        return items
    }

    @discardableResult
    private mutating func compactIfEmpty() -> Bool {
        guard head == queue.count else { return false }
        queue.removeAll(keepingCapacity: true)
        head = 0
        return true
    }

    private mutating func noteArrival(now: ContinuousClock.Instant) {
        defer { lastArrival = now }
        guard let lastArrival else { return }
        let cap = max(configuration.maxQueueDelay, costModel.coefficients.perBatch)
        let gap = min(max(now - lastArrival, .zero), cap)
        if let interval = arrivalInterval {
            let divisor = Self.arrivalSmoothingDivisor
            arrivalInterval = (interval * (divisor - 1) + gap) / divisor
        } else {
            arrivalInterval = gap
        }
    }

    /// Asks for a tick unless an earlier one is already pending (that one will re-evaluate).
    private mutating func requestTick(at instant: ContinuousClock.Instant, into actions: inout [Action]) {
        if let pendingTick, pendingTick <= instant { return }
        pendingTick = instant
        actions.append(.scheduleTick(at: instant))
    }
}

extension AdaptiveBatcherStateMachine.Action: Equatable where Item: Equatable {}

/// Why a batcher answered items without computing them.
public enum BatchShedReason: Sendable, Hashable {
    /// The queue was at its limit (answer 503 with `Retry-After`).
    case queueFull
    /// The item could no longer finish by its deadline (answer as a timeout, 504).
    case deadlineUnmeetable
    /// The batcher is shutting down and accepts no new items (answer 503).
    case shuttingDown
}
