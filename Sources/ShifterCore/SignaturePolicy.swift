/// What the gateway's signature policy asks of images from one scope.
public enum SignatureRequirement: Sendable, Equatable {
    /// Any image, signed or not.
    case accept
    /// No image.
    case reject
    /// Images with a signature, by one of these public keys (PEM files), for the digest pulled
    /// and for the image's own repository.
    case signedBy(keyFiles: [String])
}

/// The gateway's signature policy, in the spirit of `containers-policy.json(5)`: a requirement for
/// the images of each scope (`REGISTRY`, `REGISTRY/NAMESPACE`, `REGISTRY/NAMESPACE/REPOSITORY`),
/// the most specific scope that holds an image deciding, else the default; and one for images
/// imported from archives, which carry no registry signature.
public struct SignaturePolicy: Sendable, Equatable {
    public var defaultRequirement: SignatureRequirement
    public var scopes: [String: SignatureRequirement]
    /// Archive imports (`shifterimg import`): `accept` or `reject`; an archive has no signature,
    /// so `signedBy` refuses them too.
    public var archives: SignatureRequirement

    public init(defaultRequirement: SignatureRequirement = .accept, scopes: [String: SignatureRequirement] = [:],
                archives: SignatureRequirement = .accept) {
        self.defaultRequirement = defaultRequirement
        self.scopes = scopes
        self.archives = archives
    }

    /// Every key file the policy names.
    public var keyFiles: [String] {
        ([defaultRequirement, archives] + scopes.values).flatMap { requirement -> [String] in
            if case .signedBy(let files) = requirement { return files }
            return []
        }
    }

    /// The scope that decides for `registry`/`repository` (`default` when none holds it), and its
    /// requirement.
    public func requirement(registry: String, repository: String) -> (scope: String, requirement: SignatureRequirement) {
        var name = registry.lowercased() + "/" + repository
        while true {
            if let requirement = scopes[name] { return (name, requirement) }
            guard let slash = name.lastIndex(of: "/") else { return ("default", defaultRequirement) }
            name = String(name[..<slash])
        }
    }

    /// `scope` with its registry in the one spelling image references get
    /// (`ImageReference.canonicalRegistryHost`: `docker.io` is Docker Hub's
    /// `registry-1.docker.io`, `:443` is no port), so that every spelling of an image's registry
    /// meets its scope; nil where `scope` has a problem (`problem(withScope:)`).
    public static func canonicalScope(_ scope: String) -> String? {
        guard problem(withScope: scope) == nil else { return nil }
        let parts = scope.split(separator: "/", omittingEmptySubsequences: false)
        guard let host = ImageReference.canonicalRegistryHost(String(parts[0])) else { return nil }
        return ([host] + parts.dropFirst().map(String.init)).joined(separator: "/")
    }

    /// Why `scope` cannot be a policy's scope, or nil: a registry host (with a port, if any),
    /// then repository path components, no tag or digest.
    public static func problem(withScope scope: String) -> String? {
        let parts = scope.split(separator: "/", omittingEmptySubsequences: false)
        guard let host = parts.first, !host.isEmpty else { return "it does not start with a registry" }
        if host.lowercased() != host { return "the registry is not in lower case" }
        if ImageReference.canonicalRegistryHost(String(host)) == nil {
            return "\(host) is not a registry host (one with a \".\" or a port, or localhost)"
        }
        if parts.dropFirst().contains(where: \.isEmpty) { return "it has an empty path component" }
        if scope.contains("@") || parts.dropFirst().contains(where: { $0.contains(":") }) {
            return "it names a tag or digest; a scope is a registry or a repository path"
        }
        return nil
    }
}

