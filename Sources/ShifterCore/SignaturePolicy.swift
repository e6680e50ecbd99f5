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

    /// Why `scope` cannot be a policy's scope, or nil: a registry host (with a port, if any),
    /// then repository path components, no tag or digest.
    public static func problem(withScope scope: String) -> String? {
        let parts = scope.split(separator: "/", omittingEmptySubsequences: false)
        guard let host = parts.first, !host.isEmpty else { return "it does not start with a registry" }
        if host.lowercased() != host { return "the registry is not in lower case" }
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
            throw SignatureRefusal(.digestMismatch, "the signature is for \(manifestDigest), not \(expected) (a signature copied from another image?)")
        }
        let wanted = Self.repositoryName(registry + "/" + repository)
        guard Self.repositoryName(dockerReference) == wanted else {
            throw SignatureRefusal(.identityMismatch, "the signature is for \(dockerReference), not \(wanted)")
        }
    }
}
