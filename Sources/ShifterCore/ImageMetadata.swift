/// The `<digest>.meta.json` record written beside each converted image (SPEC section 7).
///
/// The JSON keys are the property names. On decoding only `format` and `digest` are required;
/// missing lists and maps read as empty, so an older or hand-written record still loads.
public struct ImageMetadata: Codable, Sendable, Equatable {
    /// The image file format: `squashfs`.
    public var format: String
    /// The image id: the sha256 digest of the platform manifest, `sha256:...`.
    public var digest: String
    /// The digest of what the reference resolved to (an index or a manifest).
    public var manifestDigest: String
    /// The layer digests, bottom first.
    public var layers: [String]
    /// The image environment as `NAME=VALUE` entries.
    public var env: [String]
    /// The image ENTRYPOINT, if any.
    public var entrypoint: [String]?
    /// The image CMD, if any.
    public var cmd: [String]?
    /// The image WORKDIR, if any.
    public var workdir: String?
    /// The image USER, if any.
    public var user: String?
    /// The image labels.
    public var labels: [String: String]
    /// Users allowed to run a private image; empty with an empty `groupACL` means public.
    public var userACL: [UInt32]
    /// Groups allowed to run a private image.
    public var groupACL: [UInt32]
    /// The canonical reference the image was pulled as.
    public var source: String
    /// The RFC 3339 time of conversion.
    public var created: String
    /// The key that signed the image, where the gateway's signature policy checked a signature:
    /// `sha256:` and the hex digest of its DER public key (`SignerKey.fingerprint`).
    public var signedBy: String?
    /// The identity the signature names (its `docker-reference`).
    public var signedIdentity: String?

    /// Creates a record; only the digest is required.
    public init(
        format: String = "squashfs", digest: String, manifestDigest: String = "", layers: [String] = [],
        env: [String] = [], entrypoint: [String]? = nil, cmd: [String]? = nil, workdir: String? = nil,
        user: String? = nil, labels: [String: String] = [:], userACL: [UInt32] = [], groupACL: [UInt32] = [],
        source: String = "", created: String = ""
    ) {
        self.format = format
        self.digest = digest
        self.manifestDigest = manifestDigest
        self.layers = layers
        self.env = env
        self.entrypoint = entrypoint
        self.cmd = cmd
        self.workdir = workdir
        self.user = user
        self.labels = labels
        self.userACL = userACL
        self.groupACL = groupACL
        self.source = source
        self.created = created
    }

    enum CodingKeys: String, CodingKey {
        case format, digest, manifestDigest, layers, env, entrypoint, cmd, workdir, user, labels
        case userACL, groupACL, source, created, signedBy, signedIdentity
    }

    /// Decodes a record, defaulting every field but `format` and `digest`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        format = try container.decode(String.self, forKey: .format)
        digest = try container.decode(String.self, forKey: .digest)
        manifestDigest = try container.decodeIfPresent(String.self, forKey: .manifestDigest) ?? ""
        layers = try container.decodeIfPresent([String].self, forKey: .layers) ?? []
        env = try container.decodeIfPresent([String].self, forKey: .env) ?? []
        entrypoint = try container.decodeIfPresent([String].self, forKey: .entrypoint)
        cmd = try container.decodeIfPresent([String].self, forKey: .cmd)
        workdir = try container.decodeIfPresent(String.self, forKey: .workdir)
        user = try container.decodeIfPresent(String.self, forKey: .user)
        labels = try container.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        userACL = try container.decodeIfPresent([UInt32].self, forKey: .userACL) ?? []
        groupACL = try container.decodeIfPresent([UInt32].self, forKey: .groupACL) ?? []
        source = try container.decodeIfPresent(String.self, forKey: .source) ?? ""
        created = try container.decodeIfPresent(String.self, forKey: .created) ?? ""
        signedBy = try container.decodeIfPresent(String.self, forKey: .signedBy)
        signedIdentity = try container.decodeIfPresent(String.self, forKey: .signedIdentity)
    }

    /// Whether the image has no user or group restriction.
    public var isPublic: Bool { userACL.isEmpty && groupACL.isEmpty }

    /// Whether `uid` with supplementary and primary groups `gids` may run the image.
    ///
    /// Root is always allowed because the prolog and the gateway act for every user.
    public func isAllowed(uid: UInt32, gids: [UInt32]) -> Bool {
        if uid == 0 || isPublic { return true }
        if userACL.contains(uid) { return true }
        return gids.contains { groupACL.contains($0) }
    }

    /// Decodes a `.meta.json` file's bytes.
    public static func decode(_ bytes: [UInt8]) throws(ImageMetadataError) -> ImageMetadata {
        do throws(JSONError) {
            let record = try JSONRecord(JSONValue.parse(bytes))
            guard let format = try record.string("format") else { throw JSONError("missing key \"format\"") }
            guard let digest = try record.string("digest") else { throw JSONError("missing key \"digest\"") }
            var metadata = ImageMetadata(
                format: format, digest: digest, manifestDigest: try record.string("manifestDigest") ?? "",
                layers: try record.strings("layers") ?? [], env: try record.strings("env") ?? [],
                entrypoint: try record.strings("entrypoint"), cmd: try record.strings("cmd"),
                workdir: try record.string("workdir"), user: try record.string("user"),
                labels: try record.stringMap("labels") ?? [:], userACL: try record.uint32s("userACL") ?? [],
                groupACL: try record.uint32s("groupACL") ?? [], source: try record.string("source") ?? "",
                created: try record.string("created") ?? "")
            metadata.signedBy = try record.string("signedBy")
            metadata.signedIdentity = try record.string("signedIdentity")
            return metadata
        } catch {
            throw ImageMetadataError(reason: error.reason)
        }
    }

    /// The record as pretty-printed JSON with sorted keys, so equal records give equal files.
    public func encoded() throws(ImageMetadataError) -> [UInt8] {
        var members: [String: JSONValue] = [
            "format": .string(format), "digest": .string(digest), "manifestDigest": .string(manifestDigest),
            "layers": .strings(layers), "env": .strings(env),
            "labels": .object(labels.mapValues(JSONValue.string)),
            "userACL": .array(userACL.map(JSONValue.number)), "groupACL": .array(groupACL.map(JSONValue.number)),
            "source": .string(source), "created": .string(created),
        ]
        if let entrypoint { members["entrypoint"] = .strings(entrypoint) }
        if let cmd { members["cmd"] = .strings(cmd) }
        if let workdir { members["workdir"] = .string(workdir) }
        if let user { members["user"] = .string(user) }
        if let signedBy { members["signedBy"] = .string(signedBy) }
        if let signedIdentity { members["signedIdentity"] = .string(signedIdentity) }
        return JSONValue.object(members).encoded(pretty: true)
    }
}

/// A `.meta.json` record that cannot be read or written.
public struct ImageMetadataError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What is wrong.
    public var reason: String

    /// Creates an error with the given reason.
    public init(reason: String) { self.reason = reason }

    /// One line: `image metadata: missing key "digest"`.
    public var description: String { "image metadata: \(reason)" }
}
