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
        // A deep pax path once took 10 GB and a crash to flatten; PATH_MAX bounds it.
        (String(repeating: "a/", count: 100_000) + "leaf", .pathTooLong),
        (String(repeating: "a/", count: 2048) + "b", .pathTooLong),
    ])
    func refuses(raw: String, problem: LayerPath.Problem) {
        #expect(throws: problem) { try LayerPath.parse(raw) }
    }

    @Test func acceptsAPathOfExactlyPathMax() throws {
        let path = try LayerPath.parse(String(repeating: "a/", count: 2047) + "bb")
        #expect(path.key.count == LayerPath.maximumPathLength)
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
