extension StringProtocol {
    /// Whether `needle` occurs in the text, compared byte by byte (UTF-8). The standard library's
    /// `contains(_:)` for strings comes from the string-processing module, which the node's
    /// programs do not link.
    public func containsBytes(_ needle: some StringProtocol) -> Bool {
        let haystack = Array(utf8), needle = Array(needle.utf8)
        guard !needle.isEmpty else { return true }
        guard needle.count <= haystack.count else { return false }
        for start in 0...(haystack.count - needle.count)
        where haystack[start] == needle[0] && haystack[start..<start + needle.count].elementsEqual(needle) {
            return true
        }
        return false
    }
}
