public import FreshlineCore
public import Hummingbird

/// The request context of every Freshline route: Hummingbird's core storage, the token the request presented
/// (set by `RequireAccess` once it has checked it) and the instant the request arrived, which deadlines count from.
public struct FreshlineRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The token that authorized the request; `nil` on open routes and when the manifest configures no tokens.
    public var token: TokenSpec?
    /// When the server began handling the request (its head was read): a request's latency budget and
    /// `X-Freshline-Timeout` count from here, so time spent before the handler runs is not free.
    public let arrival: ContinuousClock.Instant
    /// The connection the request came on (its channel's identity), for per-connection state (`RefusalPacer`).
    public let connection: ObjectIdentifier

    public init(source: Source) {
        coreContext = .init(source: source)
        arrival = .now
        connection = ObjectIdentifier(source.channel)
    }

    /// Who is asking, for per-caller state (idempotency keys, quotas): the token's name, or `""` on an open API.
    public var caller: String { token?.name ?? "" }
}

/// Who may call a route. Each route is registered in the group of its access level, so the route itself decides:
/// there is no path matching that a trailing slash, a double slash or a percent-encoded segment could get past.
public enum Access: String, Sendable, CaseIterable {
    /// Health and metrics: no token.
    case open
    /// Asking for predictions: `predict`.
    case predict
    /// Reading what a client needs (feature contracts, /v2 metadata) or a job it holds the id of: `predict` or
    /// `admin`.
    case client
    /// Runs, snapshots, listings, advice, redelivery: `admin`.
    case admin

    /// The scopes any one of which admits a token; `nil` for open routes.
    public var scopes: Set<TokenSpec.Scope>? {
        switch self {
        case .open: nil
        case .predict: [.predict]
        case .client: [.predict, .admin]
        case .admin: [.admin]
        }
    }
}

/// Checks the bearer token against the route's access level (401 without a known token, 403 without the scope)
/// and records the token in the context. With no tokens configured the API is open.
struct RequireAccess: RouterMiddleware {
    typealias Context = FreshlineRequestContext
    let tokens: [TokenSpec]
    let access: Access

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard let needed = access.scopes, !tokens.isEmpty else { return try await next(request, context) }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw APIError(.unauthorized, code: "unauthorized", "missing bearer token (Authorization: Bearer …)")
        }
        let presented = header.dropFirst("Bearer ".count)
        guard let token = tokens.first(where: { Self.constantTimeEqual($0.secret, presented) }) else {
            throw APIError(.unauthorized, code: "unauthorized", "unknown token")
        }
        guard !token.scopes.isDisjoint(with: needed) else {
            throw APIError(
                .forbidden, code: "forbidden",
                "token '\(token.name)' lacks the scope for this call (\(needed.map(\.rawValue).sorted().joined(separator: " or ")))"
            )
        }
        var context = context
        context.token = token
        return try await next(request, context)
    }

    /// Compares without an early exit, so response time does not reveal how much of a token matched.
    static func constantTimeEqual(_ a: String, _ b: Substring) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(truncatingIfNeeded: x.count ^ y.count)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }
}

/// The router's groups, one per access level: routes are registered on the group that says who may call them.
struct ScopedRoutes {
    let open: RouterGroup<FreshlineRequestContext>
    let predict: RouterGroup<FreshlineRequestContext>
    let client: RouterGroup<FreshlineRequestContext>
    let admin: RouterGroup<FreshlineRequestContext>

    /// `pacer`: overload refusals on the prediction routes are paced per connection (`RefusalPacing`).
    init(_ router: Router<FreshlineRequestContext>, tokens: [TokenSpec], pacer: RefusalPacer = RefusalPacer()) {
        open = router.group()
        predict = router.group().add(middleware: RequireAccess(tokens: tokens, access: .predict))
            .add(middleware: RefusalPacing(pacer: pacer))
        client = router.group().add(middleware: RequireAccess(tokens: tokens, access: .client))
        admin = router.group().add(middleware: RequireAccess(tokens: tokens, access: .admin))
    }
}
