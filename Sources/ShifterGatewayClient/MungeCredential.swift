import CMunge

#if canImport(Glibc)
import Glibc
#endif

/// Creates munge credentials for gateway requests. munged on this host encrypts the payload and
/// stamps the caller's uid and gid, which the gateway trusts once it decodes the credential.
public enum MungeCredential {
    /// A credential carrying `payload` (may be empty). The corresponding C function is
    /// `munge_encode(3)`; it talks to the local munged over its socket.
    public static func encode(payload: [UInt8] = []) throws(GatewayClientError) -> String {
        var credential: UnsafeMutablePointer<CChar>? = nil
        let status = payload.withUnsafeBytes { buffer in
            munge_encode(&credential, nil, buffer.baseAddress, Int32(buffer.count))
        }
        defer { free(credential) }
        guard status == EMUNGE_SUCCESS, let credential else {
            throw GatewayClientError(.authentication, "munge: cannot create a credential: \(errorText(status))")
        }
        return String(cString: credential)
    }

    /// The text libmunge gives for `status`.
    static func errorText(_ status: munge_err_t) -> String {
        munge_strerror(status).map { String(cString: $0) } ?? "munge error \(status.rawValue)"
    }
}
