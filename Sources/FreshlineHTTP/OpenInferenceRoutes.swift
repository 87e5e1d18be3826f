internal import Foundation
internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineRuntime
internal import Hummingbird
internal import HTTPTypes

/// The Open Inference Protocol V2 (KServe, Triton, MLServer) for every model of the manifest, with JSON tensors
/// and the binary tensor data extension that Triton's clients use by default.
struct OpenInferenceRoutes<Context: RequestContext> {
    let runtime: ServingRuntime
    let maxBodyBytes: Int

    func register(on router: Router<Context>) {
        router.get("/v2") { _, _ in
            try JSONResponse.make(JSONValue.object([
                "name": .string("freshline"), "version": .string(FreshlineVersion.current),
                "extensions": .array([.string("binary_tensor_data")]),
            ]))
        }
        router.get("/v2/health/live") { _, _ in HTTPResponse.Status.ok }
        router.get("/v2/health/ready") { _, _ in runtime.isReady ? HTTPResponse.Status.ok : .serviceUnavailable }
        router.get("/v2/models/:model/ready") { _, context in try ready(context) }
        router.get("/v2/models/:model/versions/:version/ready") { _, context in try ready(context) }
        router.get("/v2/models/:model") { _, context in try metadata(context) }
        router.get("/v2/models/:model/versions/:version") { _, context in try metadata(context) }
        router.post("/v2/models/:model/infer") { request, context in try await infer(request, context) }
        router.post("/v2/models/:model/versions/:version/infer") { request, context in try await infer(request, context) }
    }

