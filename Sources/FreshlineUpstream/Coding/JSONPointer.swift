internal import FreshlineEngine
public import FreshlineJSON

/// An RFC 6901 JSON pointer (`/choices/0/message/content`): where an `http` model's output is in its answer.
public struct JSONPointer: Sendable, Equatable, CustomStringConvertible {
    /// The reference tokens, unescaped (`~1` → `/`, `~0` → `~`).
    public let tokens: [String]
    /// The pointer as written.
    public let description: String

    /// Parses a pointer: empty (the whole document) or `/`-separated tokens; `nil` when it does not start with `/`
    /// or has a `~` not followed by `0` or `1`.
    public init?(_ text: String) {
        description = text
        guard !text.isEmpty else {
            tokens = []
            return
        }
        guard text.hasPrefix("/") else { return nil }
        var tokens: [String] = []
        for raw in text.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            var token = ""
            var escaped = false
            for character in raw {
                if escaped {
                    switch character {
                    case "0": token.append("~")
                    case "1": token.append("/")
                    default: return nil
                    }
                    escaped = false
                } else if character == "~" {
                    escaped = true
                } else {
                    token.append(character)
                }
            }
            guard !escaped else { return nil }
            tokens.append(token)
        }
        self.tokens = tokens
    }

    /// The pointer to `tokens` (`~` and `/` escaped in its text).
    public init(tokens: [String]) {
        self.tokens = tokens
        description = tokens.map { token in
            "/" + token.map { $0 == "~" ? "~0" : $0 == "/" ? "~1" : String($0) }.joined()
        }.joined()
    }

    /// The value the pointer refers to in `document`, or `nil` when there is none (a missing key, an index past the
    /// end or not a plain decimal, `-`, or a step into a scalar).
    public func resolve(in document: JSONValue) -> JSONValue? {
        var current = document
        for token in tokens {
            switch current {
            case .object(let object):
                guard let next = object[token] else { return nil }
                current = next
            case .array(let items):
                // RFC 6901: an index is "0" or digits without a leading zero; "-" (past the end) refers to nothing.
                guard !token.isEmpty, token.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                    token == "0" || !token.hasPrefix("0"), let index = Int(token), index < items.count
                else { return nil }
                current = items[index]
            default:
                return nil
            }
        }
        return current
    }
}
