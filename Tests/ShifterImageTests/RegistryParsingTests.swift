import Testing
@testable import ShifterImage

struct RegistryParsingTests {
    @Test func parsesDockerHubBearerChallenge() {
        let challenges = AuthenticationChallenge.parse(
            #"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#)
        #expect(challenges == [AuthenticationChallenge(scheme: "bearer", parameters: [
            "realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/busybox:pull",
        ])])
    }

    @Test(arguments: [
        (#"Basic realm="shifter-test-bed""#, ["basic"]),
        (#"Bearer realm="https://x/token", Basic realm="x""#, ["bearer", "basic"]),
        (#"bearer realm=unquoted,service=svc"#, ["bearer"]),
        ("", []),
    ])
    func parsesSchemes(header: String, schemes: [String]) {
        #expect(AuthenticationChallenge.parse(header).map(\.scheme) == schemes)
    }

    @Test func unescapesQuotedValues() {
        let challenge = AuthenticationChallenge.parse(#"Bearer realm="a \"quoted\" realm", error="insufficient_scope""#).first
        #expect(challenge?.parameters["realm"] == #"a "quoted" realm"#)
        #expect(challenge?.parameters["error"] == "insufficient_scope")
    }

    @Test func summarisesRegistryErrors() {
        let body = Array(#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#.utf8)
        #expect(RegistryErrorBody.summary(body) == "MANIFEST_UNKNOWN: manifest unknown")
        #expect(RegistryErrorBody.summary(Array("<html>".utf8)) == nil)
    }

    @Test(arguments: [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/aarch64/v8", "linux/arm64/v8"),
    ])
    func parsesPlatforms(text: String, expected: String) throws {
        #expect(try ImagePlatform.parse(text).description == expected)
    }

    @Test(arguments: ["linux", "linux/", "/amd64", "a/b/c/d"])
    func refusesMalformedPlatforms(text: String) {
        #expect(throws: ImageImportError.self) { try ImagePlatform.parse(text) }
    }

    @Test func matchesPlatforms() {
        let arm64 = ImagePlatform(os: "linux", architecture: "arm64", variant: "v8")
        #expect(arm64.accepts(ImagePlatform(os: "linux", architecture: "arm64")))
        #expect(!arm64.accepts(ImagePlatform(os: "linux", architecture: "arm", variant: "v7")))
        #expect(ImagePlatform.linuxAMD64.accepts(ImagePlatform(os: "linux", architecture: "amd64", variant: "v3")))
        #expect(!ImagePlatform.linuxAMD64.accepts(ImagePlatform(os: "windows", architecture: "amd64")))
    }

    @Test(arguments: [
        ("zstd", SquashfsCompression(algorithm: .zstd, level: 3)),
        ("zstd:19", SquashfsCompression(algorithm: .zstd, level: 19)),
        ("gzip", SquashfsCompression(algorithm: .gzip, level: 9)),
        ("lz4", SquashfsCompression(algorithm: .lz4)),
        ("xz:0", SquashfsCompression(algorithm: .xz, level: 0)),
    ])
    func parsesCompression(text: String, expected: SquashfsCompression) throws {
        #expect(try SquashfsCompression.parse(text) == expected)
    }

    @Test(arguments: ["lzo", "zstd:23", "gzip:0", "lz4:1", "zstd:fast", ""])
    func refusesBadCompression(text: String) {
        #expect(throws: ImageImportError.self) { try SquashfsCompression.parse(text) }
    }

    @Test func distinguishesIndexesFromManifests() {
        let index = ManifestDocument(schemaVersion: 2, mediaType: nil, manifests: [], config: nil, layers: nil, fsLayers: nil)
        #expect(index.isIndex(contentType: MediaType.ociIndex))
        #expect(index.isIndex(contentType: nil))
        let manifest = ManifestDocument(schemaVersion: 2, mediaType: MediaType.dockerManifest, manifests: nil, config: nil, layers: [], fsLayers: nil)
        #expect(!manifest.isIndex(contentType: MediaType.ociIndex))
    }

    @Test func formatsByteCounts() {
        #expect(PullProgress.formatBytes(312) == "312 B")
        #expect(PullProgress.formatBytes(1536) == "1.5 KiB")
        #expect(PullProgress.formatBytes(5 * 1024 * 1024) == "5.0 MiB")
    }

    @Test func plainProgressLinesAreParseable() {
        var progress = PullProgress(reference: "busybox")
        let layer = LayerDescription(digest: "sha256:" + String(repeating: "a", count: 64), size: 2048)
        #expect(progress.record(.resolved(imageID: "sha256:x", platform: "linux/amd64", layers: [layer]))
            == ["resolved reference=busybox id=sha256:x platform=linux/amd64 layers=1 bytes=2048"])
        #expect(progress.record(.downloading(index: 0, digest: layer.digest, received: 1024, size: 2048)).isEmpty)
        #expect(progress.terminalLines() == ["layer 1/1 aaaaaaaaaaaa  downloading  1.0 KiB / 2.0 KiB"])
        #expect(progress.record(.downloaded(index: 0, digest: layer.digest, size: 2048))
            == ["downloaded layer=1/1 digest=\(layer.digest) bytes=2048"])
    }
}
