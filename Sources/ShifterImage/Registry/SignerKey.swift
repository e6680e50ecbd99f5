import CCrypto

#if canImport(Glibc)
import Glibc
#endif

/// A public key a site accepts signatures by: ECDSA P-256 (as cosign makes) or Ed25519, read from
/// a PEM file. Verification is OpenSSL's libcrypto.
public struct SignerKey: Sendable, Equatable {
    /// The PEM file it was read from.
    public let path: String
    /// `sha256:` and the hex digest of the key's DER form (SubjectPublicKeyInfo), as
    /// `openssl pkey -pubin -outform DER | sha256sum` prints it.
    public let fingerprint: String
    let der: [UInt8]
    let isEd25519: Bool

    /// The largest key file read.
    static let fileSizeLimit = 64 * 1024

    /// Reads the key in `path`; the error names the file and the reason.
    public static func load(_ path: String) throws(ImageImportError) -> SignerKey {
        // The site's file, not the image, is at fault: never a refusal of the image (which would
        // have reverify expire every image for a key file that went missing).
        let failure = { (reason: String) in ImageImportError(.io, "signature key \(path): \(reason)") }
        // Whoever may change a key file decides what runs: it must be the gateway's (root's) alone.
        let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("cannot be read: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { throw failure("is not a regular file") }
        guard status.st_uid == 0 || status.st_uid == geteuid() else {
            throw failure("refused: owned by uid \(status.st_uid), not root; whoever owns a key file decides which images run")
        }
        guard status.st_mode & 0o022 == 0 else {
            throw failure("refused: writable by others (mode \(String(status.st_mode & 0o777, radix: 8))); chmod go-w")
        }
        var pem = [UInt8](repeating: 0, count: fileSizeLimit + 1)
        let count = read(descriptor, &pem, pem.count)
        guard count >= 0 else { throw failure("cannot be read: \(String(cString: strerror(errno)))") }
        guard count <= fileSizeLimit else { throw failure("larger than \(fileSizeLimit) bytes, not a public key") }
        let key: OpaquePointer? = pem.withUnsafeBytes { bytes in
            guard let bio = BIO_new_mem_buf(bytes.baseAddress, Int32(count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PUBKEY(bio, nil, nil, nil)
        }
        guard let key else { throw failure("not a PEM public key (-----BEGIN PUBLIC KEY-----)") }
        defer { EVP_PKEY_free(key) }
        let isEd25519: Bool
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_ED25519:
            isEd25519 = true
        case EVP_PKEY_EC:
            var name = [CChar](repeating: 0, count: 64)
            var length = 0
            guard EVP_PKEY_get_group_name(key, &name, name.count, &length) == 1,
                  String(cString: name) == "prime256v1" else {
                throw failure("an ECDSA key on a curve other than P-256, which cosign uses")
            }
            isEd25519 = false
        default:
            throw failure("neither an ECDSA P-256 nor an Ed25519 key")
        }
        var derPointer: UnsafeMutablePointer<UInt8>?
        let length = i2d_PUBKEY(key, &derPointer)
        guard length > 0, let derPointer else { throw failure("cannot be encoded") }
        defer { CRYPTO_free(derPointer, #fileID, #line) }
        let der = Array(UnsafeBufferPointer(start: derPointer, count: Int(length)))
        let hasher = try SHA256Hasher()
        hasher.update(der)
        return SignerKey(path: path, fingerprint: hasher.finish(), der: der, isEd25519: isEd25519)
    }

    /// Whether `signature` (ASN.1 DER for ECDSA over SHA-256; raw for Ed25519) signs `payload`.
    func verifies(_ signature: [UInt8], of payload: [UInt8]) -> Bool {
        der.withUnsafeBufferPointer { buffer -> Bool in
            var pointer: UnsafePointer<UInt8>? = buffer.baseAddress
            guard let key = d2i_PUBKEY(nil, &pointer, buffer.count) else { return false }
            defer { EVP_PKEY_free(key) }
            guard let context = EVP_MD_CTX_new() else { return false }
            defer { EVP_MD_CTX_free(context) }
            guard EVP_DigestVerifyInit(context, nil, isEd25519 ? nil : EVP_sha256(), nil, key) == 1 else { return false }
            return EVP_DigestVerify(context, signature, signature.count, payload, payload.count) == 1
        }
    }
}
