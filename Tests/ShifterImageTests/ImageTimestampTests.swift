import Foundation
import Testing
@testable import ShifterImage

/// The time format of image records (`created`) and of `shifterimg images`, as
/// `ISO8601DateFormatter` wrote it before the module moved to FoundationEssentials.
struct ImageTimestampTests {
    @Test(arguments: [
        (0.0, "1970-01-01T00:00:00Z"),
        (1_704_164_645, "2024-01-02T03:04:05Z"),
        // Fractions of a second are not written.
        (1_704_164_645.25, "2024-01-02T03:04:05Z"),
        (1_704_164_645.75, "2024-01-02T03:04:05Z"),
        (4_102_444_800, "2100-01-01T00:00:00Z"),
    ])
    func writesUTCToTheSecond(seconds: Double, expected: String) {
        #expect(ImageTimestamp.string(from: Date(timeIntervalSince1970: seconds)) == expected)
    }

    @Test(arguments: [
        ("2024-01-02T03:04:05Z", 1_704_164_645),
        // Image configurations carry fractional seconds, often nanoseconds.
        ("2024-01-02T03:04:05.5Z", 1_704_164_645),
        ("2024-01-02T03:04:05.123456789Z", 1_704_164_645),
        ("2015-10-21T04:29:28.123456789+00:00", 1_445_401_768),
        ("2024-01-02T03:04:05+01:00", 1_704_161_045),
        ("2024-01-02T03:04:05.25-02:30", 1_704_173_645),
        ("1970-01-01T00:00:00.999Z", 0),
        // Before the epoch: the squashfs time cannot go below 0.
        ("1969-12-31T23:59:59Z", 0),
    ] as [(String, UInt32)])
    func readsRFC3339WithAndWithoutFractions(text: String, expected: UInt32) {
        #expect(ImageTimestamp.epochSeconds(text) == expected)
    }

    @Test(arguments: ["", "garbage", "2024-01-02", "2024-01-02T03:04:05", "2024-01-02 03:04:05Z", "2024-01-02T03:04Z"])
    func refusesOtherText(text: String) {
        #expect(ImageTimestamp.epochSeconds(text) == nil)
    }

    @Test func roundTrips() throws {
        let text = ImageTimestamp.string(from: Date(timeIntervalSince1970: 1_700_000_000))
        #expect(try #require(ImageTimestamp.epochSeconds(text)) == 1_700_000_000)
    }
}

/// Trimming without Foundation's `CharacterSet`.
struct TextTrimmingTests {
    @Test(arguments: [
        ("  alice ", "alice"),
        ("\tbob\t", "bob"),
        ("\u{A0}carol\u{2003}", "carol"),
        ("\u{3000}dave\u{200B}", "dave"),
        ("a b", "a b"),
        ("   ", ""),
        ("", ""),
        // Not whitespace in the sense of `CharacterSet.whitespaces`: line breaks stay.
        ("\nx\n", "\nx\n"),
    ])
    func trimsBlanks(text: String, expected: String) {
        #expect(text.trimmingWhitespace() == expected)
        #expect(text[...].trimmingWhitespace() == expected)
    }

    @Test(arguments: [
        ("secret\n", "secret"),
        ("secret\r\n", "secret"),
        ("\n\u{85}secret\u{2028}\u{2029}\u{0B}\u{0C}", "secret"),
        // Not line breaks in the sense of `CharacterSet.newlines`: blanks stay.
        (" secret\t\n", " secret\t"),
        ("\n\n", ""),
    ])
    func trimsLineBreaks(text: String, expected: String) {
        #expect(text.trimmingNewlines() == expected)
    }

    @Test func trimsAHeaderLineEndingInCRLF() {
        let line = "Content-Type: application/json \r\n"
        #expect(line.trimmingScalars { $0 == " " || $0 == "\r" || $0 == "\n" || $0 == "\t" } == "Content-Type: application/json")
    }
}
