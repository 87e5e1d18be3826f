internal import Foundation
internal import FreshlineEngine
internal import FreshlineJSON
internal import FreshlineRuntime
public import Hummingbird

/// An error answered as `{"error": {"code": ..., "message": ...}}` with a 4xx or 5xx status.
public struct APIError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var retryAfter: Int?

    public init(_ status: HTTPResponse.Status, code: String, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body: [String: [String: String]] = ["error": ["code": code, "message": message]]
        var response = try JSONResponse.make(body, status: status)
        if let retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        return response
    }

    static func badRequest(_ message: String) -> APIError { APIError(.badRequest, code: "bad_request", message) }
    static func notFound(_ message: String) -> APIError { APIError(.notFound, code: "not_found", message) }

    /// The HTTP form of a runtime error.
    init(_ error: PredictionError) {
        switch error.code {
        case .badRequest: self.init(.badRequest, code: "bad_request", error.message)
        case .notFound: self.init(.notFound, code: "not_found", error.message)
        case .unknownKey: self.init(.notFound, code: "unknown_key", error.message)
        case .stale: self.init(.serviceUnavailable, code: "stale", error.message, retryAfter: error.retryAfter ?? 60)
        case .overloaded:
            self.init(.serviceUnavailable, code: "overloaded", error.message, retryAfter: error.retryAfter ?? 1)
        case .timeout: self.init(.gatewayTimeout, code: "timeout", error.message)
        case .unavailable:
            self.init(.serviceUnavailable, code: "unavailable", error.message, retryAfter: error.retryAfter ?? 1)
        case .storeUnavailable:
            self.init(.serviceUnavailable, code: "store_unavailable", error.message, retryAfter: error.retryAfter ?? 1)
        case .internalError: self.init(.internalServerError, code: "internal_error", error.message)
        default: self.init(.internalServerError, code: "model_failed", error.message)
        }
    }
}

/// JSON bodies for responses.
enum JSONResponse {
    /// A JSON value written by the engine's byte-level writer (the request path's responses).
    static func make(bytes: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func make(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(
            status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: value.serialized())))
    }

    static func make<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws
        -> Response
    {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
