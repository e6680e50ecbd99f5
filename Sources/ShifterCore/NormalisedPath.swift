/// The one rule for absolute paths that users and administrators write.
///
/// A path must start with `/` and use only `A-Z a-z 0-9 _ . / + -` and the space. The set leaves
/// out `:` and `;` (the volume separators), `,` and `=` (the flag syntax), tabs, newlines and other
/// control characters, quotes and shell metacharacters, so a path cannot smuggle a second volume
/// or flag. The space separates nothing in any grammar here; every path reaches the kernel as one
/// argument, and the kernel's mount table escapes it (`MountTable` reads it back). Repeated and trailing `/` and
/// `.` components are collapsed; a `..` component is refused, because it could climb out of the
/// directory an administrator meant to expose.
public enum NormalisedPath {
    /// The longest path accepted, one less than Linux `PATH_MAX` for the terminating NUL.
    public static let maximumLength = 4095

    /// Returns `text` in normal form (`/a//b/./c/` becomes `/a/b/c`), or throws why it is not acceptable.
    public static func parse(_ text: some StringProtocol) throws(PathRuleViolation) -> String {
        if text.isEmpty { throw PathRuleViolation(reason: "path is empty") }
        guard text.hasPrefix("/") else { throw PathRuleViolation(reason: "path \(quoted(text)) must be absolute") }
        if !text.utf8.allSatisfy(isAllowed), let bad = text.unicodeScalars.first(where: { !isAllowed($0) }) {
            throw PathRuleViolation(
                reason: "path \(quoted(text)) contains \(quoted(String(bad))); only letters, digits, spaces and _ . / + - are allowed"
            )
        }
        // The bytes are ASCII now: collapse them in one pass, without an intermediate list.
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count)
        let bytes = text.utf8
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == slash { index = bytes.index(after: index); continue }
            let start = index
            var length = 0
            while index < bytes.endIndex && bytes[index] != slash { index = bytes.index(after: index); length += 1 }
            if length == 1 && bytes[start] == dot { continue }
            if length == 2 && bytes[start] == dot && bytes[bytes.index(after: start)] == dot {
                throw PathRuleViolation(reason: "path \(quoted(text)) may not contain \"..\"")
            }
            output.append(slash)
            output.append(contentsOf: bytes[start..<index])
        }
        if output.isEmpty { output.append(slash) }
        let result = String(decoding: output, as: UTF8.self)
        if result.utf8.count > maximumLength {
            throw PathRuleViolation(reason: "path is longer than \(maximumLength) characters")
        }
        return result
    }

    /// Whether `path` is `prefix` or lies below it; both must already be normalised.
    public static func path(_ path: String, isWithin prefix: String) -> Bool {
        if prefix == "/" { return true }
        return path == prefix || path.hasPrefix(prefix + "/")
    }

    private static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        scalar.isASCII && isAllowed(UInt8(scalar.value))
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        isASCIIAlphanumeric(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
            || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: " ")
    }
}

/// Why a path was refused; the caller's error names the volume, key or image it came from.
public struct PathRuleViolation: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong with the path, quoting it.
    public var reason: String

    /// Creates a violation with the given reason.
    public init(reason: String) { self.reason = reason }

    /// The reason.
    public var description: String { reason }
}
