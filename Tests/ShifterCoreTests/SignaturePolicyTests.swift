import ShifterCore
import Testing

@Suite("The gateway's signature policy and cosign's simple-signing payload")
struct SignaturePolicyTests {
    static let policy = SignaturePolicy(
        defaultRequirement: .reject,
        scopes: ["r.example": .accept, "r.example/team": .signedBy(keyFiles: ["/k/team.pub"]),
                 "r.example/team/tools": .signedBy(keyFiles: ["/k/tools.pub"]), "r.example/team/tools/old": .reject])

    @Test("the most specific scope that holds an image decides, else the default", arguments: [
        ("r.example", "other/app", "r.example", SignatureRequirement.accept),
        ("r.example", "team/app", "r.example/team", .signedBy(keyFiles: ["/k/team.pub"])),
        ("r.example", "team/tools", "r.example/team/tools", .signedBy(keyFiles: ["/k/tools.pub"])),
        ("r.example", "team/tools/gcc", "r.example/team/tools", .signedBy(keyFiles: ["/k/tools.pub"])),
        ("r.example", "team/tools/old", "r.example/team/tools/old", .reject),
        ("r.example", "teamwork/app", "r.example", .accept),
        ("R.Example", "team/app", "r.example/team", .signedBy(keyFiles: ["/k/team.pub"])),
        ("other.example", "team/app", "default", .reject),
        ("r.example:5000", "team/app", "default", .reject),
    ])
    func scopes(registry: String, repository: String, scope: String, requirement: SignatureRequirement) {
        let decision = Self.policy.requirement(registry: registry, repository: repository)
        #expect(decision.scope == scope)
        #expect(decision.requirement == requirement)
    }

    @Test("the key files of every rule")
    func keyFiles() {
        #expect(Self.policy.keyFiles.sorted() == ["/k/team.pub", "/k/tools.pub"])
    }

