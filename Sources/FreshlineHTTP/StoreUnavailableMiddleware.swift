internal import FreshlineCore
internal import FreshlineRuntime
internal import Hummingbird

/// Answers a store outage, wherever a route meets it, with `503 Service Unavailable` and `Retry-After`: on `/v1`
/// `{"error": {"code": "store_unavailable", "message": …}}`, on `/v2` the Open Inference Protocol's
/// `{"error": "…"}`. Without it the error would be a 500.
///
/// The message stays generic: the reason (a host, a port, a server message) is for the server's log, where the
/// store writes it, and for readiness.
struct StoreUnavailableMiddleware: RouterMiddleware {
    typealias Context = FreshlineRequestContext

    /// The message clients get.
    static let message = "the store is unavailable; try again later"

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as StoreUnavailableError {
            let retryAfter = StoreUnavailableError.retryAfterSeconds(error)
            if request.uri.path.hasPrefix("/v2/") || request.uri.path == "/v2" {
                throw V2Error(.serviceUnavailable, Self.message, retryAfter: retryAfter)
            }
            throw APIError(.serviceUnavailable, code: "store_unavailable", Self.message, retryAfter: retryAfter)
        }
    }
}
