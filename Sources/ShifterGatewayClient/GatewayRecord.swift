#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where a gateway image record stands (SPEC section 7).
public enum GatewayImageStatus: String, Codable, Sendable, CaseIterable {
    /// Known to the gateway but never asked for.
    case initial = "INIT"
    /// Waiting in the pull queue.
    case pending = "PENDING"
    /// Resolving the reference and downloading layers.
    case pulling = "PULLING"
    /// Flattening the layers into squashfs.
    case conversion = "CONVERSION"
    /// In the image store and usable.
    case ready = "READY"
    /// The last pull failed; `status_message` says why.
    case failure = "FAILURE"
    /// Removed from the image store by `expire` or `autoexpire`.
    case expired = "EXPIRED"

    /// Whether a pull is queued or running.
    public var isInProgress: Bool { self == .pending || self == .pulling || self == .conversion }
}

/// One image record as the gateway's REST API returns it. The JSON keys are those of the old
/// Shifter gateway (`ENV`, `ENTRY`, `last_pull`, ...), so existing tools keep working; every key is
/// always present, with `null` where there is no value.
public struct GatewayImageRecord: Codable, Sendable, Equatable {
    /// The image id (`sha256:HEX`), or nil before the reference has been resolved.
    public var id: String?
    /// The system (cluster) the record belongs to.
    public var system: String
    /// The image type: `docker` or `custom`.
    public var itype: String
    /// The reference without its type, in canonical form (`registry/repository:tag`).
    public var tag: String
    /// Where the record stands.
    public var status: GatewayImageStatus
    /// Users allowed to use a private image; empty with `groupACL` empty means public.
    public var userACL: [UInt32]
    /// Groups allowed to use a private image.
    public var groupACL: [UInt32]
    /// The image environment as `NAME=VALUE` entries.
    public var env: [String]
    /// The image ENTRYPOINT.
    public var entry: [String]?
    /// The image CMD.
    public var cmd: [String]?
    /// The image WORKDIR.
    public var workdir: String?
    /// The image USER.
    public var user: String?
    /// The image labels.
    public var labels: [String: String]
    /// When the last pull was requested, in seconds since the epoch.
    public var lastPull: Double?
    /// Why the last pull failed, or what the running pull is doing.
    public var statusMessage: String
    /// Bytes of layers downloaded so far by the running pull.
    public var bytesReceived: Int64?
    /// Bytes of layers the running pull downloads in all, once resolved.
    public var bytesTotal: Int64?
    /// The fingerprint of the key whose signature the site's policy checked, if it checked one.
    public var signedBy: String?
    /// The identity that signature names.
    public var signedIdentity: String?

    /// Creates a record; only the identifying fields are required.
    public init(
        id: String? = nil, system: String, itype: String, tag: String, status: GatewayImageStatus,
        userACL: [UInt32] = [], groupACL: [UInt32] = [], env: [String] = [], entry: [String]? = nil, cmd: [String]? = nil,
        workdir: String? = nil, user: String? = nil, labels: [String: String] = [:], lastPull: Double? = nil,
        statusMessage: String = "", bytesReceived: Int64? = nil, bytesTotal: Int64? = nil
    ) {
        self.id = id
        self.system = system
        self.itype = itype
        self.tag = tag
        self.status = status
        self.userACL = userACL
        self.groupACL = groupACL
        self.env = env
        self.entry = entry
        self.cmd = cmd
        self.workdir = workdir
        self.user = user
        self.labels = labels
        self.lastPull = lastPull
        self.statusMessage = statusMessage
        self.bytesReceived = bytesReceived
        self.bytesTotal = bytesTotal
    }

    enum CodingKeys: String, CodingKey {
        case id, system, itype, tag, status, userACL, groupACL
        case env = "ENV", entry = "ENTRY", cmd = "CMD", workdir = "WORKDIR", user = "USER", labels = "LABELS"
        case lastPull = "last_pull", statusMessage = "status_message"
        case bytesReceived = "bytes_received", bytesTotal = "bytes_total"
        case signedBy = "signed_by", signedIdentity = "signed_identity"
    }

