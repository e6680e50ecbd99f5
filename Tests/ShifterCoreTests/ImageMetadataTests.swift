import Testing

@testable import ShifterCore

struct ImageMetadataTests {
    static let digest = "sha256:" + String(repeating: "ab", count: 32)

    @Test func roundTripsThroughJSON() throws {
        let metadata = ImageMetadata(
            digest: Self.digest, manifestDigest: Self.digest, layers: [Self.digest], env: ["PATH=/usr/bin", "A=b c"],
            entrypoint: ["/entry.sh"], cmd: ["-c", "echo hi"], workdir: "/work", user: "1000:1000",
            labels: ["org.opencontainers.image.source": "https://example.org/x"], userACL: [1000], groupACL: [200],
            source: "docker:registry-1.docker.io/library/ubuntu:latest", created: "2024-01-02T03:04:05Z")
        let bytes = try metadata.encoded()
        #expect(try ImageMetadata.decode(bytes) == metadata)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("\"manifestDigest\""))
        #expect(text.contains("\n"))
        let keys = ["cmd", "created", "digest", "entrypoint", "env", "format", "groupACL", "labels", "layers",
            "manifestDigest", "source", "user", "userACL", "workdir"]
        let topLevelKeys = text.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("  \""), !line.hasPrefix("   ") else { return nil }
            return String(line.dropFirst(3).prefix(while: { $0 != "\"" }))
        }
        #expect(topLevelKeys == keys)
        #expect(try metadata.encoded() == bytes)
    }

    @Test func defaultsMissingOptionalKeys() throws {
        let json = #"{"format":"squashfs","digest":"\#(Self.digest)"}"#
        let metadata = try ImageMetadata.decode(Array(json.utf8))
        #expect(metadata == ImageMetadata(digest: Self.digest))
        #expect(metadata.isPublic)
    }

    @Test(arguments: [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("[]", "should be"),
        (#"{"format":"squashfs"}"#, #"missing key "digest""#),
        (#"{"format":"squashfs","digest":3}"#, #""digest" should be a string"#),
        (#"{"format":"squashfs","digest":"d","userACL":[-1]}"#, #""userACL" should be a list of unsigned 32-bit numbers"#),
        (#"{"format":"squashfs","digest":"d"} x"#, "not valid JSON"),
        (#"{"format":"squashfs","digest":"d","digest":"e"}"#, "duplicate key"),
        (#"{"format":"squashfs","digest":"d","labels":{"a":1}}"#, "labels"),
        (#"{"format":"squashfs","digest":"d","env":null}"#, ""),
    ])
    func reportsBadJSONOnOneLine(json: String, fragment: String) {
        do {
            let metadata = try ImageMetadata.decode(Array(json.utf8))
            // A null optional list is read as absent; that is the only accepted case here.
            #expect(fragment.isEmpty, "accepted: \(json)")
            #expect(metadata.env == [])
        } catch {
            #expect(error.description.hasPrefix("image metadata: "))
            #expect(error.description.contains(fragment))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test(arguments: [
        ([UInt32](), [UInt32](), UInt32(1000), [UInt32](), true),
        ([1000], [], 1000, [], true),
        ([1000], [], 1001, [], false),
        ([1000], [], 0, [], true),
        ([], [200], 1001, [100, 200], true),
        ([], [200], 1001, [100], false),
        ([5], [200], 1001, [], false),
        ([5], [200], 5, [999], true),
    ])
    func checksAccess(users: [UInt32], groups: [UInt32], uid: UInt32, gids: [UInt32], allowed: Bool) {
        let metadata = ImageMetadata(digest: Self.digest, userACL: users, groupACL: groups)
        #expect(metadata.isAllowed(uid: uid, gids: gids) == allowed)
    }
}
