import CCrypto

/// A running SHA-256 over streamed data, computed by OpenSSL's libcrypto.
final class SHA256Hasher {
    private let context: OpaquePointer

    /// Starts a new digest.
    init() throws(ImageImportError) {
        guard let context = EVP_MD_CTX_new() else {
            throw ImageImportError(.io, "cannot create an OpenSSL digest context")
        }
        self.context = context
        try reset()
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    /// Starts over, forgetting what was hashed.
    func reset() throws(ImageImportError) {
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            throw ImageImportError(.io, "cannot start an OpenSSL SHA-256 digest")
        }
    }

    /// Adds bytes.
    func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    /// Adds bytes.
    func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest as `sha256:<64 lowercase hex digits>`; the hasher must be reset before reuse.
    func finish() -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        let hexDigits = Array("0123456789abcdef".utf8)
        var text = Array("sha256:".utf8)
        for byte in digest.prefix(Int(length)) {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The digest of `bytes`.
    static func digest(of bytes: [UInt8]) throws(ImageImportError) -> String {
        let hasher = try SHA256Hasher()
        hasher.update(bytes)
        return hasher.finish()
    }
}