    /// Decodes a record; lists, maps and the message default to empty when missing.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decodeIfPresent(String.self, forKey: .id)
        system = try container.decode(String.self, forKey: .system)
        itype = try container.decode(String.self, forKey: .itype)
        tag = try container.decode(String.self, forKey: .tag)
        status = try container.decode(GatewayImageStatus.self, forKey: .status)
        userACL = try container.decodeIfPresent([UInt32].self, forKey: .userACL) ?? []
        groupACL = try container.decodeIfPresent([UInt32].self, forKey: .groupACL) ?? []
        env = try container.decodeIfPresent([String].self, forKey: .env) ?? []
        entry = try container.decodeIfPresent([String].self, forKey: .entry)
        cmd = try container.decodeIfPresent([String].self, forKey: .cmd)
        workdir = try container.decodeIfPresent(String.self, forKey: .workdir)
        user = try container.decodeIfPresent(String.self, forKey: .user)
        labels = try container.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        lastPull = try container.decodeIfPresent(Double.self, forKey: .lastPull)
        statusMessage = try container.decodeIfPresent(String.self, forKey: .statusMessage) ?? ""
        bytesReceived = try container.decodeIfPresent(Int64.self, forKey: .bytesReceived)
        bytesTotal = try container.decodeIfPresent(Int64.self, forKey: .bytesTotal)
        signedBy = try container.decodeIfPresent(String.self, forKey: .signedBy)
        signedIdentity = try container.decodeIfPresent(String.self, forKey: .signedIdentity)
    }

    /// Encodes every key, writing `null` for missing values.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(system, forKey: .system)
        try container.encode(itype, forKey: .itype)
        try container.encode(tag, forKey: .tag)
        try container.encode(status, forKey: .status)
        try container.encode(userACL, forKey: .userACL)
        try container.encode(groupACL, forKey: .groupACL)
        try container.encode(env, forKey: .env)
        try container.encode(entry, forKey: .entry)
        try container.encode(cmd, forKey: .cmd)
        try container.encode(workdir, forKey: .workdir)
        try container.encode(user, forKey: .user)
        try container.encode(labels, forKey: .labels)
        try container.encode(lastPull, forKey: .lastPull)
        try container.encode(statusMessage, forKey: .statusMessage)
        try container.encode(signedBy, forKey: .signedBy)
        try container.encode(signedIdentity, forKey: .signedIdentity)
        try container.encode(bytesReceived, forKey: .bytesReceived)
        try container.encode(bytesTotal, forKey: .bytesTotal)
    }

    /// Whether the record is private: it names users or groups.
    public var isPrivate: Bool { !userACL.isEmpty || !groupACL.isEmpty }
}

/// Registry credentials for one pull. They travel inside the munge credential's payload, which
/// munged encrypts, and the gateway never writes them to disk or to a log.
public struct GatewayRegistryCredentials: Codable, Sendable, Equatable {
    /// The registry user name.
    public var username: String
    /// The password or token.
    public var password: String

    /// Credentials for one registry.
    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
}

/// The payload a client puts in its munge credential: registry credentials for a pull, if any.
public struct GatewayCredentialPayload: Codable, Sendable, Equatable {
    /// Registry credentials for the pull the request starts.
    public var credentials: GatewayRegistryCredentials?

    /// A payload carrying `credentials`.
    public init(credentials: GatewayRegistryCredentials? = nil) {
        self.credentials = credentials
    }
}

/// The optional JSON body of `POST /api/pull/...`, as the old Shifter gateway accepted it.
public struct GatewayPullRequest: Codable, Sendable, Equatable {
    /// Users allowed to use the image; the image is private when this or `allowedGIDs` is set.
    public var allowedUIDs: [UInt32]?
    /// Groups allowed to use the image.
    public var allowedGIDs: [UInt32]?
    /// Registry credentials; prefer the munge payload, which is encrypted on the wire.
    public var credentials: GatewayRegistryCredentials?

