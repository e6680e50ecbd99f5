import ShifterCore
import ShifterGatewayClient
import ShifterImage

extension GatewayService {
    /// `GET /api/reverify/SYSTEM/`: checks every READY image of `system` against the signature
    /// policy as it is now, as a pull would, and expires those it refuses (a signature that no
    /// longer verifies, a key removed, a scope now rejected, a file import where archives are
    /// refused); a signer found is recorded, so nodes that require one run the image. An image
    /// whose check could not be made (a registry that cannot be reached, or needs the user's
    /// credentials) is kept and named. Administrators only.
    public func reverify(system: String, caller: AuthenticatedCaller) throws(GatewayError) -> GatewayExpiryResult {
        let systemConfig = try systemConfig(named: system)
        guard config.adminUIDs.contains(caller.uid) else {
            throw .forbidden("reverify \(quoted(system)): administrators only")
        }
        guard let policy = signaturePolicy else {
            return GatewayExpiryResult(expired: [], kept: ["every image: the gateway has no signaturePolicy"])
        }
        let store = ImageStore(directory: systemConfig.imagePath)
        var result = GatewayExpiryResult(expired: [])
        for row in try state.rows(system: system) where row.status == .ready {
            guard let digest = row.digest, let id = ImageID(digest) else { continue }
            let refusal: String
            switch check(row, policy: policy) {
            case .accepted(let signer):
                if let signer {
                    do throws(ImageImportError) {
                        _ = try store.recordSigner(signer, of: id)
                    } catch {
                        result.kept.append("\(row.tag): signed by \(signer.keyFingerprint), but the record cannot be written: \(error.message)")
                        continue
                    }
                    try state.recordSigner(signer.keyFingerprint, identity: signer.identity, on: row)
                }
                result.kept.append("\(row.tag): \(signer.map { "signed by \($0.keyFingerprint)" } ?? "accepted unsigned by the policy")")
                continue
            case .unchecked(let reason):
                result.kept.append("\(row.tag): not checked: \(reason)")
                continue
            case .refused(let reason):
                refusal = reason
            }
            guard let expired = try expireRow(row, reason: "refused by the signature policy: \(refusal)") else {
                result.kept.append("\(row.tag): pulled or looked up meanwhile; run reverify again")
                continue
            }
            logger.warning("image refused by the signature policy", metadata: ["image": "\(system)/\(row.itype):\(row.tag)", "reason": "\(refusal)"])
            result.expired.append(expired)
        }
        return result
    }

    private enum Review {
        case accepted(ImageSigner?)
        case refused(String)
        case unchecked(String)
    }

    private func check(_ row: ImageRow, policy: SignaturePolicy) -> Review {
        guard row.itype == ImageType.docker.rawValue else {
            return policy.archives == .accept ? .accepted(nil) : .refused("an imported file carries no registry signature, and the policy rejects imports")
        }
        let reference: ImageReference
        do {
            reference = try ImageReference.parse("docker:" + row.tag)
        } catch {
            return .unchecked("its name does not parse: \(error.reason)")
        }
        guard let host = reference.registry, let registry = config.registry(for: host) else {
            return .unchecked("its registry is not configured at this gateway")
        }
        var credentials: RegistryCredentials?
        if registry.auth == .site {
            do throws(GatewayError) { credentials = try siteCredentials(registry) } catch { return .unchecked(error.message) }
        }
        let metrics = self.metrics
        do throws(ImageImportError) {
            return .accepted(try ImageSignatureCheck.check(reference, digest: row.digest ?? "", policy: policy, credentials: credentials,
                                                           transport: TransportOptions(caBundle: registry.caBundle),
                                                           onRefusal: { metrics.countSignatureRefusal($0) }))
        } catch where error.code == .signatureRefused {
            return .refused(error.message)
        } catch {
            return .unchecked(error.message)
        }
    }
}
