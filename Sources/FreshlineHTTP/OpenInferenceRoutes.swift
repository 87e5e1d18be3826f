internal import Foundation
internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON
internal import FreshlineRuntime
internal import HTTPTypes
internal import Hummingbird
internal import Logging

/// The Open Inference Protocol V2 (KServe, Triton, MLServer) for every model of the manifest, with JSON tensors
/// and the binary tensor data extension that Triton's clients use by default.
struct OpenInferenceRoutes {
    typealias Context = FreshlineRequestContext
    let runtime: ServingRuntime
    let maxBodyBytes: Int
    /// Real-time requests in flight, shared with `/v1` (`server.max_in_flight`).
    var inFlight: InFlightLimit? = nil

    func register(on routes: ScopedRoutes) {
        routes.client.get("/v2") { _, _ in
            JSONResponse.make(
                JSONValue.object([
                    "name": .string("freshline"), "version": .string(FreshlineVersion.current),
                    "extensions": .array([.string("binary_tensor_data")]),
                ]))
        }
        routes.open.get("/v2/health/live") { _, _ in HTTPResponse.Status.ok }
        routes.open.get("/v2/health/ready") { _, _ in runtime.isReady ? HTTPResponse.Status.ok : .serviceUnavailable }
        routes.client.get("/v2/models/:model/ready") { _, context in try ready(context) }
        routes.client.get("/v2/models/:model/versions/:version/ready") { _, context in try ready(context) }
        routes.client.get("/v2/models/:model") { _, context in try metadata(context) }
        routes.client.get("/v2/models/:model/versions/:version") { _, context in try metadata(context) }
        routes.predict.post("/v2/models/:model/infer") { request, context in try await infer(request, context) }
        routes.predict.post("/v2/models/:model/versions/:version/infer") { request, context in
            try await infer(request, context)
        }
    }

    private func model(_ context: Context) throws -> ServingModel {
        let name = context.parameters.get("model") ?? ""
        guard let model = runtime.models[name] else { throw V2Error(.notFound, "model '\(name)' is not loaded") }
        if let version = context.parameters.get("version"), version != model.metadata.version, version != "1" {
            throw V2Error(
                .notFound, "model '\(name)' has no version '\(version)' (version: \(model.metadata.version))")
        }
        return model
    }

    private func ready(_ context: Context) throws -> HTTPResponse.Status {
        _ = try model(context)
        return runtime.isReady ? .ok : .serviceUnavailable
    }

    private func metadata(_ context: Context) throws -> Response {
        let m = try model(context)
        func tensor(_ v: ModelMetadata.ValueInfo) -> JSONValue {
            .object([
                "name": .string(v.name), "datatype": .string(OpenInferenceCoding.datatype(v.elementType, v.type)),
                "shape": .array((v.shape ?? [-1]).map { .integer(Int64($0)) }),
            ])
        }
        return JSONResponse.make(
            JSONValue.object([
                "name": .string(m.spec.name), "versions": .array([.string(m.metadata.version)]),
                "platform": .string("onnx"),
                "inputs": .array(m.metadata.inputs.map(tensor)),
                "outputs": .array(m.metadata.outputs.map(tensor)),
            ]))
    }

    struct InferBody {
        struct Input {
            var name: String
            var shape: [Int]
            var datatype: String
            var parameters: [String: JSONValue]?
            var data: JSONValue?
        }
        struct Output {
            var name: String
            var parameters: [String: JSONValue]?
        }
        var id: String?
        var parameters: [String: JSONValue]?
        var inputs: [Input]
        var outputs: [Output]?