    /// A pull request body.
    public init(allowedUIDs: [UInt32]? = nil, allowedGIDs: [UInt32]? = nil, credentials: GatewayRegistryCredentials? = nil) {
        self.allowedUIDs = allowedUIDs
        self.allowedGIDs = allowedGIDs
        self.credentials = credentials
    }

    enum CodingKeys: String, CodingKey {
        case allowedUIDs = "allowed_uids", allowedGIDs = "allowed_gids", credentials
    }
}

/// The JSON body of `POST /api/doimport/...`: a squashfs file on the gateway host to import.
public struct GatewayImportRequest: Codable, Sendable, Equatable {
    /// The absolute path of the file on the gateway host, readable by the caller (the gateway opens
    /// it with the caller's rights).
    public var filepath: String
    /// The file's format: `squashfs` (the default; administrators and import users), or an image
    /// archive that the gateway converts like a pull (any user): `docker-archive` (`docker save`,
    /// `podman save`) or `oci-archive` (an OCI image layout as a tar); `archive` takes either.
    public var format: String?
    /// Users allowed to use the image.
    public var allowedUIDs: [UInt32]?
    /// Groups allowed to use the image.
    public var allowedGIDs: [UInt32]?

    /// The `format` values of an image archive.
    public static let archiveFormats: Set<String> = ["docker-archive", "oci-archive", "archive"]
    /// Every `format` value.
    public static let formats: Set<String> = archiveFormats.union(["squashfs"])

    /// An import request body.
    public init(filepath: String, format: String? = "squashfs", allowedUIDs: [UInt32]? = nil, allowedGIDs: [UInt32]? = nil) {
        self.filepath = filepath
        self.format = format
        self.allowedUIDs = allowedUIDs
        self.allowedGIDs = allowedGIDs
    }

    enum CodingKeys: String, CodingKey {
        case filepath, format, allowedUIDs = "allowed_uids", allowedGIDs = "allowed_gids"
    }
}

/// The body of every error response: a short stable code and a one-line message.
public struct GatewayErrorBody: Codable, Sendable, Equatable {
    /// A short stable name, such as `not-found` or `unauthorized`.
    public var error: String
    /// What failed, on what, and why.
    public var message: String

    /// An error body.
    public init(error: String, message: String) {
        self.error = error
        self.message = message
    }
}

/// The body of `GET /api/list/SYSTEM/` and `GET /api/queue/SYSTEM/`.
public struct GatewayRecordList: Codable, Sendable, Equatable {
    /// The records.
    public var list: [GatewayImageRecord]

    /// A list of records.
    public init(list: [GatewayImageRecord]) {
        self.list = list
    }
}

/// The body of `GET /api/expire/...` and `GET /api/autoexpire/SYSTEM/`.
public struct GatewayExpiryResult: Codable, Sendable, Equatable {
    /// The records that were expired.
    public var expired: [GatewayImageRecord]
    /// Images kept although they were due, with the reason (`TAG: reason`).
    public var kept: [String]

    /// An expiry result.
    public init(expired: [GatewayImageRecord], kept: [String] = []) {
        self.expired = expired
        self.kept = kept
    }
}

/// One lookup, as `GET /api/metrics/SYSTEM/` returns it.
public struct GatewayLookupEvent: Codable, Sendable, Equatable {
    /// When, in seconds since the epoch.
    public var time: Double
    /// Who asked.
    public var uid: UInt32
    /// The image type.
    public var itype: String
    /// The canonical tag.
    public var tag: String
    /// The image id it resolved to, if any.
    public var id: String?

    /// A lookup event.
    public init(time: Double, uid: UInt32, itype: String, tag: String, id: String?) {
        self.time = time
        self.uid = uid
        self.itype = itype
        self.tag = tag
        self.id = id
    }
}
