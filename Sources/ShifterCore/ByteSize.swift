/// Byte counts as administrators and users write them: `512`, `64k`, `10G`, `1t`.
///
/// A whole number with an optional one-letter suffix `b`, `k`, `m`, `g`, `t` or `p` in either case,
/// each a power of 1024. Fractions, spaces and two-letter suffixes such as `GB` are refused so that
/// `10GB` is not silently read as a power of 1000 or 1024; values past `UInt64.max` are an error.
public enum ByteSize {
    /// Parses a size such as `10G` into bytes.
    public static func parse(_ text: some StringProtocol) throws(ByteSizeError) -> UInt64 {
        let fail = { (reason: String) in ByteSizeError(input: String(text), reason: reason) }
        let bytes = Array(text.utf8)
        if bytes.isEmpty { throw fail("size is empty") }
        var digitCount = 0
        while digitCount < bytes.count, isASCIIDigit(bytes[digitCount]) { digitCount += 1 }
        if digitCount == 0 { throw fail("size must start with a whole number") }
        var value: UInt64 = 0
        for byte in bytes[..<digitCount] {
            let (shifted, overflowA) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowB) = shifted.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            if overflowA || overflowB { throw fail("size is too large") }
            value = sum
        }
        let suffix = bytes[digitCount...]
        if suffix.first == UInt8(ascii: ".") || suffix.first == UInt8(ascii: ",") {
            throw fail("size must be a whole number (write 1536M, not 1.5G)")
        }
        guard suffix.count <= 1 else {
            throw fail("unknown unit; use one of b, k, m, g, t, p (powers of 1024)")
        }
        guard let letter = suffix.first else { return value }
        guard let exponent = exponent(of: letter) else {
            throw fail("unknown unit; use one of b, k, m, g, t, p (powers of 1024)")
        }
        var result = value
        for _ in 0..<exponent {
            let (product, overflow) = result.multipliedReportingOverflow(by: 1024)
            if overflow { throw fail("size is too large") }
            result = product
        }
        return result
    }

    /// Formats bytes with the largest suffix that divides them exactly: `10737418240` is `10G`.
    public static func format(_ bytes: UInt64) -> String {
        let units: [(String, UInt64)] = [("P", 1 << 50), ("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)]
        if bytes != 0 {
            for (suffix, unit) in units where bytes % unit == 0 {
                return String(bytes / unit) + suffix
            }
        }
        return String(bytes)
    }

    private static func exponent(of letter: UInt8) -> Int? {
        switch letter | 0x20 {
        case UInt8(ascii: "b"): return 0
        case UInt8(ascii: "k"): return 1
        case UInt8(ascii: "m"): return 2
        case UInt8(ascii: "g"): return 3
        case UInt8(ascii: "t"): return 4
        case UInt8(ascii: "p"): return 5
        default: return nil
        }
    }
}

/// A size that does not follow the `NUMBER[b|k|m|g|t|p]` grammar.
public struct ByteSizeError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The text that was parsed.
    public var input: String
    /// What is wrong with it.
    public var reason: String

    /// Creates an error for `input` that failed for `reason`.
    public init(input: String, reason: String) {
        self.input = input
        self.reason = reason
    }

    /// One line: `size "10x": unknown unit; ...`.
    public var description: String { "size \(quoted(input)): \(reason)" }
}
