/// JSON (RFC 8259) for the records the node side reads and writes: an image's `.meta.json` and a
/// job's `state.json`. The setuid `shifter` reads both on every start; this keeps Foundation, and
/// its start-up cost, out of it. Strict: one value, no trailing commas or comments, valid UTF-8,
/// no duplicate keys, at most `maximumDepth` levels.
public indirect enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// A number, as its text in the document: integers of any size stay exact.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Nesting deeper than this is refused rather than followed.
    public static let maximumDepth = 64

    /// Parses `bytes` as one JSON document.
    public static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.failure("unexpected text after the value") }
        return value
    }

    /// The value as text, with object keys sorted so equal values give equal bytes; `pretty` puts
    /// each member on its own line, indented by two spaces a level.
    public func encoded(pretty: Bool = false) -> [UInt8] {
        var output: [UInt8] = []
        write(to: &output, pretty: pretty, indent: 0)
        return output
    }

    private func write(to output: inout [UInt8], pretty: Bool, indent: Int) {
        func newline(_ level: Int) {
            guard pretty else { return }
            output.append(UInt8(ascii: "\n"))
            output.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * level))
        }
        switch self {
        case .null: output.append(contentsOf: "null".utf8)
        case .bool(let value): output.append(contentsOf: (value ? "true" : "false").utf8)
        case .number(let text): output.append(contentsOf: text.utf8)
        case .string(let text): JSONValue.writeString(text, to: &output)
        case .array(let items):
            output.append(UInt8(ascii: "["))
            for (position, item) in items.enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                item.write(to: &output, pretty: pretty, indent: indent + 1)
            }
            if !items.isEmpty { newline(indent) }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            for (position, key) in members.keys.sorted().enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                JSONValue.writeString(key, to: &output)
                output.append(contentsOf: (pretty ? " : " : ":").utf8)
                members[key]!.write(to: &output, pretty: pretty, indent: indent + 1)
            }
            if !members.isEmpty { newline(indent) }
            output.append(UInt8(ascii: "}"))
        }
    }

    private static func writeString(_ text: String, to output: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        output.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): output.append(contentsOf: "\\\\".utf8)
            case 0x0A: output.append(contentsOf: "\\n".utf8)
            case 0x0D: output.append(contentsOf: "\\r".utf8)
            case 0x09: output.append(contentsOf: "\\t".utf8)
            case 0..<0x20:
                output.append(contentsOf: "\\u00".utf8)
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0xF)])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}

/// A document that is not JSON, or not the record expected: one line.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

private struct JSONParser {
    let bytes: [UInt8]
    var index = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    func failure(_ what: String) -> JSONError {
        JSONError("not valid JSON (\(what) at byte \(index))")
    }

    mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        guard depth < JSONValue.maximumDepth else { throw failure("nested deeper than \(JSONValue.maximumDepth) levels") }
        guard index < bytes.count else { throw failure("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw failure("unexpected character")
        }
    }

    mutating func literal(_ word: String) throws(JSONError) {
        for expected in word.utf8 {
            guard index < bytes.count, bytes[index] == expected else { throw failure("unexpected character") }
            index += 1
        }
    }

