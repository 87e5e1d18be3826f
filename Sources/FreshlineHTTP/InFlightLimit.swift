internal import HTTPTypes

/// Bounds the real-time prediction requests (`POST …/predict` answered now, `/v2/…/infer`) the server works on at
/// once (`server.max_in_flight`); one over the bound is refused at once — 503 `overloaded` with `Retry-After`,
/// before its body is read. Async submissions and `Prefer: wait` are not counted: a client waiting for a job must not
/// hold a place that real-time callers need.
///
/// Why a bound on concurrency and not only on the batcher's queue: under overload most of a request's wait is not in
/// the batcher but in the hops between NIO and the cooperative thread pool (the handler, then the answer after
/// compute), which every request in flight shares. With 640 connections on 2 cores, requests the batcher admitted
/// were answered after their 5 ms deadline (bench/RESULTS.md, overload); bounding the requests in flight bounds
/// those queues, so what is admitted is answered in time and the rest is refused cheaply.
final class InFlightLimit: Sendable {
    private let count: BoundedCounter
    var limit: Int { count.limit }

    init(limit: Int) { count = BoundedCounter(limit: limit) }

    /// Takes a place, or throws the 503 when all `limit` are taken. Call `leave()` when the request is answered.
    func enter() throws(APIError) {
        guard count.enter() else {
            throw APIError(
                .serviceUnavailable, code: "overloaded",
                "the server is answering its limit of \(limit) real-time requests (server.max_in_flight); try again "
                    + "shortly", retryAfter: 1)
        }
    }

    func leave() { count.leave() }

    /// Requests in flight now.
    var current: Int { count.current }
}
