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
    /// The signer of image `digest` (a platform's manifest), pulled as `reference` (a `docker:`
    /// reference), that `policy` asks for, or nil where it accepts the image unsigned; a refusal
    /// is an `ImageImportError` with code `signatureRefused`. The signature sought is that of the
    /// index the reference names now, where it lists the image, else the image's own.
    public static func check(_ reference: ImageReference, digest: String, policy: SignaturePolicy,
                             credentials: RegistryCredentials?, transport: TransportOptions,
                             onRefusal: (@Sendable (SignatureRefusal.Kind) -> Void)? = nil) throws(ImageImportError) -> ImageSigner? {
        guard reference.type == .docker, let registry = reference.registry else {
            throw ImageImportError(.notFound, "image \(reference): only docker images have registry signatures")
        }
        let client = RegistryClient(registry: registry, repository: reference.repository, credentials: credentials, options: transport)
        if case .accept = policy.requirement(registry: registry, repository: reference.repository).requirement { return nil }
        let signed = try client.signedDigest(of: digest, as: reference.digest ?? reference.tag ?? "latest")
        return try SignatureVerifier(client: client).check(policy, digest: signed, onRefusal: onRefusal)
    }
}

/// Checks an image against the gateway's signature policy before any layer is fetched: the
/// signatures a registry holds for the digest the reference resolved to (for a multi-platform
/// image, the index's). Cosign's `.sig` tag first (`sha256-HEX.sig`: one simple-signing payload
/// a layer, its signature in the layer's `dev.cosignproject.cosign/signature` annotation, as
/// cosign 1 and 2 write it); where that holds none that passes, the image's OCI 1.1 referrers
/// (the registry's referrers API, or its `sha256-HEX` tag), of cosign's signature type or
/// Sigstore bundles (cosign 3's, a DSSE envelope of an in-toto Statement). The first signature
/// that passes ends the search; at most `payloadLimit` payloads are read in all, and every
/// digest the registry names is checked for its form before it is used in a request or a message.
struct SignatureVerifier {
    let client: RegistryClient

