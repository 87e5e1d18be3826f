public import FreshlineCore
public import Hummingbird

/// Bearer tokens with scopes. Health endpoints and `/metrics` are open; predictions need `predict`; everything
/// else needs `admin` (reading feature configuration is allowed with either). With no tokens configured the
/// API is open.
public struct BearerAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let tokens: [TokenSpec]

    public init(tokens: [TokenSpec]) { self.tokens = tokens }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard !tokens.isEmpty else { return try await next(request, context) }
        let path = request.uri.path
        if path.hasPrefix("/healthz") || path.hasPrefix("/v2/health") || path == "/metrics" {
            return try await next(request, context)
        }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw APIError(.unauthorized, code: "unauthorized", "missing bearer token (Authorization: Bearer …)")
        }
        let presented = header.dropFirst("Bearer ".count)
        guard let token = tokens.first(where: { Self.constantTimeEqual($0.secret, presented) }) else {
            throw APIError(.unauthorized, code: "unauthorized", "unknown token")
        }
        let needed: Set<TokenSpec.Scope>
        if request.method == .post
            && (path.hasSuffix("/predict") || path.hasSuffix("/infer") || path.hasSuffix("/jobs"))
        {
            needed = [.predict]
        } else if path.hasPrefix("/v1/jobs/") && (request.method == .get || request.method == .delete) {
            // A job's id is its capability: whoever submitted it may read or cancel it.
            needed = [.predict, .admin]
        } else if request.method == .get && !path.hasSuffix("/advice")
            && (path.hasPrefix("/v1/features") || path.hasPrefix("/v2"))
        {
            needed = [.predict, .admin]
        } else {
            needed = [.admin]
        }
        guard !token.scopes.isDisjoint(with: needed) else {
            throw APIError(
                .forbidden, code: "forbidden",
                "token '\(token.name)' lacks the scope for this call (\(needed.map(\.rawValue).sorted().joined(separator: " or ")))"
            )
        }
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
