/// How an image is named and where the runtime finds it.
public enum ImageType: String, Sendable, Codable, CaseIterable {
    /// An image in a registry, converted by the gateway.
    case docker
    /// An image already in the store, named by its image id.
    case id
    /// An image an administrator imported from a squashfs file.
    case custom
    /// A directory on the node used as the root, where `allowLocalChroot=1`.
    case local
}

/// A parsed image reference: `[TYPE:]NAME` as described in SPEC section 2.
///
/// A leading `docker:`, `id:`, `custom:` or `local:` always selects the type, so a Docker Hub
/// repository literally named `id` must be written `docker:id`. Docker names follow the
/// distribution grammar: lowercase `/`-separated components, an optional registry host in front
/// (a first part containing `.` or `:`, or equal to `localhost`), an optional tag and an optional
/// `@sha256:` digest. Registry hosts are lowercased, and `docker.io` and `index.docker.io` mean
/// Docker Hub. IPv6 registry addresses are not supported.
public struct ImageReference: Hashable, Sendable {
    /// The kind of image.
    public var type: ImageType
    /// The registry host and optional port for `docker` images; `nil` for other types.
    public var registry: String?
    /// The repository (`library/ubuntu`) for `docker`, the name for `custom`, empty otherwise.
    public var repository: String
    /// The tag for `docker` and `custom` images.
    ///
    /// It is `latest` when neither a tag nor a digest was given. A Docker reference pinned only
    /// by a digest keeps `tag == nil`, because no tag was asked for and none should be shown.
    public var tag: String?
    /// `sha256:<64 lowercase hex>`: the pinned manifest for `docker`, the image id for `id`.
    public var digest: String?
    /// The normalised absolute directory of a `local` image.
    public var path: String?

    /// The Docker Hub registry host that names without a registry resolve to.
    public static let dockerHubRegistry = "registry-1.docker.io"

    /// Creates a reference from its parts without validating them; `parse` is the checked way in.
    public init(
        type: ImageType, registry: String? = nil, repository: String = "", tag: String? = nil,
        digest: String? = nil, path: String? = nil
    ) {
        self.type = type
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
        self.path = path
    }

    /// Parses `[TYPE:]NAME`, using `defaultType` when no type prefix is given.
    public static func parse(
        _ text: String, defaultType: ImageType = .docker
    ) throws(ImageReferenceError) -> ImageReference {
        let fail = { (reason: String) in ImageReferenceError(input: text, reason: reason) }
        if text.isEmpty { throw fail("image reference is empty") }
        var type = defaultType
        var body = Substring(text)
        if let colon = text.firstIndex(of: ":"), let prefixed = ImageType(rawValue: String(text[..<colon])) {
            type = prefixed
            body = text[text.index(after: colon)...]
        }
        if body.isEmpty { throw fail("no image name after \"\(type.rawValue):\"") }
        do throws(ReferencePartError) {
            switch type {
            case .docker: return try parseDocker(body)
            case .id: return try parseID(body)
            case .custom: return try parseCustom(body)
            case .local: return try parseLocal(body)
            }
        } catch {
            throw fail(error.reason)
        }
    }

    /// The canonical form, which `parse` turns back into an equal value.
    ///
    /// `docker:registry-1.docker.io/library/ubuntu:latest`, `id:sha256:<hex>`, `custom:name:tag`,
    /// `local:/path`.
    public var canonical: String {
        switch type {
        case .docker:
            var text = "docker:" + (registry ?? ImageReference.dockerHubRegistry) + "/" + repository
            if let tag { text += ":" + tag }
            if let digest { text += "@" + digest }
            return text
        case .id:
            return "id:" + (digest ?? "")
        case .custom:
            return "custom:" + repository + (tag.map { ":" + $0 } ?? "")
        case .local:
            return "local:" + (path ?? "")
        }
    }

    /// What a registry client pulls: `registry/repo@sha256:...` when pinned, else `registry/repo:tag`.
    ///
    /// A digest wins over a tag because the digest is what the user pinned; `nil` for non-Docker types.
    public var dockerReference: String? {
        guard type == .docker else { return nil }
        let name = (registry ?? ImageReference.dockerHubRegistry) + "/" + repository
        if let digest { return name + "@" + digest }
        return name + ":" + (tag ?? "latest")
    }
}

extension ImageReference: CustomStringConvertible {
    /// The canonical form.
    public var description: String { canonical }
}

/// A reference that does not follow the image grammar.
public struct ImageReferenceError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The text that was parsed.
    public var input: String
    /// What is wrong with it.
    public var reason: String

    /// Creates an error for `input` that failed for `reason`.
    public init(input: String, reason: String) {
        self.input = input
        self.reason = reason
    }

    /// One line: `image "Ubuntu": repository names must be lowercase`.
    public var description: String { "image \(quoted(input)): \(reason)" }
}