    private func model(_ context: Context) throws -> ServingModel {
        let name = context.parameters.get("model") ?? ""
        guard let model = runtime.models[name] else { throw V2Error(.notFound, "model '\(name)' is not loaded") }
        if let version = context.parameters.get("version"), version != model.model.metadata.version, version != "1" {
            throw V2Error(.notFound, "model '\(name)' has no version '\(version)' (version: \(model.model.metadata.version))")
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
                "name": .string(v.name), "datatype": .string(Self.datatype(v.elementType, v.type)),
                "shape": .array((v.shape ?? [-1]).map { .integer(Int64($0)) }),
            ])
        }
        return try JSONResponse.make(JSONValue.object([
            "name": .string(m.spec.name), "versions": .array([.string(m.model.metadata.version)]), "platform": .string("onnx"),
            "inputs": .array(m.model.metadata.inputs.map(tensor)), "outputs": .array(m.model.metadata.outputs.map(tensor)),
        ]))
    }

    struct InferBody: Decodable {
        struct Input: Decodable {
            var name: String
            var shape: [Int]
            var datatype: String
            var parameters: [String: JSONValue]?
            var data: JSONValue?
        }
        struct Output: Decodable {
            var name: String
            var parameters: [String: JSONValue]?
        }
        var id: String?
        var parameters: [String: JSONValue]?
        var inputs: [Input]
        var outputs: [Output]?
    }

    private func infer(_ request: Request, _ context: Context) async throws -> Response {
        let m = try model(context)
        var request = request
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: maxBodyBytes) } catch {
            throw V2Error(.contentTooLarge, "the request body exceeds \(maxBodyBytes) bytes")
        }
        let bytes = Data(buffer.readableBytesView)
        // Binary tensor data extension: a JSON header of the given length, then the raw tensors in input order.
        var jsonLength = bytes.count
        if let header = request.headers[HTTPField.Name("Inference-Header-Content-Length")!] {
            guard let n = Int(header), n >= 0, n <= bytes.count else { throw V2Error(.badRequest, "invalid Inference-Header-Content-Length") }
            jsonLength = n
        }
        let body: InferBody
        do { body = try JSONDecoder().decode(InferBody.self, from: bytes.prefix(jsonLength)) } catch {
            throw V2Error(.badRequest, "the request is not a valid inference request: \(Self.describe(error))")
        }
        var binaryOffset = jsonLength
        var feeds: [String: Tensor] = [:]
        for input in body.inputs {
            guard let info = m.model.metadata.inputs.first(where: { $0.name == input.name }) else {
                throw V2Error(.badRequest, "model '\(m.spec.name)' has no input '\(input.name)'")
            }
            guard input.shape.allSatisfy({ $0 >= 0 }) else { throw V2Error(.badRequest, "input '\(input.name)': negative dimension in shape") }
            let data: TensorData
            if case .integer(let size)? = input.parameters?["binary_data_size"] {
                guard size >= 0, binaryOffset + Int(size) <= bytes.count else {
                    throw V2Error(.badRequest, "input '\(input.name)': binary_data_size runs past the body")
                }
                let slice = bytes[(bytes.startIndex + binaryOffset)..<(bytes.startIndex + binaryOffset + Int(size))]
                binaryOffset += Int(size)
                data = try Self.decodeBinary(Data(slice), datatype: input.datatype, name: input.name)
            } else {
                guard let json = input.data else { throw V2Error(.badRequest, "input '\(input.name)' has no data") }
                var flat: [JSONValue] = []
                Self.flatten(json, into: &flat)
                guard let type = Self.elementType(input.datatype) else {
                    throw V2Error(.badRequest, "input '\(input.name)': datatype \(input.datatype) is not supported")
                }
                do { data = try TensorData(json: flat, type: type, input: input.name) } catch let e as EngineError {
                    throw V2Error(.badRequest, e.message)
                }
            }
            guard data.elementType == info.elementType else {
                throw V2Error(.badRequest, "input '\(input.name)' must be \(Self.datatype(info.elementType, info.type)), got \(input.datatype)")
            }
            do { feeds[input.name] = try Tensor(shape: input.shape, data: data) } catch {
                throw V2Error(.badRequest, "input '\(input.name)': \(error.message)")
            }
        }
        let outputs: [String: Value]
        do { outputs = try await runtime.infer(model: m.spec.name, feeds: feeds) } catch {
            let e = error as? PredictionError ?? PredictionError(.modelFailed, "\(error)")
            throw V2Error(e.code == .badRequest ? .badRequest : e.code == .notFound ? .notFound : .internalServerError, e.message)
        }
        let requested = body.outputs ?? m.model.metadata.outputs.map { InferBody.Output(name: $0.name, parameters: nil) }
        let binaryDefault = body.parameters?["binary_data_output"] == .bool(true)
        var items: [JSONValue] = []
        var binaryParts: [Data] = []
        for output in requested {
            guard let value = outputs[output.name] else { throw V2Error(.badRequest, "model '\(m.spec.name)' has no output '\(output.name)'") }
            let (tensor, datatype) = try Self.tensorForm(value)
            var item: [String: JSONValue] = [
                "name": .string(output.name), "datatype": .string(datatype), "shape": .array(tensor.shape.map { .integer(Int64($0)) }),
            ]
            let wantsBinary = output.parameters?["binary_data"] == .bool(true) || (output.parameters?["binary_data"] == nil && binaryDefault)
            if wantsBinary {
                let part = Self.encodeBinary(tensor.data)
                item["parameters"] = .object(["binary_data_size": .integer(Int64(part.count))])
                binaryParts.append(part)
            } else {
                item["data"] = .array(tensor.data.jsonValues)
            }
            items.append(.object(item))
        }
        var response: [String: JSONValue] = [
            "model_name": .string(m.spec.name), "model_version": .string(m.model.metadata.version), "outputs": .array(items),
        ]
        response["id"] = .string(body.id ?? "")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let json = try encoder.encode(JSONValue.object(response))
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

    // MARK: conversions

    static func datatype(_ type: ElementType, _ valueType: ModelMetadata.ValueType) -> String {
        if case .mapSequence = valueType { return "BYTES" }
        switch type {
        case .float: return "FP32"
        case .double: return "FP64"
        case .int64: return "INT64"
        case .int32: return "INT32"
        case .int8: return "INT8"
        case .uint8: return "UINT8"
        case .bool: return "BOOL"
        case .string: return "BYTES"
        }
    }

    static func elementType(_ datatype: String) -> ElementType? {
        switch datatype {
        case "FP32": .float
        case "FP64": .double
        case "INT64": .int64
        case "INT32": .int32
        case "INT8": .int8
        case "UINT8": .uint8
        case "BOOL": .bool
        case "BYTES": .string
        default: nil
        }
    }

    /// Outputs as OIP tensors; ZipMap's maps become one JSON text per row (BYTES).
    static func tensorForm(_ value: Value) throws -> (Tensor, String) {
        switch value {
        case .tensor(let t): return (t, datatype(t.elementType, .tensor(t.elementType, shape: nil)))
        case .mapSequence(let maps):
            let rows = (0..<maps.count).map { r -> String in
                let pairs = (0..<maps.keys.count).map { "\"\(maps.keys.text($0))\":\(maps.values[r * maps.keys.count + $0])" }
                return "{" + pairs.joined(separator: ",") + "}"
            }
            return (try Tensor(shape: [rows.count], strings: rows), "BYTES")
        }
    }

    static func flatten(_ value: JSONValue, into out: inout [JSONValue]) {
        if case .array(let items) = value { for item in items { flatten(item, into: &out) } } else { out.append(value) }
    }

    static func decodeBinary(_ data: Data, datatype: String, name: String) throws -> TensorData {
        func fixed<T: FixedWidthInteger>(_: T.Type) throws -> [T] {
            guard data.count % MemoryLayout<T>.size == 0 else { throw V2Error(.badRequest, "input '\(name)': binary data is not a whole number of \(datatype) values") }
            return data.withUnsafeBytes { raw in
                (0..<(data.count / MemoryLayout<T>.size)).map { T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) }
            }
        }
        switch datatype {
        case "FP32": return .float(try fixed(UInt32.self).map(Float.init(bitPattern:)))
        case "FP64": return .double(try fixed(UInt64.self).map(Double.init(bitPattern:)))
        case "INT64": return .int64(try fixed(Int64.self))
        case "INT32": return .int32(try fixed(Int32.self))
        case "INT8": return .int8(try fixed(Int8.self))
        case "UINT8": return .uint8(try fixed(UInt8.self))
        case "BOOL": return .bool(try fixed(UInt8.self).map { $0 != 0 })
        case "BYTES":
            // Each element: a 4-byte little-endian length, then that many bytes.
            var strings: [String] = []
            var offset = 0
            let bytes = [UInt8](data)
            while offset < bytes.count {
                guard offset + 4 <= bytes.count else { throw V2Error(.badRequest, "input '\(name)': truncated BYTES element") }
                let length = Int(UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24)
                offset += 4
                guard length <= bytes.count - offset else { throw V2Error(.badRequest, "input '\(name)': truncated BYTES element") }
                strings.append(String(decoding: bytes[offset..<(offset + length)], as: UTF8.self))
                offset += length
            }
            return .string(strings)
        default: throw V2Error(.badRequest, "input '\(name)': datatype \(datatype) is not supported")
        }
    }

    static func encodeBinary(_ data: TensorData) -> Data {
        var out = Data()
        func append<T: FixedWidthInteger>(_ values: [T]) {
            out.reserveCapacity(values.count * MemoryLayout<T>.size)
            for v in values { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        }
        switch data {
        case .float(let v): append(v.map(\.bitPattern))
        case .double(let v): append(v.map(\.bitPattern))
        case .int64(let v): append(v)
        case .int32(let v): append(v)
        case .int8(let v): append(v)
        case .uint8(let v): append(v)
        case .bool(let v): append(v.map { UInt8($0 ? 1 : 0) })
        case .string(let v):
            for s in v {
                let utf8 = Array(s.utf8)
                append([UInt32(utf8.count)])
                out.append(contentsOf: utf8)
            }
        }
        return out
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "'\(key.stringValue)' is required"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            "\(c.codingPath.map(\.stringValue).joined(separator: ".")): \(c.debugDescription)"
        default: "not valid JSON"
        }
    }
}

/// Errors of the /v2 API, in its own format: `{"error": "..."}`.
struct V2Error: HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String
    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }
    func response(from request: Request, context: some RequestContext) throws -> Response {
        try JSONResponse.make(["error": message], status: status)
    }
}

/// The server's version string.
public enum FreshlineVersion {
    public static let current = "0.1.0"
}
