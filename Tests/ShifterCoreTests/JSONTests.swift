import Foundation
import Testing

@testable import ShifterCore

struct JSONTests {
    @Test func readsEveryKindOfValue() throws {
        let text = #" { "a" : [1, -2.5e3, 0, true, false, null], "b": {"c": "d\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}, "e": [] , "f": {} } "#
        let value = try JSONValue.parse(Array(text.utf8))
        #expect(value == .object([
            "a": .array([.number("1"), .number("-2.5e3"), .number("0"), .bool(true), .bool(false), .null]),
            "b": .object(["c": .string("d\"\\/\u{08}\u{0C}\n\r\té😀")]),
            "e": .array([]), "f": .object([:]),
        ]))
    }

    @Test(arguments: [
        "", " ", "{", "[", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul",
        "\"abc", "\"a\u{01}b\"", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
        "[1] [2]", "{\"a\":1,\"a\":2}", "// comment\n1", "'a'", "[1 2]", "NaN", "Infinity",
    ])
    func refusesWhatIsNotJSON(text: String) {
        #expect(throws: JSONError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test func refusesInvalidUTF8AndDeepNesting() {
        #expect(throws: JSONError.self) { try JSONValue.parse([0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: JSONError.self) { try JSONValue.parse([0x22, 0xED, 0xA0, 0x80, 0x22]) }
        let deep = String(repeating: "[", count: JSONValue.maximumDepth + 1) + String(repeating: "]", count: JSONValue.maximumDepth + 1)
        #expect(throws: JSONError.self) { try JSONValue.parse(Array(deep.utf8)) }
        let allowed = String(repeating: "[", count: JSONValue.maximumDepth) + String(repeating: "]", count: JSONValue.maximumDepth)
        #expect(throws: Never.self) { try JSONValue.parse(Array(allowed.utf8)) }
    }

    /// The writer's output is JSON that Foundation reads back to the same strings, whatever the
    /// characters, and that this reader reads back to the same value.
    @Test func writesWhatFoundationAndThisReaderReadBack() throws {
        var strings = ["", "plain", "quote \" backslash \\ slash /", "é😀", "tab\tnewline\nreturn\r"]
        strings.append(String(decoding: (0..<32).map { UInt8($0) }, as: UTF8.self))
        strings.append(String(decoding: (32..<127).map { UInt8($0) }, as: UTF8.self))
        for string in strings {
            for pretty in [false, true] {
                let value = JSONValue.object(["s": .string(string), "list": .strings([string, string]), "n": .number(UInt32.max)])
                let bytes = value.encoded(pretty: pretty)
                #expect(try JSONValue.parse(bytes) == value)
                let decoded = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
                #expect(decoded?["s"] as? String == string)
                #expect(decoded?["list"] as? [String] == [string, string])
                #expect((decoded?["n"] as? NSNumber)?.uint32Value == UInt32.max)
            }
        }
    }

    /// What Foundation writes, this reader reads: the records the gateway and older versions wrote.
    @Test func readsWhatFoundationWrites() throws {
        let record: [String: Any] = ["env": ["A=é", "B=\"q\"", "C=/x/y"], "n": 4294967295, "flag": true, "none": NSNull(),
                                     "nested": ["k": ["v"]]]
        for options: JSONSerialization.WritingOptions in [[], [.prettyPrinted, .sortedKeys], [.withoutEscapingSlashes]] {
            let bytes = Array(try JSONSerialization.data(withJSONObject: record, options: options))
            let value = try JSONValue.parse(bytes)
            #expect(value == .object([
                "env": .strings(["A=é", "B=\"q\"", "C=/x/y"]), "n": .number("4294967295"), "flag": .bool(true), "none": .null,
                "nested": .object(["k": .strings(["v"])]),
            ]))
        }
    }
}