/// Why a signature does not let an image in; the gateway counts refusals by `kind`.
public struct SignatureRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        /// The policy rejects the scope.
        case rejected
        /// No signature was found.
        case unsigned
        /// Signatures, none by an accepted key.
        case wrongKey = "wrong-key"
        /// A signature by an accepted key, for another repository.
        case identityMismatch = "identity-mismatch"
        /// A signature by an accepted key, for another digest.
        case digestMismatch = "digest-mismatch"
        /// A signature's manifest or payload that cannot be used.
        case malformed
    }

    public var kind: Kind
    public var reason: String

    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    public var description: String { reason }
}

/// The "simple signing" payload that cosign signs (containers-signature(5)): which manifest
/// digest is signed, for which repository.
public struct SimpleSigningPayload: Sendable, Equatable {
    /// `critical.identity.docker-reference`.
    public var dockerReference: String
    /// `critical.image.docker-manifest-digest`.
    public var manifestDigest: String

    /// The types of payload read: cosign's, and the original containers/image one.
    public static let types = ["cosign container image signature", "atomic container signature"]

    public init(dockerReference: String, manifestDigest: String) {
        self.dockerReference = dockerReference
        self.manifestDigest = manifestDigest
    }

    /// Reads a payload; the reason names the field.
    public static func parse(_ bytes: [UInt8]) throws(SignatureRefusal) -> SimpleSigningPayload {
        do throws(JSONError) {
            let top = try JSONRecord(JSONValue.parse(bytes))
            guard let critical = try top.record("critical") else { throw JSONError("no \"critical\" object") }
            guard let type = try critical.string("type"), types.contains(type) else {
                throw JSONError("\"critical.type\" is not \(types.map { "\"\($0)\"" }.joined(separator: " or "))")
            }
            guard let digest = try critical.record("image")?.string("docker-manifest-digest") else {
                throw JSONError("no \"critical.image.docker-manifest-digest\"")
            }
            guard let reference = try critical.record("identity")?.string("docker-reference") else {
                throw JSONError("no \"critical.identity.docker-reference\"")
            }
            return SimpleSigningPayload(dockerReference: reference, manifestDigest: digest)
        } catch {
            throw SignatureRefusal(.malformed, "the signed payload is not a simple-signing payload: \(error.reason)")
        }
    }

    /// The repository the payload names, `REGISTRY/REPOSITORY` without tag or digest, Docker Hub's
    /// several names made one (`docker.io`), and a one-part Hub name given its `library/`.
    public static func repositoryName(_ reference: String) -> String {
        var name = Substring(reference)
        if let at = name.firstIndex(of: "@") { name = name[..<at] }
        if let colon = name.lastIndex(of: ":"), !name[colon...].contains("/"), name.contains("/") { name = name[..<colon] }
        var parts = name.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let first = parts[0]
        let hasRegistry = parts.count > 1 && (first.contains(".") || first.contains(":") || first == "localhost")
        if !hasRegistry { parts.insert("docker.io", at: 0) }
        parts[0] = parts[0].lowercased()
        if ["index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"].contains(parts[0]) { parts[0] = "docker.io" }
        if parts[0] == "docker.io" && parts.count == 2 { parts.insert("library", at: 1) }
        return parts.joined(separator: "/")
    }

    /// Whether the payload lets in the image `manifestDigest` of `registry`/`repository`; the
    /// refusal says why not.
    public func check(manifestDigest expected: String, registry: String, repository: String) throws(SignatureRefusal) {
        guard manifestDigest == expected else {
            throw SignatureRefusal(.digestMismatch, "the signature is for \(escaped(manifestDigest, limit: 300)), not \(expected) (a signature copied from another image?)")
        }
        let wanted = Self.repositoryName(registry + "/" + repository)
        guard Self.repositoryName(dockerReference) == wanted else {
            throw SignatureRefusal(.identityMismatch, "the signature is for \(escaped(dockerReference, limit: 300)), not \(wanted)")
        }
    }
}

