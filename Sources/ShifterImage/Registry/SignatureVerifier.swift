import ShifterCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Who signed an image, as its record keeps it.
public struct ImageSigner: Sendable, Equatable {
    /// The key's fingerprint (`SignerKey.fingerprint`).
    public var keyFingerprint: String
    /// The identity the signature names (its `docker-reference`).
    public var identity: String
}

/// An image checked against the signature policy apart from a pull: the gateway's `reverify`.
public enum ImageSignatureCheck {
    /// The signer of image `digest` (what `reference`, a `docker:` reference, resolved to) that
    /// `policy` asks for, or nil where it accepts the image unsigned; a refusal is an
    /// `ImageImportError` with code `signatureRefused`.
    public static func check(_ reference: ImageReference, digest: String, policy: SignaturePolicy,
                             credentials: RegistryCredentials?, transport: TransportOptions,
                             onRefusal: (@Sendable (SignatureRefusal.Kind) -> Void)? = nil) throws(ImageImportError) -> ImageSigner? {
        guard reference.type == .docker, let registry = reference.registry else {
            throw ImageImportError(.notFound, "image \(reference): only docker images have registry signatures")
        }
        let client = RegistryClient(registry: registry, repository: reference.repository, credentials: credentials, options: transport)
        return try SignatureVerifier(client: client).check(policy, digest: digest, onRefusal: onRefusal)
    }
}

/// Checks an image against the gateway's signature policy before any layer is fetched: the
/// cosign signatures a registry holds for the digest the reference resolved to (for a
/// multi-platform image, the index's), as cosign 1 and 2 store them (the manifest tagged
/// `sha256-HEX.sig`, one simple-signing payload a layer, its signature in the layer's
/// `dev.cosignproject.cosign/signature` annotation) and as OCI 1.1 referrers of the image (the
/// referrers API, or its `sha256-HEX` tag where the registry has no such API).
struct SignatureVerifier {
    let client: RegistryClient

    static let payloadMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
    static let signatureAnnotation = "dev.cosignproject.cosign/signature"
    static let referrerArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
    /// The largest payload read; cosign's are a few hundred bytes.
    static let payloadSizeLimit: Int64 = 64 * 1024
    /// Signature manifests looked at for one image, at most.
    static let manifestLimit = 16

    /// The image's signer where the scope of `policy` that holds the client's repository asks for
    /// one; nil where it accepts the image unsigned.
    func check(_ policy: SignaturePolicy, digest: String, onRefusal: (@Sendable (SignatureRefusal.Kind) -> Void)?) throws(ImageImportError) -> ImageSigner? {
        let (scope, requirement) = policy.requirement(registry: client.registry, repository: client.repository)
        return try check(requirement, scope: scope, digest: digest) { onRefusal?($0.kind) }
    }

    /// The image's signer where `requirement` asks for one; nil where it accepts any image. A
    /// refusal is an `ImageImportError` whose message says which scope refused and why.
    func check(_ requirement: SignatureRequirement, scope: String, digest: String,
               onRefusal: (SignatureRefusal) -> Void = { _ in }) throws(ImageImportError) -> ImageSigner? {
        func describe(_ refusal: SignatureRefusal) -> ImageImportError {
            onRefusal(refusal)
            return ImageImportError(.signatureRefused,
                                    "\(client.registry)/\(client.repository)@\(digest): refused by the site's signature policy (scope \(scope)): \(refusal.reason)")
        }
        let keyFiles: [String]
        switch requirement {
        case .accept: return nil
        case .reject: throw describe(SignatureRefusal(.rejected, "the policy rejects every image of this scope"))
        case .signedBy(let files): keyFiles = files
        }
        var keys: [SignerKey] = []
        for file in keyFiles { keys.append(try SignerKey.load(file)) }
        let transfer = try CurlTransfer(options: client.options)
        var refusals: [SignatureRefusal] = []
        for manifest in try signatureManifests(digest: digest, transfer: transfer) {
            for layer in manifest.layers ?? [] where layer.mediaType == Self.payloadMediaType {
                do throws(SignatureRefusal) {
                    let (payload, key) = try checked(layer, keys: keys, transfer: transfer)
                    try payload.check(manifestDigest: digest, registry: client.registry, repository: client.repository)
                    return ImageSigner(keyFingerprint: key.fingerprint, identity: payload.dockerReference)
                } catch {
                    refusals.append(error)
                }
            }
        }
        // The reason that says most: a good key's signature for the wrong image, then a broken
        // signature, then another key's, then none at all.
        let order: [SignatureRefusal.Kind] = [.digestMismatch, .identityMismatch, .malformed, .wrongKey]
        if let refusal = order.lazy.compactMap({ kind in refusals.first { $0.kind == kind } }).first {
            throw describe(refusal)
        }
        throw describe(SignatureRefusal(.unsigned, "the registry holds no signature for it (cosign sign it, or ask the site to accept its scope)"))
    }

