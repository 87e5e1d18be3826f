internal import FreshlineCore
internal import FreshlineEngine
internal import FreshlineJSON

/// The file formats and objects of OpenAI's Batch API: request lines, batch objects, output and error lines, and the
/// multipart body of a file upload.
enum ProviderBatchCoding {
    /// One request line of a batch input file: `{"custom_id", "method": "POST", "url", "body"}`, then `\n`.
    static func appendLine(customID: String, url: String, body: JSONValue, to out: inout [UInt8]) {
        JSONValue.object([
            "custom_id": .string(customID), "method": .string("POST"), "url": .string(url), "body": body,
        ]).write(into: &out)
        out.append(UInt8(ascii: "\n"))
    }

    /// A batch object.
    static func status(_ json: JSONValue) -> Result<ProviderBatchStatus, MalformedAnswer> {
        guard case .object(let object) = json else { return .failure("malformed answer: a batch is not an object") }
        guard case .string(let id)? = object["id"], !id.isEmpty else {
            return .failure("malformed answer: a batch has no id")
        }
        guard case .string(let text)? = object["status"], let state = ProviderBatchStatus.State(rawValue: text) else {
            return .failure("malformed answer: batch \(id) has no known status")
        }
        func string(_ key: String) -> String? {
            if case .string(let s)? = object[key], !s.isEmpty { return s }
            return nil
        }
        func count(_ key: String) -> Int {
            guard case .object(let counts)? = object["request_counts"], case .integer(let n)? = counts[key],
                n >= 0, n <= Int64(Int32.max)
            else { return 0 }
            return Int(n)
        }
        var metadata: [String: String] = [:]
        if case .object(let pairs)? = object["metadata"] {
            for (key, value) in pairs { if case .string(let s) = value { metadata[key] = s } }
        }
        var errors: [String] = []
        if case .object(let list)? = object["errors"], case .array(let items)? = list["data"] {
            for case .object(let item) in items.prefix(5) {
                let code = { if case .string(let c)? = item["code"] { "\(c): " } else { "" } }()
                if case .string(let message)? = item["message"] {
                    errors.append(String((code + message).prefix(200)))
                }
            }
        }
        return .success(
            ProviderBatchStatus(
                id: id, state: state, outputFileID: string("output_file_id"), errorFileID: string("error_file_id"),
                total: count("total"), completed: count("completed"), failed: count("failed"), metadata: metadata,
                errors: errors))
    }

    /// One line of an output or error file.
    struct ResultLine {
        var customID: String
        /// The answer's body, or why the row failed (its status and the API's error code and message).
        var outcome: Result<JSONValue, MalformedAnswer>
    }

    /// The lines of an output or error file (JSON Lines; blank lines skipped). A line that is not a result object
    /// makes the whole file malformed: its rows cannot be told apart.
    static func resultLines(_ bytes: [UInt8]) -> Result<[ResultLine], MalformedAnswer> {
        var lines: [ResultLine] = []
        var number = 0
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            guard line.contains(where: { $0 != 0x20 && $0 != 0x0D && $0 != 0x09 }) else { continue }
            guard case .object(let object)? = try? JSONValue.parse(line),
                case .string(let customID)? = object["custom_id"]
            else { return .failure("malformed answer: line \(number) of a batch result file is not a result") }
            lines.append(ResultLine(customID: customID, outcome: outcome(object)))
        }
        return .success(lines)
    }

    private static func outcome(_ object: [String: JSONValue]) -> Result<JSONValue, MalformedAnswer> {
        if case .object(let error)? = object["error"] { return .failure(MalformedAnswer(reason(error, status: nil))) }
        guard case .object(let response)? = object["response"], case .integer(let status)? = response["status_code"]
        else { return .failure("the provider gave no response for this row") }
        let body = response["body"] ?? .null
        guard (200..<300).contains(status) else {
            var error: [String: JSONValue] = [:]
            if case .object(let b) = body, case .object(let e)? = b["error"] { error = e }
            return .failure(MalformedAnswer(reason(error, status: Int(status))))
        }
        return .success(body)
    }

    /// `the provider answered 400: invalid_request_error: MESSAGE` (the message cut to 200 characters).
    private static func reason(_ error: [String: JSONValue], status: Int?) -> String {
        var parts: [String] = []
        for key in ["type", "code", "message"] {
            if case .string(let s)? = error[key], !s.isEmpty, !parts.contains(s) { parts.append(s) }
        }
        let detail = parts.isEmpty ? "" : ": " + String(parts.joined(separator: ": ").prefix(200))
        return "the provider " + (status.map { "answered \($0)" } ?? "failed the row") + detail
    }

    /// A `multipart/form-data` body (RFC 7578) of text fields and one file. The boundary is random, so it does not
    /// occur in the parts. (Two parts of known content: written here rather than taking a multipart library.)
    static func multipart(
        boundary: String, fields: [(String, String)],
        file: (name: String, filename: String, contentType: String, bytes: [UInt8])
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(file.bytes.count + 512)
        for (name, value) in fields {
            out += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
        }
        out += Array(
            ("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(file.name)\"; filename=\"\(file.filename)\"\r\n"
                + "Content-Type: \(file.contentType)\r\n\r\n").utf8)
        out += file.bytes
        out += Array("\r\n--\(boundary)--\r\n".utf8)
        return out
    }
}