    static let payloadMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
    static let signatureAnnotation = "dev.cosignproject.cosign/signature"
    static let referrerArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
    static let bundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"
    /// The referrers' artifact types read: cosign's signatures, Sigstore bundles (also as older
    /// cosign 3 releases list them, with the empty type), and entries that give none.
    static let referrerTypes: Set<String?> = [referrerArtifactType, "application/vnd.dev.sigstore.bundle.v0.3+json",
                                              "application/vnd.oci.empty.v1+json", nil]
    /// The largest payload or bundle read; cosign's are a few hundred bytes, a bundle with a
    /// transparency log entry a few KiB.
    static let payloadSizeLimit: Int64 = 64 * 1024
    /// Referrer manifests read for one image, at most.
    static let manifestLimit = 16
    /// Payloads read for one image, at most, over every manifest.
    static let payloadLimit = 32

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
        var search = Search(keys: keys, digest: digest, transfer: try CurlTransfer(options: client.options))
        let hex = digest.dropFirst("sha256:".count)
        if let manifest = try optionalManifest("sha256-\(hex).sig", transfer: search.transfer),
           let signer = verified(manifest, search: &search) {
            return signer
        }
        for entry in try referrers(digest: digest, transfer: search.transfer) {
            guard let manifest = try optionalManifest(entry.digest, transfer: search.transfer) else { continue }
            guard manifest.subject?.digest == digest else {
                search.refusals.append(SignatureRefusal(.malformed, "a referrer listed for the image, \(entry.digest), is about another"))
                continue
            }
            if let signer = verified(manifest, search: &search) { return signer }
        }
        // The reason that says most: a good key's signature for the wrong image, then a broken
        // signature, then another key's, then none at all.
        let order: [SignatureRefusal.Kind] = [.digestMismatch, .identityMismatch, .malformed, .wrongKey]
        if let refusal = order.lazy.compactMap({ kind in search.refusals.first { $0.kind == kind } }).first {
            throw describe(refusal)
        }
        throw describe(SignatureRefusal(.unsigned, "the registry holds no signature for it (cosign sign it, or ask the site to accept its scope)"))
    }

    /// What one check has read so far, and why what it read did not pass.
    struct Search {
        let keys: [SignerKey]
        let digest: String
        let transfer: CurlTransfer
        var refusals: [SignatureRefusal] = []
        var payloadsRead = 0
        var seen: Set<String> = []
    }

    /// The signer of the first of `manifest`'s signatures that passes, or nil (the reasons in `search`).
    private func verified(_ manifest: ManifestDocument, search: inout Search) -> ImageSigner? {
        for layer in manifest.layers ?? [] {
            let isPayload = layer.mediaType == Self.payloadMediaType
            let isBundle = layer.mediaType?.hasPrefix(Self.bundleMediaTypePrefix) == true
            guard isPayload || isBundle else { continue }
            guard search.payloadsRead < Self.payloadLimit else {
                search.refusals.append(SignatureRefusal(.malformed, "more than \(Self.payloadLimit) signatures; the rest were not read"))
                return nil
            }
            guard search.seen.insert(layer.digest).inserted else { continue }
            search.payloadsRead += 1
            do throws(SignatureRefusal) {
                let bytes = try payload(layer, transfer: search.transfer)
                if isPayload {
                    let key = try verifyingKey(search.keys, signature: signatureBytes(layer), of: bytes)
                    let payload = try SimpleSigningPayload.parse(bytes)
                    try payload.check(manifestDigest: search.digest, registry: client.registry, repository: client.repository)
                    return ImageSigner(keyFingerprint: key.fingerprint, identity: payload.dockerReference)
                }
                let bundle = try SigstoreBundle.parse(bytes)
                guard let statement = Data(base64Encoded: bundle.payload).map(Array.init) else {
                    throw SignatureRefusal(.malformed, "a Sigstore bundle's payload is not base64")
                }
                let signed = SigstoreBundle.preAuthenticationEncoding(type: bundle.payloadType, payload: statement)
                let signatures = bundle.signatures.compactMap { Data(base64Encoded: $0).map(Array.init) }
                var key: SignerKey?
                for signature in signatures where key == nil { key = try? verifyingKey(search.keys, signature: signature, of: signed) }
                guard let key else { throw wrongKey(search.keys) }
                try SigstoreBundle.checkStatement(statement, digest: search.digest)
                // Nothing a bundle signs names a repository: its identity is where it was found.
                return ImageSigner(keyFingerprint: key.fingerprint, identity: "\(client.registry)/\(client.repository)")
            } catch {
                search.refusals.append(error)
            }
        }
        return nil
    }

    /// A layer's blob: a payload or a bundle, its digest's form and size checked before it is
    /// fetched, its content after.
    private func payload(_ layer: ContentDescriptor, transfer: CurlTransfer) throws(SignatureRefusal) -> [UInt8] {
        guard isSHA256Digest(layer.digest) else {
            throw SignatureRefusal(.malformed, "a signature's payload has digest \(displayQuoted(layer.digest)), not a sha256 digest")
        }
        guard layer.size >= 0, layer.size <= Self.payloadSizeLimit else {
            throw SignatureRefusal(.malformed, "a signature's payload \(layer.digest) is said to be \(layer.size) bytes, more than the \(Self.payloadSizeLimit) a payload may have")
        }
        let sink = MemoryBodySink(limit: Int(layer.size), what: "signature payload \(layer.digest)")
        do throws(ImageImportError) {
            try client.get("/v2/\(client.repository)/blobs/\(layer.digest)", accept: [], transfer: transfer,
                           what: "signature payload \(layer.digest)") { sink.resetBytes(); return sink }
            let actual = try SHA256Hasher.digest(of: sink.bytes)
            guard actual == layer.digest else {
                throw ImageImportError(.digestMismatch, "its content has digest \(actual)")
            }
            return sink.bytes
        } catch {
            throw SignatureRefusal(.malformed, "a signature's payload \(layer.digest) cannot be read: \(error.message)")
        }
    }

    private func verifyingKey(_ keys: [SignerKey], signature: [UInt8]?, of bytes: [UInt8]) throws(SignatureRefusal) -> SignerKey {
        guard let signature else {
            throw SignatureRefusal(.malformed, "a signature layer has no \(Self.signatureAnnotation) annotation in base64")
        }
        guard let key = keys.first(where: { $0.verifies(signature, of: bytes) }) else { throw wrongKey(keys) }
        return key
    }

    private func wrongKey(_ keys: [SignerKey]) -> SignatureRefusal {
        let names = keys.map { "\($0.path) (\($0.fingerprint))" }.joined(separator: ", ")
        return SignatureRefusal(.wrongKey, "no signature verifies with the accepted key\(keys.count == 1 ? "" : "s") \(names)")
    }

    private func signatureBytes(_ layer: ContentDescriptor) -> [UInt8]? {
        guard let text = layer.annotations?[Self.signatureAnnotation], let data = Data(base64Encoded: text) else { return nil }
        return Array(data)
    }

    /// The image's referrers of the kinds read, each digest of sha256 form, at most `manifestLimit`:
    /// the registry's referrers API, else (a registry without one answers it with an error) the
    /// index at the `sha256-HEX` tag.
    private func referrers(digest: String, transfer: CurlTransfer) throws(ImageImportError) -> [ContentDescriptor] {
        let hex = digest.dropFirst("sha256:".count)
        var index = try optionalReferrersAPI(digest: digest, transfer: transfer)
        if index == nil { index = try optionalManifest("sha256-\(hex)", transfer: transfer) }
        var seen: Set<String> = []
        let entries = (index?.manifests ?? []).filter {
            Self.referrerTypes.contains($0.artifactType) && isSHA256Digest($0.digest) && seen.insert($0.digest).inserted
        }
        return Array(entries.prefix(Self.manifestLimit))
    }

    private func optionalManifest(_ reference: String, transfer: CurlTransfer) throws(ImageImportError) -> ManifestDocument? {
        do throws(ImageImportError) {
            let (bytes, _) = try client.fetchManifest(reference, transfer: transfer)
            return try client.decodeManifest(bytes, what: "signature manifest \(reference)")
        } catch where error.code == .notFound {
            return nil
        }
    }

    /// The referrers index of `digest`; nil where the registry has no referrers API (it answers
    /// 404, or another error a registry without the API gives: 400, 401, 403, 405, 501).
    private func optionalReferrersAPI(digest: String, transfer: CurlTransfer) throws(ImageImportError) -> ManifestDocument? {
        let sink = MemoryBodySink(limit: RegistryClient.manifestSizeLimit, what: "referrers of \(digest)")
        do throws(ImageImportError) {
            // No artifactType filter: signatures come as two types (cosign's and Sigstore
            // bundles), and `referrers` filters the answer itself.
            try client.get("/v2/\(client.repository)/referrers/\(digest)",
                           accept: ["application/vnd.oci.image.index.v1+json"], transfer: transfer,
                           what: "referrers of \(digest)") { sink.resetBytes(); return sink }
            return try client.decodeManifest(sink.bytes, what: "referrers of \(digest)")
        } catch where error.code != .unreachable {
            return nil
        }
    }
}