    /// The layer's payload, once its signature verifies with one of `keys`, and that key.
    private func checked(_ layer: ContentDescriptor, keys: [SignerKey], transfer: CurlTransfer) throws(SignatureRefusal) -> (SimpleSigningPayload, SignerKey) {
        guard let signature = signatureBytes(layer) else {
            throw SignatureRefusal(.malformed, "a signature layer has no \(Self.signatureAnnotation) annotation in base64")
        }
        guard layer.size >= 0, layer.size <= Self.payloadSizeLimit else {
            throw SignatureRefusal(.malformed, "a signature's payload \(layer.digest) is said to be \(layer.size) bytes, more than the \(Self.payloadSizeLimit) a payload may have")
        }
        let sink = MemoryBodySink(limit: Int(layer.size), what: "signature payload \(layer.digest)")
        let bytes: [UInt8]
        do throws(ImageImportError) {
            try client.get("/v2/\(client.repository)/blobs/\(layer.digest)", accept: [], transfer: transfer,
                           what: "signature payload \(layer.digest)") { sink.resetBytes(); return sink }
            bytes = sink.bytes
            let actual = try SHA256Hasher.digest(of: bytes)
            guard actual == layer.digest else {
                throw ImageImportError(.digestMismatch, "its content has digest \(actual)")
            }
        } catch {
            throw SignatureRefusal(.malformed, "a signature's payload \(layer.digest) cannot be read: \(error.message)")
        }
        guard let key = keys.first(where: { $0.verifies(signature, of: bytes) }) else {
            let names = keys.map { "\($0.path) (\($0.fingerprint))" }.joined(separator: ", ")
            throw SignatureRefusal(.wrongKey, "no signature verifies with the accepted key\(keys.count == 1 ? "" : "s") \(names)")
        }
        return (try SimpleSigningPayload.parse(bytes), key)
    }

    private func signatureBytes(_ layer: ContentDescriptor) -> [UInt8]? {
        guard let text = layer.annotations?[Self.signatureAnnotation], let data = Data(base64Encoded: text) else { return nil }
        return Array(data)
    }

    /// The signature manifests the registry holds for `digest`: cosign's `.sig` tag, then the
    /// image's referrers of cosign's signature type.
    private func signatureManifests(digest: String, transfer: CurlTransfer) throws(ImageImportError) -> [ManifestDocument] {
        let hex = digest.dropFirst("sha256:".count)
        var documents: [ManifestDocument] = []
        if let document = try optionalManifest("sha256-\(hex).sig", transfer: transfer) { documents.append(document) }
        var referrers = try optionalReferrers(digest: digest, transfer: transfer)
        if referrers == nil { referrers = try optionalManifest("sha256-\(hex)", transfer: transfer) }
        for entry in (referrers?.manifests ?? []).prefix(Self.manifestLimit) where entry.artifactType == Self.referrerArtifactType {
            if let document = try optionalManifest(entry.digest, transfer: transfer) { documents.append(document) }
        }
        return documents
    }

    private func optionalManifest(_ reference: String, transfer: CurlTransfer) throws(ImageImportError) -> ManifestDocument? {
        do throws(ImageImportError) {
            let (bytes, _) = try client.fetchManifest(reference, transfer: transfer)
            return try client.decodeManifest(bytes, what: "signature manifest \(reference)")
        } catch where error.code == .notFound {
            return nil
        }
    }

    /// The referrers index of `digest`; nil where the registry has no referrers API.
    private func optionalReferrers(digest: String, transfer: CurlTransfer) throws(ImageImportError) -> ManifestDocument? {
        let sink = MemoryBodySink(limit: RegistryClient.manifestSizeLimit, what: "referrers of \(digest)")
        do throws(ImageImportError) {
            try client.get("/v2/\(client.repository)/referrers/\(digest)?artifactType=\(Self.referrerArtifactType)",
                           accept: ["application/vnd.oci.image.index.v1+json"], transfer: transfer,
                           what: "referrers of \(digest)") { sink.resetBytes(); return sink }
            return try client.decodeManifest(sink.bytes, what: "referrers of \(digest)")
        } catch where error.code == .notFound {
            return nil
        }
    }
}
