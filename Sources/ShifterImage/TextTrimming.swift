extension StringProtocol {
    /// The text without the leading and trailing Unicode scalars for which `isTrimmed` holds.
    /// Foundation's `trimmingCharacters(in:)` does this, but it is not in FoundationEssentials.
    /// Scalars rather than characters, so that `\r\n` (one `Character`) is trimmed by `\r` and `\n`.
    public func trimmingScalars(where isTrimmed: (Unicode.Scalar) -> Bool) -> String {
        let scalars = Substring(self).unicodeScalars
        guard let first = scalars.firstIndex(where: { !isTrimmed($0) }), let last = scalars.lastIndex(where: { !isTrimmed($0) }) else {
            return ""
        }
        return String(Substring(scalars[first...last]))
    }

    /// The text without leading and trailing blanks: the scalars of Foundation's
    /// `CharacterSet.whitespaces`, which are the Unicode space separators, tab, and the zero-width
    /// space U+200B.
    public func trimmingWhitespace() -> String {
        trimmingScalars { $0 == "\t" || $0 == "\u{200B}" || $0.properties.generalCategory == .spaceSeparator }
    }

    /// The text without leading and trailing line breaks: the scalars of Foundation's
    /// `CharacterSet.newlines`, U+000A to U+000D, U+0085, U+2028 and U+2029.
    public func trimmingNewlines() -> String {
        trimmingScalars { ("\n"..."\r").contains($0) || $0 == "\u{85}" || $0 == "\u{2028}" || $0 == "\u{2029}" }
    }
}