    mutating func object(depth: Int) throws(JSONError) -> JSONValue {
        index += 1
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw failure("expected a key") }
            let key = try string()
            guard members[key] == nil else { throw failure("duplicate key \"\(key)\"") }
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw failure("expected \":\"") }
            index += 1
            skipWhitespace()
            members[key] = try value(depth: depth + 1)
            skipWhitespace()
            guard index < bytes.count else { throw failure("unexpected end") }
            if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
            guard bytes[index] == UInt8(ascii: ",") else { throw failure("expected \",\" or \"}\"") }
            index += 1
        }
    }

    mutating func array(depth: Int) throws(JSONError) -> JSONValue {
        index += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try value(depth: depth + 1))
            skipWhitespace()
            guard index < bytes.count else { throw failure("unexpected end") }
            if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
            guard bytes[index] == UInt8(ascii: ",") else { throw failure("expected \",\" or \"]\"") }
            index += 1
        }
    }

    mutating func digits() -> Int {
        let start = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        return index - start
    }

    mutating func number() throws(JSONError) -> String {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count else { throw failure("unexpected end") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else if digits() == 0 {
            throw failure("expected a digit")
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { throw failure("expected a digit") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw failure("expected a digit") }
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    mutating func hexQuad() throws(JSONError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw failure("unexpected end") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("bad \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    mutating func string() throws(JSONError) -> String {
        index += 1
        var text: [UInt8] = []
        while true {
            guard index < bytes.count else { throw failure("unterminated string") }
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                // Decoding repairs what is not UTF-8; the bytes come back unchanged only when they were.
                // (String(validating:) would do the same through generic code the runtime must look up.)
                let decoded = String(decoding: text, as: UTF8.self)
                guard decoded.utf8.elementsEqual(text) else { throw failure("a string that is not UTF-8") }
                return decoded
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { throw failure("unterminated string") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(escape)
                case UInt8(ascii: "b"): text.append(0x08)
                case UInt8(ascii: "f"): text.append(0x0C)
                case UInt8(ascii: "n"): text.append(0x0A)
                case UInt8(ascii: "r"): text.append(0x0D)
                case UInt8(ascii: "t"): text.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hexQuad()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw failure("a lone surrogate")
                        }
                        index += 2
                        let low = try hexQuad()
                        guard (0xDC00..<0xE000).contains(low) else { throw failure("a lone surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw failure("a lone surrogate") }
                    text.append(contentsOf: String(Character(unicode)).utf8)
                default: throw failure("bad escape")
                }
            case 0..<0x20: throw failure("a control character in a string")
            default: text.append(byte)
            }
        }
    }
}

/// Reading a record's fields, with errors that name the key: `"digest" should be a string`.
public struct JSONRecord {
    let members: [String: JSONValue]

    init(members: [String: JSONValue]) { self.members = members }

    /// `value` as a record: it must be an object.
    public init(_ value: JSONValue) throws(JSONError) {
        guard case .object(let members) = value else { throw JSONError("the top level should be an object") }
        self.members = members
    }

    /// The member `key`; nil when it is absent or null.
    func member(_ key: String) -> JSONValue? {
        guard let value = members[key], value != .null else { return nil }
        return value
    }

    public func string(_ key: String) throws(JSONError) -> String? {
        guard let value = member(key) else { return nil }
        guard case .string(let text) = value else { throw JSONError("\"\(key)\" should be a string") }
        return text
    }

    public func uint32(_ key: String) throws(JSONError) -> UInt32? {
        guard let value = member(key) else { return nil }
        guard case .number(let text) = value, let number = UInt32(text) else {
            throw JSONError("\"\(key)\" should be an unsigned 32-bit number")
        }
        return number
    }

    public func strings(_ key: String) throws(JSONError) -> [String]? {
        try list(key, "a list of strings") { item in
            guard case .string(let text) = item else { return nil }
            return text
        }
    }

    /// The object `key` as a record.
    public func record(_ key: String) throws(JSONError) -> JSONRecord? {
        guard let value = member(key) else { return nil }
        guard case .object(let members) = value else { throw JSONError("\"\(key)\" should be an object") }
        return JSONRecord(members: members)
    }

    /// The array `key`, its items as they are.
    public func values(_ key: String) throws(JSONError) -> [JSONValue]? {
        try list(key, "a list") { $0 }
    }

    public func uint32s(_ key: String) throws(JSONError) -> [UInt32]? {
        try list(key, "a list of unsigned 32-bit numbers") { item in
            guard case .number(let text) = item else { return nil }
            return UInt32(text)
        }
    }

    /// The array `key`, each item read by `read` (nil: not the kind `expected` names).
    private func list<T>(_ key: String, _ expected: String, _ read: (JSONValue) -> T?) throws(JSONError) -> [T]? {
        guard let value = member(key) else { return nil }
        guard case .array(let items) = value else { throw JSONError("\"\(key)\" should be \(expected)") }
        var result: [T] = []
        for item in items {
            guard let element = read(item) else { throw JSONError("\"\(key)\" should be \(expected)") }
            result.append(element)
        }
        return result
    }

    public func stringMap(_ key: String) throws(JSONError) -> [String: String]? {
        guard let value = member(key) else { return nil }
        guard case .object(let members) = value else { throw JSONError("\"\(key)\" should be an object of strings") }
        var result: [String: String] = [:]
        for (name, item) in members {
            guard case .string(let text) = item else { throw JSONError("\"\(key)\" should be an object of strings") }
            result[name] = text
        }
        return result
    }
}

extension JSONValue {
    /// A list of strings.
    public static func strings(_ items: [String]) -> JSONValue { .array(items.map(JSONValue.string)) }
    /// A number.
    public static func number(_ value: UInt32) -> JSONValue { .number(String(value)) }
}
