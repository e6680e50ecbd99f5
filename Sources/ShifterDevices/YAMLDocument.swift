internal import CYAML
import ShifterCore

/// One YAML document read with libyaml into the value tree JSON gives, so a CDI spec in either
/// form is read alike. A plain scalar that reads as a number, `true`/`false` or `null` is one; a
/// quoted scalar is always a string. Aliases, tags other than the core ones, and more than one
/// document are refused: a device spec needs none of them.
public enum YAMLDocument {
    public static func parse(_ bytes: [UInt8]) throws(YAMLError) -> JSONValue {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw YAMLError("couldn't start the YAML parser") }
        defer { yaml_parser_delete(&parser) }
        return try bytes.withUnsafeBufferPointer { (buffer) throws(YAMLError) -> JSONValue in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var reader = EventReader(parser: &parser)
            try reader.expect(YAML_STREAM_START_EVENT)
            let first = try reader.next()
            if first.type == YAML_STREAM_END_EVENT { throw YAMLError("the document is empty") }
            guard first.type == YAML_DOCUMENT_START_EVENT else { throw YAMLError("expected a document") }
            let value = try reader.value(depth: 0)
            try reader.expect(YAML_DOCUMENT_END_EVENT)
            let end = try reader.next()
            guard end.type == YAML_STREAM_END_EVENT else { throw YAMLError("more than one document") }
            return value
        }
    }

    /// One event, copied out of libyaml's.
    struct Event {
        var type: yaml_event_type_t
        var scalar: String = ""
        var quoted = false
        var line = 0
    }

    struct EventReader: ~Copyable {
        let parser: UnsafeMutablePointer<yaml_parser_t>

        init(parser: UnsafeMutablePointer<yaml_parser_t>) { self.parser = parser }

        mutating func next() throws(YAMLError) -> Event {
            var event = yaml_event_t()
            guard yaml_parser_parse(parser, &event) == 1 else {
                let problem = parser.pointee.problem.map { String(cString: $0) } ?? "invalid YAML"
                throw YAMLError("line \(parser.pointee.problem_mark.line + 1): \(problem)")
            }
            defer { yaml_event_delete(&event) }
            var copied = Event(type: event.type, line: Int(event.start_mark.line) + 1)
            switch event.type {
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                copied.scalar = scalar.value.map {
                    String(decoding: UnsafeBufferPointer(start: $0, count: Int(scalar.length)), as: UTF8.self)
                } ?? ""
                copied.quoted = scalar.style != YAML_PLAIN_SCALAR_STYLE
                if let tag = scalar.tag.map({ String(cString: $0) }), tag != "tag:yaml.org,2002:str" {
                    throw YAMLError("line \(copied.line): the tag \(tag) is not supported")
                } else if scalar.tag != nil {
                    copied.quoted = true
                }
            case YAML_ALIAS_EVENT:
                throw YAMLError("line \(copied.line): aliases (*name) are not supported")
            default:
                break
            }
            return copied
        }

        mutating func expect(_ type: yaml_event_type_t) throws(YAMLError) {
            let event = try next()
            guard event.type == type else { throw YAMLError("line \(event.line): unexpected content") }
        }

        mutating func value(depth: Int) throws(YAMLError) -> JSONValue {
            try value(of: try next(), depth: depth)
        }

        mutating func value(of event: Event, depth: Int) throws(YAMLError) -> JSONValue {
            guard depth < JSONValue.maximumDepth else { throw YAMLError("line \(event.line): nested too deeply") }
            switch event.type {
            case YAML_SCALAR_EVENT:
                return event.quoted ? .string(event.scalar) : YAMLDocument.plainScalar(event.scalar)
            case YAML_SEQUENCE_START_EVENT:
                var items: [JSONValue] = []
                while true {
                    let item = try next()
                    if item.type == YAML_SEQUENCE_END_EVENT { return .array(items) }
                    items.append(try value(of: item, depth: depth + 1))
                }
            case YAML_MAPPING_START_EVENT:
                var members: [String: JSONValue] = [:]
                while true {
                    let key = try next()
                    if key.type == YAML_MAPPING_END_EVENT { return .object(members) }
                    guard key.type == YAML_SCALAR_EVENT else { throw YAMLError("line \(key.line): a key must be a plain text") }
                    if members[key.scalar] != nil { throw YAMLError("line \(key.line): the key \(key.scalar) is given twice") }
                    members[key.scalar] = try value(depth: depth + 1)
                }
            default:
                throw YAMLError("line \(event.line): unexpected content")
            }
        }
    }

    /// A plain scalar as YAML's core schema reads it.
    static func plainScalar(_ text: String) -> JSONValue {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default:
            if let number = Int64(text) { return .number(String(number)) }
            if text.hasPrefix("0o"), let number = Int64(text.dropFirst(2), radix: 8) { return .number(String(number)) }
            if text.hasPrefix("0x"), let number = Int64(text.dropFirst(2), radix: 16) { return .number(String(number)) }
            return .string(text)
        }
    }
}

/// A YAML document that cannot be read; the message says where.
public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
