#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A user name and password (or token) for a registry.
public struct RegistryCredentials: Sendable, Equatable {
    /// The user name.
    public var username: String
    /// The password or access token.
    public var password: String

    /// Creates credentials.
    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// The value of an `Authorization: Basic` header.
    var basicAuthorization: String {
        "Basic " + Data((username + ":" + password).utf8).base64EncodedString()
    }
}

/// One challenge of a `WWW-Authenticate` header: `Bearer realm="…",service="…",scope="…"`.
struct AuthenticationChallenge: Equatable {
    /// The scheme, lowercased: `bearer` or `basic`.
    var scheme: String
    /// The parameters, with lowercased names and unquoted values.
    var parameters: [String: String]

    /// Parses every challenge in a `WWW-Authenticate` header value (RFC 7235 section 4.1).
    static func parse(_ header: String) -> [AuthenticationChallenge] {
        var challenges: [AuthenticationChallenge] = []
        var scanner = ChallengeScanner(Array(header.utf8))
        while !scanner.atEnd {
            scanner.skip(whitespaceAndCommas: true)
            guard let scheme = scanner.token(), !scheme.isEmpty else { break }
            var challenge = AuthenticationChallenge(scheme: scheme.lowercased(), parameters: [:])
            while true {
                scanner.skip(whitespaceAndCommas: false)
                let mark = scanner.position
                guard let name = scanner.token(), !name.isEmpty else { break }
                scanner.skip(whitespaceAndCommas: false)
                guard scanner.consume(UInt8(ascii: "=")) else {
                    // A bare token after a comma starts the next challenge.
                    scanner.position = mark
                    break
                }
                scanner.skip(whitespaceAndCommas: false)
                let value = scanner.quotedString() ?? scanner.token() ?? ""
                challenge.parameters[name.lowercased()] = value
                scanner.skip(whitespaceAndCommas: false)
                if !scanner.consume(UInt8(ascii: ",")) { break }
            }
            challenges.append(challenge)
        }
        return challenges
    }
}

private struct ChallengeScanner {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    var atEnd: Bool { position >= bytes.count }

    mutating func skip(whitespaceAndCommas: Bool) {
        while position < bytes.count {
            let byte = bytes[position]
            if byte == 0x20 || byte == 0x09 || (whitespaceAndCommas && byte == UInt8(ascii: ",")) {
                position += 1
            } else {
                break
            }
        }
    }

    mutating func consume(_ byte: UInt8) -> Bool {
        guard position < bytes.count, bytes[position] == byte else { return false }
        position += 1
        return true
    }

    /// An RFC 7230 token (plus `/` for token68-style values).
    mutating func token() -> String? {
        let start = position
        while position < bytes.count {
            let byte = bytes[position]
            let isTokenByte = (0x21...0x7E).contains(byte) && ![UInt8(ascii: "\""), UInt8(ascii: ","), UInt8(ascii: "=")].contains(byte)
            if !isTokenByte { break }
            position += 1
        }
        // token68 values may end in '=' padding.
        while position < bytes.count, bytes[position] == UInt8(ascii: "="), start != position,
            position + 1 >= bytes.count || bytes[position + 1] == UInt8(ascii: ",") || bytes[position + 1] == UInt8(ascii: "=")
        {
            position += 1
        }
        return position > start ? String(decoding: bytes[start..<position], as: UTF8.self) : nil
    }

    mutating func quotedString() -> String? {
        guard consume(UInt8(ascii: "\"")) else { return nil }
        var value: [UInt8] = []
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            if byte == UInt8(ascii: "\\"), position < bytes.count {
                value.append(bytes[position])
                position += 1
            } else if byte == UInt8(ascii: "\"") {
                break
            } else {
                value.append(byte)
            }
        }
        return String(decoding: value, as: UTF8.self)
    }
}

/// The JSON a token service answers with.
struct TokenResponse: Decodable {
    var token: String?
    var access_token: String?

    var value: String? {
        let chosen = token ?? access_token
        return chosen?.isEmpty == false ? chosen : nil
    }
}

/// The error body of the distribution protocol: `{"errors":[{"code":…,"message":…}]}`.
struct RegistryErrorBody: Decodable {
    struct Entry: Decodable {
        var code: String?
        var message: String?
    }

    var errors: [Entry]?

    /// `MANIFEST_UNKNOWN: manifest unknown`, or `nil` when the body is not such JSON.
    static func summary(_ body: [UInt8]) -> String? {
        guard let decoded = try? JSONDecoder().decode(RegistryErrorBody.self, from: Data(body)),
            let first = decoded.errors?.first
        else { return nil }
        let parts = [first.code, first.message].compactMap { $0 }.filter { !$0.isEmpty }
        return parts.isEmpty ? nil : String(parts.joined(separator: ": ").prefix(200))
    }
}
