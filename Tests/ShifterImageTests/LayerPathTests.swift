import Testing
@testable import ShifterImage

struct LayerPathTests {
    @Test(arguments: [
        ("a/b", "a/b"),
        ("./a//b/", "a/b"),
        ("./", ""),
        (".", ""),
        ("a/./b", "a/b"),
        ("...", "..."),
        ("..a/b..", "..a/b.."),
    ])
    func normalises(raw: String, expected: String) throws {
        let path = try LayerPath.parse(raw)
        #expect(path.key == Array(expected.utf8))
    }

    @Test(arguments: [
        ("", LayerPath.Problem.empty),
        ("/etc/passwd", .absolute),
        ("//etc", .absolute),
        ("../etc/passwd", .parentReference),
        ("a/../../b", .parentReference),
        ("a/..", .parentReference),
        (String(repeating: "n", count: 256), .nameTooLong),
    ])
    func refuses(raw: String, problem: LayerPath.Problem) {
        #expect(throws: problem) { try LayerPath.parse(raw) }
    }

    @Test func keepsBytesThatAreNotUTF8() throws {
        let path = try LayerPath.parse([0x61, 0xFF, 0x2F, 0x62])
        #expect(path.components.map(\.bytes) == [[0x61, 0xFF], [0x62]])
    }

    @Test func ordersNamesByBytes() {
        // Squashfs directories must be sorted byte-wise; Swift's String order is not byte order.
        let names = ["b", "B", "a", "é", "e\u{301}", "_"].map { PathComponent($0) }.sorted()
        #expect(names.map(\.bytes) == ["B", "_", "a", "b", "e\u{301}", "é"].map { Array($0.utf8) })
    }
}
