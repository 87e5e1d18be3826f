internal import AsyncHTTPClient
internal import Foundation
internal import FreshlineCore
internal import FreshlineJSON
internal import NIOCore
internal import NIOHTTP1

/// A client of Prometheus' HTTP query API (`/api/v1/query` and `/api/v1/query_range`): one request per query, each
/// with its own short-lived HTTP client. Answers are `{"status":"success","data":{"resultType":"vector"|"matrix",
/// "result":[…]}}`, values `[unixTime, "number"]`; the numbers are returned as read (`NaN`, `+Inf` included), the
/// caller range-checks them.
public struct PrometheusClient: Sendable {
    /// The server's address, `http://host:9090` (a path prefix is kept: `http://host/prometheus`).
    public var baseURL: String
    /// The bound of one query.
    public var timeout: Duration = .seconds(30)
    /// The largest answer read.
    public var maxResponseBytes = 64 << 20

    /// One series of an answer: its labels and its points, oldest first.
    public struct Series: Sendable, Equatable {
        public var labels: [String: String]
        public var points: [Point]
    }

    /// One value of a series.
    public struct Point: Sendable, Equatable {
        public var time: Double
        public var value: Double
    }

    /// Creates a client; `baseURL` must be an `http` or `https` URL.
    public init(baseURL: String) throws(PrometheusError) {
        guard let url = URL(string: baseURL), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", url.host?.isEmpty == false
        else { throw PrometheusError(message: "--prometheus '\(baseURL)': not an http(s) URL") }
        var text = baseURL
        while text.hasSuffix("/") { text.removeLast() }
        self.baseURL = text
    }

    /// An instant query at `time`.
    public func query(_ promql: String, at time: Double) async throws(PrometheusError) -> [Series] {
        try await get("/api/v1/query", ["query": promql, "time": Self.timeText(time)], promql: promql)
    }

    /// A range query from `start` to `end` every `step` seconds.
    public func queryRange(_ promql: String, start: Double, end: Double, step: Double) async throws(PrometheusError)
        -> [Series]
    {
        try await get(
            "/api/v1/query_range",
            [
                "query": promql, "start": Self.timeText(start), "end": Self.timeText(end),
                "step": Self.timeText(step),
            ], promql: promql)
    }

    static func timeText(_ t: Double) -> String { String(format: "%.3f", t) }

    /// `application/x-www-form-urlencoded` escaping: everything but unreserved characters (so that `+` in PromQL is
    /// not read as a space).
    static func escape(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default: out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    func get(_ path: String, _ parameters: [String: String], promql: String) async throws(PrometheusError)
        -> [Series]
    {
        let query = parameters.keys.sorted().map { "\($0)=\(Self.escape(parameters[$0]!))" }.joined(separator: "&")
        let url = baseURL + path + "?" + query
        let where_ = "Prometheus \(baseURL), query \(promql)"
        let limit = TimeAmount.nanoseconds(Int64(timeout.seconds * 1e9))
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: min(limit, .seconds(10)), read: limit)
        configuration.redirectConfiguration = .disallow
        let maxBytes = maxResponseBytes
        let answer: (status: UInt, body: [UInt8])
        do {
            answer = try await HTTPClient.withHTTPClient(configuration: configuration) { client in
                var request = HTTPClientRequest(url: url)
                request.headers.add(name: "Accept", value: "application/json")
                let response = try await client.execute(request, timeout: limit)
                let body = try await response.body.collect(upTo: maxBytes)
                return (response.status.code, Array(body.readableBytesView))
            }
        } catch {
            throw PrometheusError(message: "\(where_): cannot query: \(error)")
        }
        let json: JSONValue
        do { json = try JSONValue.parse(answer.body) } catch {
            throw PrometheusError(message: "\(where_): HTTP \(answer.status), not a JSON answer")
        }
        guard case .object(let root) = json else {
            throw PrometheusError(message: "\(where_): HTTP \(answer.status), not a JSON object")
        }
        guard case .string("success")? = root["status"] else {
            var detail = ""
            if case .string(let e)? = root["error"] { detail = ": \(e.prefix(300))" }
            throw PrometheusError(message: "\(where_): HTTP \(answer.status), the query failed\(detail)")
        }
        return try Self.series(root["data"], where: where_)
    }

    /// The series of a `data` object (`vector`, `matrix` or `scalar`).
    static func series(_ data: JSONValue?, where place: String) throws(PrometheusError) -> [Series] {
        guard case .object(let data)? = data, case .string(let type)? = data["resultType"] else {
            throw PrometheusError(message: "\(place): the answer has no data.resultType")
        }
        func point(_ v: JSONValue?) throws(PrometheusError) -> Point {
            guard case .array(let pair)? = v, pair.count == 2, let t = pair[0].numberValue, t.isFinite,
                case .string(let text) = pair[1], let value = Self.number(text)
            else { throw PrometheusError(message: "\(place): a value is not [time, \"number\"]") }
            return Point(time: t, value: value)
        }
        switch type {
        case "scalar": return [Series(labels: [:], points: [try point(data["result"])])]
        case "vector", "matrix":
            guard case .array(let result)? = data["result"] else {
                throw PrometheusError(message: "\(place): the answer has no data.result")
            }
            var out: [Series] = []
            for item in result {
                guard case .object(let o) = item else {
                    throw PrometheusError(message: "\(place): a result is not an object")
                }
                var labels: [String: String] = [:]
                if case .object(let metric)? = o["metric"] {
                    for (k, v) in metric { if case .string(let s) = v { labels[k] = s } }
                }
                var points: [Point] = []
                if type == "vector" {
                    points = [try point(o["value"])]
                } else {
                    guard case .array(let values)? = o["values"] else {
                        throw PrometheusError(message: "\(place): a matrix result has no values")
                    }
                    for v in values { points.append(try point(v)) }
                }
                out.append(Series(labels: labels, points: points))
            }
            return out
        default:
            throw PrometheusError(message: "\(place): unexpected resultType '\(type)'")
        }
    }

    /// A sample value's text (`"12.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`).
    static func number(_ text: String) -> Double? {
        switch text {
        case "NaN": return .nan
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        default: return Double(text)
        }
    }
}

/// Why numbers could not be read from Prometheus: the server, the query and what went wrong.
public struct PrometheusError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(message: String) {
        self.message = message
    }
}

extension JSONValue {
    fileprivate var numberValue: Double? {
        switch self {
        case .integer(let i): Double(i)
        case .number(let d): d
        default: nil
        }
    }
}