    static func payload(_ reference: String = "r.example/team/app", digest: String = "sha256:" + String(repeating: "a", count: 64),
                        type: String = "cosign container image signature") -> [UInt8] {
        Array(#"{"critical":{"identity":{"docker-reference":"\#(reference)"},"image":{"docker-manifest-digest":"\#(digest)"},"type":"\#(type)"},"optional":null}"#.utf8)
    }

    @Test("a payload cosign writes is read")
    func parse() throws {
        let payload = try SimpleSigningPayload.parse(Self.payload())
        #expect(payload == SimpleSigningPayload(dockerReference: "r.example/team/app", manifestDigest: "sha256:" + String(repeating: "a", count: 64)))
        #expect(try SimpleSigningPayload.parse(Self.payload(type: "atomic container signature")).dockerReference == "r.example/team/app")
    }

    @Test("a payload that is not simple signing is refused as malformed, naming the field", arguments: [
        ("not json", "not a simple-signing payload"),
        (#"{"optional": null}"#, "no \"critical\" object"),
        (#"{"critical": {"type": "something else", "image": {}, "identity": {}}}"#, "\"critical.type\" is not"),
        (#"{"critical": {"type": "cosign container image signature", "identity": {"docker-reference": "r/x"}}}"#, "docker-manifest-digest"),
        (#"{"critical": {"type": "cosign container image signature", "image": {"docker-manifest-digest": "sha256:1"}}}"#, "docker-reference"),
    ])
    func malformed(text: String, reason: String) {
        #expect {
            try SimpleSigningPayload.parse(Array(text.utf8))
        } throws: { error in
            guard let refusal = error as? SignatureRefusal else { return false }
            return refusal.kind == .malformed && refusal.reason.contains(reason)
        }
    }

    @Test("a repository's several names are one", arguments: [
        ("r.example/team/app", "r.example/team/app"),
        ("r.example/team/app:1.0", "r.example/team/app"),
        ("r.example:5000/team/app:1.0", "r.example:5000/team/app"),
        ("r.example:5000/team/app", "r.example:5000/team/app"),
        ("r.example/team/app@sha256:abc", "r.example/team/app"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox"),
        ("registry-1.docker.io/library/busybox:latest", "docker.io/library/busybox"),
        ("busybox", "docker.io/library/busybox"),
        ("user/tool", "docker.io/user/tool"),
        ("localhost/tool", "localhost/tool"),
        ("R.Example/team/app", "r.example/team/app"),
    ])
    func repositoryNames(reference: String, name: String) {
        #expect(SimpleSigningPayload.repositoryName(reference) == name)
    }

    @Test("a payload lets in its own digest of its own repository only", arguments: [
        ("r.example/team/app", "sha256:" + String(repeating: "a", count: 64), nil as SignatureRefusal.Kind?),
        ("r.example/team/app:v2", "sha256:" + String(repeating: "a", count: 64), nil),
        ("r.example/team/other", "sha256:" + String(repeating: "a", count: 64), .identityMismatch),
        ("r.example/team/app", "sha256:" + String(repeating: "b", count: 64), .digestMismatch),
    ])
    func check(reference: String, digest: String, refusal: SignatureRefusal.Kind?) throws {
        let payload = try SimpleSigningPayload.parse(Self.payload(reference, digest: digest))
        do {
            try payload.check(manifestDigest: "sha256:" + String(repeating: "a", count: 64), registry: "r.example", repository: "team/app")
            #expect(refusal == nil)
        } catch {
            #expect(error.kind == refusal)
        }
    }

    @Test("a scope's registry is spelt as image references spell it", arguments: [
        ("docker.io", "registry-1.docker.io"), ("index.docker.io/library", "registry-1.docker.io/library"),
        ("registry.hub.docker.com/org/app", "registry-1.docker.io/org/app"), ("r.example:443/a", "r.example/a"),
        ("r.example:05000/a", "r.example:5000/a"), ("localhost:5000", "localhost:5000"), ("r.example/a/b", "r.example/a/b"),
    ])
    func canonicalScopes(scope: String, canonical: String) {
        #expect(SignaturePolicy.canonicalScope(scope) == canonical)
    }

    @Test("an image reference written another way meets the same scope", arguments: [
        "docker.io/org/app", "index.docker.io/org/app", "org/app", "registry-1.docker.io:443/org/app",
    ])
    func referenceSpellings(text: String) throws {
        let reference = try ImageReference.parse(text, defaultType: .docker)
        let policy = SignaturePolicy(scopes: [SignaturePolicy.canonicalScope("docker.io/org")!: .reject])
        #expect(policy.requirement(registry: reference.registry ?? "", repository: reference.repository).requirement == .reject)
    }

    @Test("a scope is a registry and repository path, nothing else", arguments: [
        ("r.example", nil as String?), ("r.example:5000/team", nil), ("r.example/a/b/c", nil),
        ("", "does not start"), ("/team", "does not start"), ("R.example", "lower case"), ("r.example/a//b", "empty path"),
        ("r.example/a:1", "tag or digest"), ("r.example/a@sha256:1", "tag or digest"),
        ("team/app", "not a registry host"), ("r.example:99999/a", "not a registry host"),
    ])
    func scopeForms(scope: String, problem: String?) {
        let found = SignaturePolicy.problem(withScope: scope)
        if let problem { #expect(found?.contains(problem) == true, "\(scope): \(found ?? "nil")") } else { #expect(found == nil) }
    }

    static let key = "sha256:" + String(repeating: "c", count: 64)

    @Test("the nodes' rule: what runs with requireSignedImages and acceptedSigners", arguments: [
        ("", nil as String?, nil as String?),
        ("", key, nil),
        ("requireSignedImages=1", nil, "names no signer"),
        ("requireSignedImages=1", key, nil),
        ("acceptedSigners=\(key)", key, nil),
        ("acceptedSigners=\(key)", nil, "names no signer"),
        ("acceptedSigners=sha256:\(String(repeating: "d", count: 64)) \(key)", key, nil),
        ("acceptedSigners=sha256:\(String(repeating: "d", count: 64))", key, "not one of this system's acceptedSigners"),
    ])
    func nodes(line: String, signer: String?, problem: String?) throws {
        let config = try SiteConfig.parse("udiMount=/u\nloopMount=/l\nimagePath=/i\n\(line)\n", source: "test").config
        let found = config.signerProblem(signer)
        if let problem { #expect(found?.contains(problem) == true, "\(found ?? "nil")") } else { #expect(found == nil) }
    }

    @Test("a signer that is not a key fingerprint is refused in udiRoot.conf", arguments: [
        "acceptedSigners=abc", "acceptedSigners=sha256:ABC", "acceptedSigners=sha256:" + String(repeating: "g", count: 64),
        "acceptedSigners=sha256:" + String(repeating: "a", count: 63),
    ])
    func badSigner(line: String) {
        #expect(throws: SiteConfigError.self) {
            try SiteConfig.parse("udiMount=/u\nloopMount=/l\nimagePath=/i\n\(line)\n", source: "test")
        }
    }
}