/// Why one part of a reference is invalid; the caller adds the whole reference to the message.
struct ReferencePartError: Error {
    var reason: String
}

extension ImageReference {
    static let maximumNameLength = 255
    static let maximumTagLength = 128

    private static func parseDocker(_ body: Substring) throws(ReferencePartError) -> ImageReference {
        // Docker refuses 64-hex repository names for the same reason: they are image ids, and
        // reading `sha256:HEX` as repository `sha256` with a tag would pull the wrong thing.
        if isSHA256Digest(body) || isLowercaseHex(body, count: 64) {
            throw ReferencePartError(reason: "this is an image id; write it as id:\(body.hasPrefix("sha256:") ? "" : "sha256:")\(body)")
        }
        var name = body
        var digest: String?
        if let at = body.firstIndex(of: "@") {
            let digestText = body[body.index(after: at)...]
            guard isSHA256Digest(digestText) else {
                throw ReferencePartError(reason: "digest \(quoted(digestText)) must be sha256: followed by 64 lowercase hex digits")
            }
            digest = String(digestText)
            name = body[..<at]
        }
        var tag: String?
        let lastPartStart = name.lastIndex(of: "/").map { name.index(after: $0) } ?? name.startIndex
        if let colon = name[lastPartStart...].firstIndex(of: ":") {
            let tagText = name[name.index(after: colon)...]
            try validateTag(tagText)
            tag = String(tagText)
            name = name[..<colon]
        }
        if name.isEmpty { throw ReferencePartError(reason: "no repository name") }
        var parts = name.split(separator: "/", omittingEmptySubsequences: false)
        if parts.contains(where: \.isEmpty) {
            throw ReferencePartError(reason: "repository name has an empty component (leading, trailing or doubled \"/\")")
        }
        var registry = dockerHubRegistry
        if parts.count > 1, let first = parts.first, looksLikeRegistryHost(first) {
            registry = try normalisedRegistryHost(first)
            parts.removeFirst()
        }
        for part in parts { try validateRepositoryComponent(part) }
        var repository = parts.joined(separator: "/")
        if registry == dockerHubRegistry && parts.count == 1 {
            repository = "library/" + repository
        }
        if registry.utf8.count + 1 + repository.utf8.count > maximumNameLength {
            throw ReferencePartError(reason: "name is longer than \(maximumNameLength) characters")
        }
        if tag == nil && digest == nil { tag = "latest" }
        return ImageReference(type: .docker, registry: registry, repository: repository, tag: tag, digest: digest)
    }

    private static func parseID(_ body: Substring) throws(ReferencePartError) -> ImageReference {
        let hex = body.hasPrefix("sha256:") ? body.dropFirst("sha256:".count) : body
        guard isLowercaseHex(hex, count: 64) else {
            throw ReferencePartError(reason: "an image id is 64 lowercase hex digits, optionally after \"sha256:\"")
        }
        return ImageReference(type: .id, repository: "", digest: "sha256:" + String(hex))
    }

    private static func parseCustom(_ body: Substring) throws(ReferencePartError) -> ImageReference {
        if body.contains("@") { throw ReferencePartError(reason: "custom images cannot be pinned by digest") }
        var name = body
        var tag = "latest"
        let lastPartStart = name.lastIndex(of: "/").map { name.index(after: $0) } ?? name.startIndex
        if let colon = name[lastPartStart...].firstIndex(of: ":") {
            let tagText = name[name.index(after: colon)...]
            try validateTag(tagText)
            tag = String(tagText)
            name = name[..<colon]
        }
        if name.isEmpty { throw ReferencePartError(reason: "no image name") }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        if parts.contains(where: \.isEmpty) {
            throw ReferencePartError(reason: "image name has an empty component (leading, trailing or doubled \"/\")")
        }
        for part in parts { try validateRepositoryComponent(part) }
        if name.utf8.count > maximumNameLength {
            throw ReferencePartError(reason: "name is longer than \(maximumNameLength) characters")
        }
        return ImageReference(type: .custom, repository: String(name), tag: tag)
    }

    private static func parseLocal(_ body: Substring) throws(ReferencePartError) -> ImageReference {
        let path: String
        do {
            path = try NormalisedPath.parse(body)
        } catch {
            throw ReferencePartError(reason: error.reason)
        }
        if path == "/" { throw ReferencePartError(reason: "the host root \"/\" cannot be an image") }
        return ImageReference(type: .local, repository: "", path: path)
    }

