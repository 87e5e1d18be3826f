internal import PostgresNIO

/// A parsed `postgres://user[:password]@host[:port]/database[?sslmode=…]` URL.
struct DatabaseURL: Equatable {
    /// How the connection uses TLS (libpq's `sslmode` names).
    enum TLSMode: String, Equatable {
        case disable, prefer, require

        var configuration: PostgresClient.Configuration.TLS {
            switch self {
            case .disable: .disable
            case .prefer: .prefer(.makeClientConfiguration())
            case .require: .require(.makeClientConfiguration())
            }
        }
    }

    var user: String
    var password: String?
    var host: String
    var port: Int
    var database: String
    var tls: TLSMode

    init(_ text: String) throws {
        let rest: Substring
        if text.hasPrefix("postgres://") {
            rest = text.dropFirst("postgres://".count)
        } else if text.hasPrefix("postgresql://") {
            rest = text.dropFirst("postgresql://".count)
        } else {
            throw PostgresStoreError.invalidURL("it must start with postgres:// or postgresql://")
        }
        let (location, query) = Self.split(rest, at: "?")
        let (authority, path) = Self.split(location, at: "/")
        guard let at = authority.lastIndex(of: "@") else {
            throw PostgresStoreError.invalidURL("no user (postgres://USER@host/database)")
        }
        let (userText, passwordText) = Self.split(authority[..<at], at: ":")
        user = try Self.percentDecoded(userText, "user")
        guard !user.isEmpty else { throw PostgresStoreError.invalidURL("the user is empty") }
        password = try passwordText.map { try Self.percentDecoded($0, "password") }
        (host, port) = try Self.hostAndPort(authority[authority.index(after: at)...])
        guard let path, !path.isEmpty, !path.contains("/") else {
            throw PostgresStoreError.invalidURL("no database name (postgres://user@host/DATABASE)")
        }
        database = try Self.percentDecoded(path, "database name")
        tls = Self.isLoopback(host) ? .disable : .prefer
        for parameter in (query ?? "").split(separator: "&") {
            let (name, value) = Self.split(parameter, at: "=")
            guard name == "sslmode" else {
                throw PostgresStoreError.invalidURL("unsupported parameter \(name) (only sslmode is)")
            }
            guard let value, let mode = TLSMode(rawValue: String(value)) else {
                throw PostgresStoreError.invalidURL(
                    "sslmode must be disable, prefer or require, not \(value ?? "empty")")
            }
            tls = mode
        }
    }

    /// The client configuration for this URL; with `statementTimeout`, the server ends any statement running
    /// longer (PostgreSQL's `statement_timeout`, sent as a startup parameter of every connection: a statement stuck
    /// on a lock or a slow plan does not hold its connection past the call's bound).
    func clientConfiguration(statementTimeout: Duration? = nil) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tls.configuration)
        configuration.options.connectTimeout = .seconds(10)
        if let statementTimeout {
            configuration.options.additionalStartupParameters.append(
                ("statement_timeout", "\(PostgresStore.milliseconds(statementTimeout))"))
        }
        return configuration
    }

    /// The configuration of a single connection outside the pool (the start-up probe, migrations): without the
    /// pool's `statement_timeout`.
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let tlsMode: PostgresConnection.Configuration.TLS =
            switch tls {
            case .disable: .disable
            case .prefer: .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tlsMode)
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }

    /// The URL (password included).
    var text: String { format(password: password.map(Self.percentEncoded)) }

    /// The URL with the password replaced by `***`, for logs.
    var redacted: String { format(password: password == nil ? nil : "***") }

    private func format(password: String?) -> String {
        let credentials = Self.percentEncoded(user) + (password.map { ":\($0)" } ?? "")
        let hostText = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(credentials)@\(hostText):\(port)/\(Self.percentEncoded(database))"
            + "?sslmode=\(tls.rawValue)"
    }

    /// `text` with every byte but RFC 3986's unreserved characters %-escaped.
    private static func percentEncoded(_ text: String) -> String {
        var encoded = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                encoded += byte < 16 ? "%0\(hex)" : "%\(hex)"
            }
        }
        return encoded
    }

    private static func hostAndPort(_ text: Substring) throws -> (String, Int) {
        var host = text
        var portText: Substring?
        if text.hasPrefix("[") {
            // An IPv6 literal: [::1] or [::1]:5432.
            guard let close = text.firstIndex(of: "]") else {
                throw PostgresStoreError.invalidURL("an IPv6 host lacks its closing ]")
            }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw PostgresStoreError.invalidURL("unexpected text after the IPv6 host: \(after)")
                }
                portText = after.dropFirst()
            }
        } else {
            (host, portText) = split(text, at: ":")
        }
        guard !host.isEmpty else { throw PostgresStoreError.invalidURL("no host (postgres://user@HOST/database)") }
        guard let portText else { return (String(host), 5432) }
        guard let port = Int(portText), (1...65_535).contains(port) else {
            throw PostgresStoreError.invalidURL("the port must be a number from 1 to 65535, not \(portText)")
        }
        return (String(host), port)
    }

    private static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// `text` split at the first `separator`: the part before, and the part after (`nil` without a separator).
    private static func split(_ text: Substring, at separator: Character) -> (Substring, Substring?) {
        guard let index = text.firstIndex(of: separator) else { return (text, nil) }
        return (text[..<index], text[text.index(after: index)...])
    }

    /// Decodes `%XX` escapes (UTF-8).
    private static func percentDecoded(_ text: Substring, _ what: String) throws -> String {
        var bytes: [UInt8] = []
        var utf8 = text.utf8.makeIterator()
        while let byte = utf8.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = utf8.next().flatMap(hexValue), let low = utf8.next().flatMap(hexValue) else {
                throw PostgresStoreError.invalidURL("the \(what) has a malformed %-escape")
            }
            bytes.append(high << 4 | low)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw PostgresStoreError.invalidURL("the \(what) is not UTF-8 once %-decoded")
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
