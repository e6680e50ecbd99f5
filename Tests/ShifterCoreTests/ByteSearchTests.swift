import Testing
@testable import ShifterCore

@Suite struct ByteSearchTests {
    /// Every pair of short strings over a small alphabet, against the standard `contains(_:)`.
    @Test func agreesWithTheStandardSearch() {
        let alphabet = ["a", "b", ".", "é"]
        var texts = [""]
        var frontier = [""]
        for _ in 1...4 {
            frontier = frontier.flatMap { text in alphabet.map { text + $0 } }
            texts += frontier
        }
        let needles = texts.filter { !$0.isEmpty && $0.count <= 2 }
        for text in texts {
            for needle in needles {
                #expect(text.containsBytes(needle) == text.contains(needle), "\(text) \(needle)")
            }
        }
        #expect("abc".containsBytes("") && "".containsBytes(""))
        #expect("libnvidia-ml.so.1".dropFirst(3).containsBytes(".so"))
        #expect(!"libcuda".containsBytes("libcuda.so"))
    }
}