        /// Reads an inference request from parsed JSON; errors name the field.
        init(_ json: JSONValue) throws {
            guard case .object(let o) = json else { throw V2Error(.badRequest, "the request must be a JSON object") }
            if case .string(let id)? = o["id"] { self.id = id }
            parameters = Self.object(o["parameters"])
            guard case .array(let inputs)? = o["inputs"] else { throw V2Error(.badRequest, "'inputs' is required") }
            self.inputs = try inputs.enumerated().map { index, item in
                guard case .object(let i) = item, case .string(let name)? = i["name"],
                    case .string(let datatype)? = i["datatype"],
                    case .array(let dims)? = i["shape"]
                else { throw V2Error(.badRequest, "inputs[\(index)] needs name, shape and datatype") }
                let shape = try dims.map { d -> Int in
                    guard case .integer(let v) = d, v >= 0, v <= Int64(Int32.max) else {
                        throw V2Error(.badRequest, "inputs[\(index)].shape must hold non-negative integers")
                    }
                    return Int(v)
                }
                return Input(
                    name: name, shape: shape, datatype: datatype, parameters: Self.object(i["parameters"]),
                    data: i["data"])
            }
            if case .array(let outputs)? = o["outputs"] {
                self.outputs = try outputs.enumerated().map { index, item in
                    guard case .object(let out) = item, case .string(let name)? = out["name"] else {
                        throw V2Error(.badRequest, "outputs[\(index)] needs a name")
                    }
                    return Output(name: name, parameters: Self.object(out["parameters"]))
                }
            }
        }

        static func object(_ value: JSONValue?) -> [String: JSONValue]? {
            if case .object(let o)? = value { o } else { nil }
        }
    }

