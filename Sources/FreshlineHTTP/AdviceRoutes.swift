internal import Foundation
internal import FreshlineCore
internal import FreshlineRuntime
internal import HTTPTypes
internal import Hummingbird

/// The advisor's API: `GET /v1/advice` for every feature, `GET /v1/features/{name}/advice` for one, as JSON
/// (default), `?format=html` (the self-contained report), `markdown` or `table`; `?what_if=batch:6h,async`
/// adds replays. Needs the `admin` scope.
struct AdviceRoutes {
    typealias Context = FreshlineRequestContext
    let runtime: ServingRuntime

    func register(on routes: ScopedRoutes) {
        routes.admin.get("/v1/advice") { request, _ in try await advice(request, feature: nil) }
        routes.admin.get("/v1/features/:name/advice") { request, context in
            let name = context.parameters.get("name") ?? ""
            guard runtime.features[name] != nil else {
                throw APIError.notFound(
                    "no feature named '\(name)' (features: \(runtime.features.keys.sorted().joined(separator: ", ")))"
                )
            }
            return try await advice(request, feature: name)
        }
    }

    private func advice(_ request: Request, feature: String?) async throws -> Response {
        guard let service = runtime.advice else {
            throw APIError(.conflict, code: "no_request_log", "the advisor needs the request log (a store)")
        }
        let query = request.uri.queryParameters
        let formatText = query.get("format") ?? "json"
        guard let format = AdviceText.Format(rawValue: formatText) else {
            throw APIError.badRequest("format: '\(formatText)' is not one of json, html, markdown, table")
        }
        var scenarios: [WhatIfScenario] = []
        for text in (query.get("what_if") ?? "").split(separator: ",") where !text.isEmpty {
            guard let scenario = WhatIfScenario(parsing: String(text)) else {
                throw APIError.badRequest(
                    "what_if: '\(text)' is not a scenario (realtime, async, batch:6h, hybrid:24h)")
            }
            scenarios.append(scenario)
        }
        let names = feature.map { [$0] }
        let whatIf = Dictionary(
            uniqueKeysWithValues: (names ?? runtime.features.keys.sorted()).map { ($0, scenarios) })
        let report = try await service.report(features: names, whatIf: whatIf)
        let text: String
        if format == .json, let feature, let one = report.features.first(where: { $0.feature == feature }) {
            text = try AdviceText.json(one)
        } else {
            text = try AdviceText.render(report, format: format)
        }
        var headers = HTTPFields()
        headers[.contentType] =
            switch format {
            case .html: "text/html; charset=utf-8"
            case .markdown: "text/markdown; charset=utf-8"
            case .json: "application/json"
            default: "text/plain; charset=utf-8"
            }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