    /// The SPEC rule: a first part with `.` or `:`, or equal to `localhost`, names a registry host.
    private static func looksLikeRegistryHost(_ part: Substring) -> Bool {
        part.contains(".") || part.contains(":") || part == "localhost"
    }

    /// The one spelling of a registry host: lower case, the port as a plain number and none where
    /// it is HTTPS's own (443), and Docker Hub's several names as one; nil where `text` is no
    /// registry host. The signature policy's scopes are read through it too, so that no other
    /// spelling of a registry escapes its scope.
    public static func canonicalRegistryHost(_ text: String) -> String? {
        guard looksLikeRegistryHost(Substring(text)) else { return nil }
        return try? normalisedRegistryHost(Substring(text))
    }

    private static func normalisedRegistryHost(_ text: Substring) throws(ReferencePartError) -> String {
        var host = text
        var portSuffix = ""
        if let colon = text.firstIndex(of: ":") {
            host = text[..<colon]
            let port = text[text.index(after: colon)...]
            guard !port.isEmpty, port.utf8.count <= 5, port.utf8.allSatisfy(isASCIIDigit),
                let value = Int(port), (1...65535).contains(value)
            else {
                throw ReferencePartError(reason: "registry port \(quoted(port)) must be a number from 1 to 65535")
            }
            if value != 443 { portSuffix = ":" + String(value) }
        }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        let labelsValid = labels.allSatisfy { label in
            let bytes = label.utf8
            guard let first = bytes.first, let last = bytes.last, bytes.count <= 63 else { return false }
            return isASCIIAlphanumeric(first) && isASCIIAlphanumeric(last)
                && bytes.allSatisfy { isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "-") }
        }
        guard !host.isEmpty, labelsValid else {
            throw ReferencePartError(reason: "registry host \(quoted(host)) is not a valid host name")
        }
        let lowered = host.lowercased() + portSuffix
        switch lowered {
        case "docker.io", "index.docker.io", "registry.hub.docker.com": return dockerHubRegistry
        default: return lowered
        }
    }

    /// The distribution grammar `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
    private static func validateRepositoryComponent(_ part: Substring) throws(ReferencePartError) {
        if isRepositoryComponent(part.utf8) { return }
        if isRepositoryComponent(part.lowercased().utf8) {
            throw ReferencePartError(reason: "repository names must be lowercase")
        }
        throw ReferencePartError(
            reason: "name component \(quoted(part)) is invalid: use lowercase letters and digits, separated by \".\", \"_\", \"__\" or dashes"
        )
    }

    private static func isRepositoryComponent<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        guard let first = bytes.first, isLowercaseAlphanumeric(first) else { return false }
        var separator: [UInt8] = []
        for byte in bytes {
            if isLowercaseAlphanumeric(byte) {
                if !separator.isEmpty {
                    let valid = separator == [UInt8(ascii: ".")] || separator == [UInt8(ascii: "_")]
                        || separator == [UInt8(ascii: "_"), UInt8(ascii: "_")]
                        || separator.allSatisfy { $0 == UInt8(ascii: "-") }
                    if !valid { return false }
                    separator.removeAll()
                }
            } else if byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") {
                separator.append(byte)
            } else {
                return false
            }
        }
        return separator.isEmpty
    }

    /// The distribution grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    private static func validateTag(_ tag: Substring) throws(ReferencePartError) {
        if tag.isEmpty { throw ReferencePartError(reason: "tag is empty") }
        let bytes = tag.utf8
        guard let first = bytes.first, isASCIIAlphanumeric(first) || first == UInt8(ascii: "_"),
            bytes.allSatisfy({ isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else {
            throw ReferencePartError(
                reason: "tag \(quoted(tag)) is invalid: use letters, digits, \"_\", \".\" and \"-\", not starting with \".\" or \"-\""
            )
        }
        if bytes.count > maximumTagLength {
            throw ReferencePartError(reason: "tag is longer than \(maximumTagLength) characters")
        }
    }
}

/// Whether `text` is `sha256:` followed by 64 lowercase hex digits.
public func isSHA256Digest(_ text: some StringProtocol) -> Bool {
    text.hasPrefix("sha256:") && isLowercaseHex(text.dropFirst("sha256:".count), count: 64)
}

func isLowercaseHex(_ text: some StringProtocol, count: Int) -> Bool {
    text.utf8.count == count
        && text.utf8.allSatisfy { isASCIIDigit($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
}

func isASCIIDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

func isLowercaseAlphanumeric(_ byte: UInt8) -> Bool {
    isASCIIDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
}

func isASCIIAlphanumeric(_ byte: UInt8) -> Bool {
    isLowercaseAlphanumeric(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
}
