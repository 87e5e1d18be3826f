internal import FreshlineEngine
public import FreshlineJSON

/// Renders the `{{name}}` placeholders of a template with a row's values (`UpstreamSpec.placeholders` finds the
/// same names: spaces inside the braces are ignored).
public enum Template {
    /// Text rendering, for chat messages and embedding inputs: a string value as it is, any other value as its
    /// JSON text (`3`, `0.5`, `true`, `[1,2]`). A placeholder without a value is left as written.
    public static func text(_ template: String, values: [String: JSONValue]) -> String {
        render(template) { name, _ in
            guard let value = values[name] else { return nil }
            if case .string(let s) = value { return s }
            return String(decoding: value.serialized(), as: UTF8.self)
        }
    }

    /// JSON rendering, for an `http` model's request body: a placeholder stands for the value's JSON text (strings
    /// quoted and escaped, numbers as numbers), or, when the placeholder sits inside a JSON string of the template
    /// (`"id-{{id}}"`), for that text escaped as string content. A placeholder without a value is left as written.
    public static func json(_ template: String, values: [String: JSONValue]) -> String {
        render(template) { name, insideString in
            guard let value = values[name] else { return nil }
            var out: [UInt8] = []
            if insideString {
                let text: String
                if case .string(let s) = value {
                    text = s
                } else {
                    text = String(decoding: value.serialized(), as: UTF8.self)
                }
                JSONValue.writeString(text, into: &out)
                return String(decoding: out.dropFirst().dropLast(), as: UTF8.self)
            }
            value.write(into: &out)
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// Walks the template once, tracking whether the position is inside a JSON string literal (an unescaped `"`
    /// toggles it), and asks `replacement` for each placeholder.
    private static func render(_ template: String, replacement: (String, Bool) -> String?) -> String {
        var out = ""
        out.reserveCapacity(template.utf8.count)
        var insideString = false
        var escaped = false
        var index = template.startIndex
        while index < template.endIndex {
            if template[index...].hasPrefix("{{"),
                let close = template[template.index(index, offsetBy: 2)...].firstRange(of: "}}")
            {
                let name = String(template[template.index(index, offsetBy: 2)..<close.lowerBound].filter { $0 != " " })
                if !name.isEmpty, let text = replacement(name, insideString) {
                    out += text
                    index = close.upperBound
                    continue
                }
            }
            let character = template[index]
            if escaped {
                escaped = false
            } else if character == "\\" && insideString {
                escaped = true
            } else if character == "\"" {
                insideString.toggle()
            }
            out.append(character)
            index = template.index(after: index)
        }
        return out
    }
}
