import CMunge
import ShifterGatewayClient

#if canImport(Glibc)
import Glibc
#endif

/// Who sent a request, as its credential proves.
public struct AuthenticatedCaller: Sendable, Equatable {
    /// The caller's uid.
    public var uid: UInt32
    /// The caller's primary gid and supplementary groups.
    public var groups: [UInt32]
    /// What the caller put in the credential's payload.
    public var payload: GatewayCredentialPayload

    /// A caller.
    public init(uid: UInt32, groups: [UInt32], payload: GatewayCredentialPayload = GatewayCredentialPayload()) {
        self.uid = uid
        self.groups = groups
        self.payload = payload
    }
}

/// Turns the `authentication` header of a request into the caller it proves.
///
/// The product uses `MungeAuthenticator` only; the configuration file has no way to choose
/// another, and other implementations exist only in unit tests.
public protocol RequestAuthenticator: Sendable {
    /// The caller `credential` proves; throws `.unauthorized` when it proves none.
    func authenticate(_ credential: String) throws(GatewayError) -> AuthenticatedCaller
}

/// Decodes munge credentials with the local munged.
///
/// munged checks the credential's signature, its age (`--ttl`) and that it was not used before, and
/// gives the uid and gid it was made by. The caller's supplementary groups come from this host's
/// group database (`getgrouplist(3)`), which the gateway shares with the cluster.
public struct MungeAuthenticator: RequestAuthenticator {
    /// The largest credential accepted, so a huge header cannot reach munged.
    static let maximumLength = 64 << 10

    /// An authenticator that uses munged's default socket.
    public init() {}

    /// Decodes `credential`. The corresponding C function is `munge_decode(3)`.
    public func authenticate(_ credential: String) throws(GatewayError) -> AuthenticatedCaller {
        let text = credential.trimmingPrefixWhitespace()
        guard !text.isEmpty else { throw .unauthorized("authentication: the header holds no munge credential") }
        guard text.utf8.count <= Self.maximumLength else { throw .unauthorized("authentication: the munge credential is too long") }
        var payload: UnsafeMutableRawPointer? = nil
        var length: Int32 = 0
        var uid = uid_t.max
        var gid = gid_t.max
        let status = munge_decode(text, nil, &payload, &length, &uid, &gid)
        defer { free(payload) }
        guard status == EMUNGE_SUCCESS else {
            let reason = munge_strerror(status).map { String(cString: $0) } ?? "munge error \(status.rawValue)"
            throw .unauthorized("authentication: munge credential refused: \(reason)")
        }
        var bytes: [UInt8] = []
        if let payload, length > 0 {
            bytes = Array(UnsafeRawBufferPointer(start: payload, count: Int(length)))
        }
        let decoded = try Self.decodePayload(bytes)
        return AuthenticatedCaller(uid: uid, groups: Self.groups(uid: uid, gid: gid), payload: decoded)
    }

    /// Reads the payload: empty, or the JSON of `GatewayCredentialPayload`.
    static func decodePayload(_ bytes: [UInt8]) throws(GatewayError) -> GatewayCredentialPayload {
        guard !bytes.isEmpty else { return GatewayCredentialPayload() }
        do {
            return try GatewayJSON.decode(GatewayCredentialPayload.self, bytes)
        } catch {
            throw .badRequest("authentication: the munge payload is not a JSON object with \"credentials\"")
        }
    }

    /// The primary gid and the supplementary groups of `uid` on this host. The corresponding C
    /// function is `getgrouplist(3)`.
    static func groups(uid: uid_t, gid: gid_t) -> [UInt32] {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return [gid] }
        var count: Int32 = 64
        for _ in 0..<4 {
            var groups = [gid_t](repeating: 0, count: Int(count))
            if getgrouplist(name, gid, &groups, &count) >= 0 {
                return Array(Set([gid] + groups.prefix(Int(count)))).sorted()
            }
            count = max(count, 64) * 2
        }
        return [gid]
    }
}

extension String {
    fileprivate func trimmingPrefixWhitespace() -> String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" || last == "\r" || last == "\n" { text = text.dropLast() }
        return String(text)
    }
}
