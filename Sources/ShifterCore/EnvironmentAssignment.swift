/// One `NAME=VALUE` environment setting.
///
/// Names follow POSIX shell rules, `[A-Za-z_][A-Za-z0-9_]*`, so that every variable a user or site
/// sets can be read back by the shell in the container. The value is taken verbatim: no quotes are
/// removed and no variables are expanded.
public struct EnvironmentAssignment: Hashable, Sendable {
    /// The variable name.
    public var name: String
    /// The value, possibly empty.
    public var value: String

    /// Creates an assignment without validating the name.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// Parses `NAME=VALUE`.
    public static func parse(_ text: String) throws(EnvironmentError) -> EnvironmentAssignment {
        guard let equals = text.firstIndex(of: "=") else {
            throw EnvironmentError(input: text, reason: "expected NAME=VALUE")
        }
        let name = text[..<equals]
        guard isValidName(name) else {
            throw EnvironmentError(input: text, reason: "\(quoted(name)) is not a valid variable name")
        }
        if text.utf8.contains(0) {
            throw EnvironmentError(input: text, reason: "value contains a NUL byte")
        }
        return EnvironmentAssignment(name: String(name), value: String(text[text.index(after: equals)...]))
    }

    /// Whether `name` is a valid variable name: `[A-Za-z_][A-Za-z0-9_]*`.
    public static func isValidName(_ name: some StringProtocol) -> Bool {
        guard let first = name.utf8.first, !isASCIIDigit(first) else { return false }
        return name.utf8.allSatisfy { isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "_") }
    }

    /// The `NAME=VALUE` text.
    public var entry: String { name + "=" + value }
}

/// The `--env-file` format: `NAME=VALUE` lines, with blank lines and `#` comment lines skipped.
///
/// Leading whitespace before a name is ignored and a trailing carriage return is dropped, so files
/// written on other systems load; everything after the first `=` is the value, kept verbatim.
public enum EnvironmentFile {
    /// Parses the file's text; `source` names the file in errors.
    public static func parse(_ text: String, source: String) throws(EnvironmentError) -> [EnvironmentAssignment] {
        var assignments: [EnvironmentAssignment] = []
        var lineNumber = 0
        // "\r\n" is one Character in Swift, so splitting on "\n" alone would keep CRLF lines joined.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            var line = rawLine
            if line.hasSuffix("\r") { line = line.dropLast() }
            let content = line.drop(while: { $0 == " " || $0 == "\t" })
            if content.isEmpty || content.hasPrefix("#") { continue }
            do {
                assignments.append(try EnvironmentAssignment.parse(String(content)))
            } catch {
                throw EnvironmentError(input: error.input, reason: error.reason, source: source, line: lineNumber)
            }
        }
        return assignments
    }
}

/// Variables a site or module sets: `siteEnv`, `siteEnvAppend`, `siteEnvPrepend`, `siteEnvUnset`.
public struct SiteEnvironment: Hashable, Sendable {
    /// `siteEnv`: variables set, replacing any value.
    public var assign: [EnvironmentAssignment]
    /// `siteEnvAppend`: values appended with `:` to any existing value.
    public var append: [EnvironmentAssignment]
    /// `siteEnvPrepend`: values prepended with `:` to any existing value.
    public var prepend: [EnvironmentAssignment]
    /// `siteEnvUnset`: variables removed.
    public var unset: [String]

    /// Creates a site environment.
    public init(
        assign: [EnvironmentAssignment] = [], append: [EnvironmentAssignment] = [],
        prepend: [EnvironmentAssignment] = [], unset: [String] = []
    ) {
        self.assign = assign
        self.append = append
        self.prepend = prepend
        self.unset = unset
    }

    /// Whether nothing is set, appended, prepended or unset.
    public var isEmpty: Bool { assign.isEmpty && append.isEmpty && prepend.isEmpty && unset.isEmpty }
}

/// An environment setting or file line that does not follow `NAME=VALUE`.
public struct EnvironmentError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The setting that was refused.
    public var input: String
    /// What is wrong with it.
    public var reason: String
    /// The file it came from, if any.
    public var source: String?
    /// The 1-based line in `source`, if any.
    public var line: Int?

    /// Creates an error for `input` that failed for `reason`.
    public init(input: String, reason: String, source: String? = nil, line: Int? = nil) {
        self.input = input
        self.reason = reason
        self.source = source
        self.line = line
    }

    /// One line: `env file "vars.env" line 3: "1A=b": "1A" is not a valid variable name`.
    public var description: String {
        var text = ""
        if let source { text += "env file \(quoted(source))" + (line.map { " line \($0)" } ?? "") + ": " }
        return text + "environment setting \(quoted(input)): \(reason)"
    }
}