    private func infer(_ request: Request, _ context: Context) async throws -> Response {
        let m = try model(context)
        do { try inFlight?.enter() } catch { throw V2Error(.serviceUnavailable, error.message, retryAfter: 1) }
        defer { inFlight?.leave() }
        var request = request
        let buffer: ByteBuffer
        if let encoding = request.headers[.contentEncoding], encoding.lowercased() != "identity" {
            throw V2Error(
                .unsupportedMediaType, "Content-Encoding '\(encoding)' is not supported: send the body uncompressed")
        }
        if let length = request.headers[.contentLength], let declared = Int(length), declared > maxBodyBytes {
            throw V2Error(.contentTooLarge, "the request body exceeds \(maxBodyBytes) bytes")
        }
        do { buffer = try await request.collectBody(upTo: maxBodyBytes) } catch {
            throw V2Error(.contentTooLarge, "the request body exceeds \(maxBodyBytes) bytes")
        }
        let bytes = Data(buffer.readableBytesView)
        // Binary tensor data extension: a JSON header of the given length, then the raw tensors in input order.
        var jsonLength = bytes.count
        if let header = request.headers[HTTPField.Name("Inference-Header-Content-Length")!] {
            guard let n = Int(header), n >= 0, n <= bytes.count else {
                throw V2Error(.badRequest, "invalid Inference-Header-Content-Length")
            }
            jsonLength = n
        }
        let body: InferBody
        do {
            body = try InferBody(try JSONValue.parse(bytes.prefix(jsonLength)))
        } catch let error as V2Error {
            throw error
        } catch {
            throw V2Error(.badRequest, "the request is not a valid inference request: \(error)")
        }
        var binaryOffset = jsonLength
        var feeds: [String: Tensor] = [:]
        for input in body.inputs {
            guard let info = m.metadata.inputs.first(where: { $0.name == input.name }) else {
                throw V2Error(.badRequest, "model '\(m.spec.name)' has no input '\(input.name)'")
            }
            guard input.shape.allSatisfy({ $0 >= 0 }) else {
                throw V2Error(.badRequest, "input '\(input.name)': negative dimension in shape")
            }
            let data: TensorData
            if let sizeValue = input.parameters?["binary_data_size"] {
                // Compared with what is left of the body before any addition: a size near Int.max must not overflow.
                guard case .integer(let size) = sizeValue, size >= 0, size <= Int64(bytes.count - binaryOffset) else {
                    throw V2Error(
                        .badRequest,
                        "input '\(input.name)': binary_data_size must be an integer from 0 to the \(bytes.count - binaryOffset) bytes left in the body"
                    )
                }
                let slice = bytes[(bytes.startIndex + binaryOffset)..<(bytes.startIndex + binaryOffset + Int(size))]
                binaryOffset += Int(size)
                data = try OpenInferenceCoding.decodeBinary(Data(slice), datatype: input.datatype, name: input.name)
            } else {
                guard let json = input.data else { throw V2Error(.badRequest, "input '\(input.name)' has no data") }
                var flat: [JSONValue] = []
                OpenInferenceCoding.flatten(json, into: &flat)
                guard let type = OpenInferenceCoding.elementType(input.datatype) else {
                    throw V2Error(.badRequest, "input '\(input.name)': datatype \(input.datatype) is not supported")
                }
                do { data = try TensorData(json: flat, type: type, input: input.name) } catch let e as EngineError {
                    throw V2Error(.badRequest, e.message)
                }
            }
            guard data.elementType == info.elementType else {
                throw V2Error(
                    .badRequest,
                    "input '\(input.name)' must be \(OpenInferenceCoding.datatype(info.elementType, info.type)), got \(input.datatype)"
                )
            }
            do { feeds[input.name] = try Tensor(shape: input.shape, data: data) } catch {
                throw V2Error(.badRequest, "input '\(input.name)': \(error.message)")
            }
        }
        let outputs: [String: Value]
        let deadline = try FeatureRoutes.timeout(request).map { context.arrival + $0 }
        let answeredVersion: String
        do {
            (outputs, answeredVersion) = try await runtime.infer(
                model: m.spec.name, feeds: feeds, deadline: deadline)
        } catch {
            let e = PredictionError(modelCall: error)
            switch e.code {
            case .badRequest: throw V2Error(.badRequest, e.message)
            case .notFound: throw V2Error(.notFound, e.message)
            case .overloaded, .unavailable, .storeUnavailable:
                throw V2Error(.serviceUnavailable, e.message, retryAfter: e.retryAfter ?? 1)
            case .timeout: throw V2Error(.gatewayTimeout, e.message)
            default:
                // The model's or engine's fault: the details go to the log, not to the caller.
                context.logger.error("model '\(m.spec.name)' failed: \(e.message)")
                throw V2Error(.internalServerError, "model '\(m.spec.name)' failed; the server log has the details")
            }
        }
        let requested =
            body.outputs ?? m.metadata.outputs.map { InferBody.Output(name: $0.name, parameters: nil) }
        let binaryDefault = body.parameters?["binary_data_output"] == .bool(true)
        var items: [JSONValue] = []
        var binaryParts: [Data] = []
        for output in requested {
            guard let value = outputs[output.name] else {
                throw V2Error(.badRequest, "model '\(m.spec.name)' has no output '\(output.name)'")
            }
            let (tensor, datatype) = try OpenInferenceCoding.tensorForm(value)
            var item: [String: JSONValue] = [
                "name": .string(output.name), "datatype": .string(datatype),
                "shape": .array(tensor.shape.map { .integer(Int64($0)) }),
            ]
            let wantsBinary =
                output.parameters?["binary_data"] == .bool(true)
                || (output.parameters?["binary_data"] == nil && binaryDefault)
            if wantsBinary {
                let part = OpenInferenceCoding.encodeBinary(tensor.data)
                item["parameters"] = .object(["binary_data_size": .integer(Int64(part.count))])
                binaryParts.append(part)
            } else {
                item["data"] = .array(tensor.data.jsonValues)
            }
            items.append(.object(item))
        }
        var response: [String: JSONValue] = [
            "model_name": .string(m.spec.name), "model_version": .string(answeredVersion),
            "outputs": .array(items),
        ]
        response["id"] = .string(body.id ?? "")
        let json = JSONValue.object(response).serialized()
        var headers = HTTPFields()
        if binaryParts.isEmpty {
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: json)))
        }
        headers[.contentType] = "application/octet-stream"
        headers[HTTPField.Name("Inference-Header-Content-Length")!] = String(json.count)
        var out = ByteBuffer(bytes: json)
        for part in binaryParts { out.writeBytes(part) }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: out))
    }
}

/// Errors of the /v2 API, in its own format: `{"error": "..."}`.
struct V2Error: HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String
    let retryAfter: Int?
    init(_ status: HTTPResponse.Status, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.retryAfter = retryAfter
    }
    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try JSONResponse.make(["error": message], status: status)
        if let retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        return response
    }
}

/// The server's version string.
public enum FreshlineVersion {
    public static let current = "0.1.0"
}
