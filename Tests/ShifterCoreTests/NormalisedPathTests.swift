import Testing
@testable import ShifterCore

@Suite struct NormalisedPathTests {
    @Test(arguments: [
        ("/", "/"), ("//", "/"), ("/.", "/"), ("/./", "/"), ("/././/.", "/"),
        ("/a", "/a"), ("/a/", "/a"), ("//a//b//", "/a/b"), ("/a/./b/.", "/a/b"),
        ("/.hidden", "/.hidden"), ("/a/...", "/a/..."), ("/a/..b", "/a/..b"), ("/a/b..", "/a/b.."),
        ("/usr/lib/x86_64-linux-gnu/libc++.so.1", "/usr/lib/x86_64-linux-gnu/libc++.so.1"),
        ("/my data// run 1/", "/my data/ run 1"), ("/ ", "/ "),
    ])
    func normalises(_ text: String, _ expected: String) throws {
        #expect(try NormalisedPath.parse(text) == expected)
        #expect(try NormalisedPath.parse(Substring(text)) == expected)
    }

    @Test(arguments: [
        ("", "path is empty"), ("a/b", "must be absolute"), ("/..", "may not contain \"..\""),
        ("/a/../b", "may not contain \"..\""), ("/a/..", "may not contain \"..\""), ("/a/../", "may not contain \"..\""),
        ("/a\tb", "contains \"\\t\""), ("/a\nb", "contains \"\\n\""), ("/a:b", "contains \":\""),
        ("/caf\u{e9}", "contains \"\u{e9}\""), ("/a'b", "contains \"'\""),
    ])
    func refuses(_ text: String, _ reason: String) {
        #expect {
            try NormalisedPath.parse(text)
        } throws: { error in
            (error as? PathRuleViolation)?.reason.contains(reason) == true
        }
    }

    @Test func refusesWhatIsTooLong() throws {
        let longest = "/" + String(repeating: "a", count: NormalisedPath.maximumLength - 1)
        #expect(try NormalisedPath.parse(longest) == longest)
        #expect(throws: PathRuleViolation.self) { try NormalisedPath.parse(longest + "a") }
        // Collapsing comes first: what is too long written out may be short enough normalised.
        #expect(try NormalisedPath.parse(longest + "/.") == longest)
    }

    /// Every path over a small alphabet, up to six characters, against a reference written the
    /// plain way (split on "/", drop ".", refuse "..", join).
    @Test func agreesWithTheReferenceOnEveryShortPath() {
        let alphabet: [Character] = ["/", ".", "a"]
        var texts = ["/"]
        var frontier = ["/"]
        for _ in 1..<6 {
            frontier = frontier.flatMap { text in alphabet.map { text + String($0) } }
            texts += frontier
        }
        for text in texts {
            let expected: String? = {
                let parts = text.split(separator: "/").filter { $0 != "." }
                if parts.contains("..") { return nil }
                return "/" + parts.joined(separator: "/")
            }()
            #expect((try? NormalisedPath.parse(text)) == expected, "\(text)")
        }
    }
}