/// The parts of a Sigstore bundle (v0.3, protobuf-specs' JSON form) that cosign 3 writes for
/// `cosign sign --key`, and the in-toto Statement it signs: a DSSE envelope whose signature covers
/// the PAE of its payload, a Statement whose subject is the image's digest. Nothing signed names
/// the repository: the bundle's identity is the repository it was found in.
public struct SigstoreBundle: Sendable, Equatable {
    /// The envelope's `payloadType`, `payload` (base64) and signatures' `sig` (base64).
    public var payloadType: String
    public var payload: String
    public var signatures: [String]

    public static let mediaTypes = ["application/vnd.dev.sigstore.bundle.v0.3+json", "application/vnd.dev.sigstore.bundle+json;version=0.3"]
    public static let inTotoPayloadType = "application/vnd.in-toto+json"
    /// The predicate of cosign's image signatures; any other is an attestation, not a signature.
    public static let signaturePredicate = "https://sigstore.dev/cosign/sign/v1"

    public init(payloadType: String, payload: String, signatures: [String]) {
        self.payloadType = payloadType
        self.payload = payload
        self.signatures = signatures
    }

    /// Reads a bundle's envelope; the refusal names what is wrong.
    public static func parse(_ bytes: [UInt8]) throws(SignatureRefusal) -> SigstoreBundle {
        do throws(JSONError) {
            let top = try JSONRecord(JSONValue.parse(bytes))
            guard let mediaType = try top.string("mediaType"), mediaTypes.contains(mediaType) else {
                throw JSONError("not a Sigstore bundle v0.3 (its mediaType)")
            }
            guard let envelope = try top.record("dsseEnvelope") else {
                throw JSONError("no \"dsseEnvelope\" (a message signature is not an image signature)")
            }
            guard let type = try envelope.string("payloadType"), let payload = try envelope.string("payload") else {
                throw JSONError("the envelope has no payloadType or payload")
            }
            var signatures: [String] = []
            for value in try envelope.values("signatures") ?? [] {
                guard let signature = try JSONRecord(value).string("sig") else { throw JSONError("a signature has no \"sig\"") }
                signatures.append(signature)
            }
            guard type == inTotoPayloadType else { throw JSONError("the envelope's payloadType is \(quoted(type)), not \(inTotoPayloadType)") }
            return SigstoreBundle(payloadType: type, payload: payload, signatures: signatures)
        } catch {
            throw SignatureRefusal(.malformed, "a Sigstore bundle cannot be used: \(error.reason)")
        }
    }

    /// DSSE's pre-authentication encoding of `payload`, which the signature covers:
    /// `DSSEv1 SP len(type) SP type SP len(payload) SP payload`.
    public static func preAuthenticationEncoding(type: String, payload: [UInt8]) -> [UInt8] {
        Array("DSSEv1 \(type.utf8.count) \(type) \(payload.count) ".utf8) + payload
    }

    /// Checks that the signed Statement `payload` is cosign's signature of image `digest`.
    public static func checkStatement(_ payload: [UInt8], digest: String) throws(SignatureRefusal) {
        let subjects: [String]
        let predicate: String?
        do throws(JSONError) {
            let statement = try JSONRecord(JSONValue.parse(payload))
            guard let type = try statement.string("_type"), type.hasPrefix("https://in-toto.io/Statement/") else {
                throw JSONError("not an in-toto Statement")
            }
            predicate = try statement.string("predicateType")
            var found: [String] = []
            for value in try statement.values("subject") ?? [] {
                if let hex = try JSONRecord(value).record("digest")?.string("sha256") { found.append("sha256:" + hex) }
            }
            subjects = found
        } catch {
            throw SignatureRefusal(.malformed, "the signed statement cannot be used: \(error.reason)")
        }
        guard predicate == signaturePredicate else {
            throw SignatureRefusal(.malformed, "the bundle is an attestation of type \(escaped(predicate ?? "none", limit: 300)), not a signature (\(signaturePredicate))")
        }
        guard subjects.contains(digest) else {
            throw SignatureRefusal(.digestMismatch, "the signature is for \(escaped(subjects.first ?? "no digest", limit: 300)), not \(digest) (a signature copied from another image?)")
        }
    }
}
