/// How mount events propagate between the host and a container mount.
public enum MountPropagation: String, Sendable, Codable, CaseIterable {
    /// Nothing propagates in either direction.
    case `private`
    /// Host mount events propagate into the container, not back.
    case slave
}

/// The `perNodeCache=size=SIZE[,bs=SIZE][,fs=TYPE][,method=loop]` volume flag.
public struct PerNodeCacheSpec: Hashable, Sendable {
    /// The requested size of the cache filesystem in bytes.
    public var size: UInt64
    /// The requested block size in bytes; `nil` leaves the choice to the filesystem.
    public var blockSize: UInt64?
    /// The filesystem type, `xfs` unless given; checked against `perNodeCacheAllowedFsType`.
    public var filesystem: String
    /// How the cache is attached; only `loop` exists.
    public var method: String

    /// Creates a cache request.
    public init(size: UInt64, blockSize: UInt64? = nil, filesystem: String = "xfs", method: String = "loop") {
        self.size = size
        self.blockSize = blockSize
        self.filesystem = filesystem
        self.method = method
    }

    /// The flag as written on a command line, sizes in their shortest exact form.
    public var canonical: String {
        var text = "perNodeCache=size=" + ByteSize.format(size)
        if let blockSize { text += ",bs=" + ByteSize.format(blockSize) }
        return text + ",fs=" + filesystem + ",method=" + method
    }
}

/// A user volume: `FROM:TO[:FLAG[:FLAG...]]` (SPEC section 4).
///
/// FROM is a directory or a regular file of the container: of a site mount (`siteFs`, `/tmp`) or
/// of an earlier volume, never the image's own; with the flag `host` (which Pyxis-style
/// `--container-mounts` sets) it is the host's of that name instead, always bound with everything
/// mounted below it. FROM and TO follow `NormalisedPath`: absolute, `[A-Za-z0-9_./+-]` only, no `..`, with doubled
/// and trailing `/` and `.` components collapsed. TO may not be `/`, `/opt`, or be or lie under
/// `/etc`, `/var` (except `/var/tmp`), `/proc`, `/sys`, `/dev` or `/opt/udiImage`. Flag names are
/// matched without regard to case, as in the old Shifter. For a `perNodeCache` volume FROM is
/// required by the grammar but unused: the cache is created, not bind-mounted; so is it for a
/// `tmpfs[=SIZE]` volume, a new tmpfs owned by the user, and for an `umount` one, which leaves the
/// site mount at TO out of the container.
public struct VolumeSpec: Hashable, Sendable {
    /// The directory or file to mount, as seen inside the container (on the host with `hostSource`).
    public var source: String
    /// Where it appears in the container.
    public var target: String
    /// Mount read-only.
    public var readOnly: Bool
    /// Bind the whole mount tree below `source`, not just its top mount.
    public var recursive: Bool
    /// The requested propagation; `nil` uses the site's `mountPropagationStyle`.
    public var propagation: MountPropagation?
    /// A per-node cache to create at `target` instead of a bind mount.
    public var perNodeCache: PerNodeCacheSpec?
    /// A new tmpfs is mounted at `target` instead of a bind mount (the flag `tmpfs[=SIZE]`).
    public var isTmpfs: Bool
    /// The tmpfs's size in bytes; nil: the site's `tmpfsVolumeSizeLimit`.
    public var tmpfsSize: UInt64?
    /// The flag `umount`: the site mount at `target` (`siteFs`, `/tmp`) is left out of this
    /// container instead of anything being mounted (Pyxis' `umount:DST`).
    public var isUmount: Bool
    /// `source` is a host path (the flag `host`), opened with the user's rights on the host.
    public var hostSource: Bool

    /// Targets that may be neither the target nor an ancestor-or-equal of it.
    static let forbiddenTargetTrees = ["/etc", "/var", "/proc", "/sys", "/dev", "/opt/udiImage"]
    /// Targets that may not be used exactly, because a mount there would hide what lies below.
    static let forbiddenExactTargets = ["/", "/opt"]
    /// Subtrees of the forbidden trees that users may mount over.
    static let allowedTargetTrees = ["/var/tmp"]

    /// Creates a volume without validating it; `parse` is the checked way in.
    public init(
        source: String, target: String, readOnly: Bool = false, recursive: Bool = false,
        propagation: MountPropagation? = nil, perNodeCache: PerNodeCacheSpec? = nil, hostSource: Bool = false,
        isTmpfs: Bool = false, tmpfsSize: UInt64? = nil, isUmount: Bool = false
    ) {
        self.isUmount = isUmount
        self.isTmpfs = isTmpfs
        self.tmpfsSize = tmpfsSize
        self.source = source
        self.target = target
        self.readOnly = readOnly
        self.recursive = recursive
        self.propagation = propagation
        self.perNodeCache = perNodeCache
        self.hostSource = hostSource
    }

    /// Parses one `FROM:TO[:FLAG...]` volume.
    public static func parse(_ text: String) throws(VolumeSpecError) -> VolumeSpec {
        let fail = { (reason: String) in VolumeSpecError(input: text, reason: reason) }
        let fields = text.splitBytes(omittingEmpty: false, where: { $0 == UInt8(ascii: ":") })
        guard fields.count >= 2, let fromText = fields.first else {
            throw fail("expected FROM:TO[:FLAGS]")
        }
        let toText = fields[1]
        let source: String
        let target: String
        do {
            source = try NormalisedPath.parse(fromText)
            target = try NormalisedPath.parse(toText)
        } catch {
            throw fail(error.reason)
        }
        if let reason = forbiddenTargetReason(target) { throw fail(reason) }
        let flags: MountFlags
        do {
            flags = try MountFlags.parse(fields.dropFirst(2), userVolume: true)
        } catch {
            throw fail(error.reason)
        }
        return VolumeSpec(
            source: source, target: target, readOnly: flags.readOnly, recursive: flags.recursive,
            propagation: flags.propagation, perNodeCache: flags.perNodeCache, hostSource: flags.hostSource,
            isTmpfs: flags.isTmpfs, tmpfsSize: flags.tmpfsSize, isUmount: flags.isUmount)
    }

    /// Parses volumes joined by `;`, skipping empty entries; two volumes may not share a target.
    public static func parseList(_ text: String) throws(VolumeSpecError) -> [VolumeSpec] {
        var volumes: [VolumeSpec] = []
        for entry in text.split(separator: ";") {
            let volume = try parse(String(entry))
            if volumes.contains(where: { $0.target == volume.target }) {
                throw VolumeSpecError(input: String(entry), reason: "another volume already targets \(volume.target)")
            }
            volumes.append(volume)
        }
        return volumes
    }

    /// Why `target` may not receive a user volume, or `nil` when it may.
    static func forbiddenTargetReason(_ target: String) -> String? {
        if forbiddenExactTargets.contains(target) { return "target may not be \(target)" }
        if allowedTargetTrees.contains(where: { NormalisedPath.path(target, isWithin: $0) }) { return nil }
        for tree in forbiddenTargetTrees where NormalisedPath.path(target, isWithin: tree) {
            return target == tree ? "target may not be \(tree)" : "target may not be under \(tree)"
        }
        return nil
    }

    /// The volume in the form `parse` reads back to an equal value.
    public var canonical: String {
        var parts = [source, target]
        if readOnly { parts.append("ro") }
        if recursive { parts.append("rec") }
        if let propagation { parts.append(propagation.rawValue) }
        if let perNodeCache { parts.append(perNodeCache.canonical) }
        if isTmpfs { parts.append(tmpfsSize.map { "tmpfs=" + ByteSize.format($0) } ?? "tmpfs") }
        if isUmount { parts.append("umount") }
        if hostSource { parts.append("host") }
        return parts.joined(separator: ":")
    }

    /// Checks every volume of one request against the site's rules, the sum of their per-node
    /// caches against `perNodeCacheTotalLimit` (each cache may be within its limit while many
    /// together take the parallel filesystem's space), and the sum of their tmpfs volumes against
    /// `tmpfsVolumeSizeLimit`, which bounds the node memory one request may ask for.
    public static func validate(_ volumes: [VolumeSpec], against config: SiteConfig) throws(VolumeSpecError) {
        // Sizes saturate rather than wrap: a request of two enormous caches must not add up to little.
        func add(_ a: UInt64, _ b: UInt64) -> UInt64 {
            let (sum, overflow) = a.addingReportingOverflow(b)
            return overflow ? .max : sum
        }
        var total: UInt64 = 0, tmpfsTotal: UInt64 = 0
        for volume in volumes {
            try volume.validate(against: config)
            if volume.isTmpfs {
                tmpfsTotal = add(tmpfsTotal, volume.tmpfsSize ?? 0)
                if tmpfsTotal > config.tmpfsVolumeSizeLimit {
                    throw VolumeSpecError(
                        input: volume.canonical,
                        reason: "the tmpfs volumes of this request add up to more than the site limit of \(ByteSize.format(config.tmpfsVolumeSizeLimit)) (tmpfsVolumeSizeLimit)")
                }
            }
            total = add(total, volume.perNodeCache?.size ?? 0)
            if let limit = config.perNodeCacheTotalLimit, total > limit, let cache = volume.perNodeCache {
                let caches = volumes.filter { $0.perNodeCache != nil }
                let sum = caches.reduce(UInt64(0)) { add($0, $1.perNodeCache?.size ?? 0) }
                throw VolumeSpecError(
                    input: volume.canonical,
                    reason: "the \(caches.count) per-node caches of this request add up to \(ByteSize.format(sum)), over the site limit of \(ByteSize.format(limit)) per request (this one asks for \(ByteSize.format(cache.size)))")
            }
        }
        try checkTmpfsShares(volumes, against: config)
    }

    /// Refuses a tmpfs volume without a size that the others leave less than `minimumTmpfsShare`.
    static func checkTmpfsShares(_ volumes: [VolumeSpec], against config: SiteConfig) throws(VolumeSpecError) {
        guard let sizeless = volumes.first(where: { $0.isTmpfs && $0.tmpfsSize == nil }),
              tmpfsShare(of: volumes, limit: config.tmpfsVolumeSizeLimit) < minimumTmpfsShare else { return }
        throw VolumeSpecError(
            input: sizeless.canonical,
            reason: "a tmpfs without a size gets an equal share of what the others leave of the site limit of \(ByteSize.format(config.tmpfsVolumeSizeLimit)) (tmpfsVolumeSizeLimit), and here that is less than \(ByteSize.format(minimumTmpfsShare)); give the volumes sizes")
    }

    /// The size of each tmpfs volume of `volumes` that names none: an equal share of what those
    /// with a size leave of `limit` (0 where they leave nothing).
    public static func tmpfsShare(of volumes: [VolumeSpec], limit: UInt64) -> UInt64 {
        let tmpfs = volumes.filter(\.isTmpfs)
        let sized = tmpfs.reduce(UInt64(0)) { $0 &+ ($1.tmpfsSize ?? 0) }
        let unsized = UInt64(tmpfs.count { $0.tmpfsSize == nil })
        guard unsized > 0, sized < limit else { return 0 }
        return (limit - sized) / unsized
    }

    /// The least a tmpfs volume without a size may get.
    public static let minimumTmpfsShare: UInt64 = 1 << 20

    /// Checks the site's rules for per-node caches (a cache path exists, the size limit and the
    /// filesystem list) and for tmpfs volumes (the size limit).
    public func validate(against config: SiteConfig) throws(VolumeSpecError) {
        let fail = { (reason: String) in VolumeSpecError(input: canonical, reason: reason) }
        if isUmount, target != "/tmp", !config.siteFs.contains(where: { $0.target == target }) {
            let mounts = (["/tmp"] + config.siteFs.map(\.target)).joined(separator: ", ")
            throw fail("umount leaves out a site mount, and \(target) is none (this site's: \(mounts))")
        }
        if let size = tmpfsSize, size > config.tmpfsVolumeSizeLimit {
            throw fail("tmpfs size \(ByteSize.format(size)) is over the site limit of \(ByteSize.format(config.tmpfsVolumeSizeLimit)) (tmpfsVolumeSizeLimit)")
        }
        guard let cache = perNodeCache else { return }
        if config.perNodeCachePath == nil {
            throw fail("this site offers no per-node caches (udiRoot.conf sets no perNodeCachePath)")
        }
        if let limit = config.perNodeCacheSizeLimit, cache.size > limit {
            throw fail("cache size \(ByteSize.format(cache.size)) is over the site limit of \(ByteSize.format(limit))")
        }
        if !config.perNodeCacheAllowedFsType.contains(cache.filesystem) {
            let allowed = config.perNodeCacheAllowedFsType.joined(separator: ", ")
            throw fail("filesystem \(quoted(cache.filesystem)) is not allowed for per-node caches (allowed: \(allowed.isEmpty ? "none" : allowed))")
        }
    }
}

/// A host directory mounted into every container by the site (`siteFs`, `module_NAME_siteFs`).
///
/// The syntax is `FROM[:TO[:FLAG...]]`, TO defaulting to FROM, with the flags `ro`, `rec`, `slave`
/// and `private`. An administrator wrote it, so unlike user volumes it may target `/var/...` or
/// `/etc/...`; it still follows `NormalisedPath`, and it may not replace `/`, `/etc`, `/var`,
/// `/opt`, `/proc`, `/sys`, `/dev` or the generated `/etc/passwd`, `/etc/group` and
/// `/etc/nsswitch.conf` wholesale.
public struct SiteMount: Hashable, Sendable {
    /// The host path.
    public var source: String
    /// Where it appears in the container.
    public var target: String
    /// Mount read-only.
    public var readOnly: Bool
    /// Bind the whole mount tree below `source`.
    public var recursive: Bool
    /// The requested propagation; `nil` uses the site's `mountPropagationStyle`.
    public var propagation: MountPropagation?

    static let forbiddenTargets = [
        "/", "/etc", "/var", "/opt", "/proc", "/sys", "/dev", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
    ]

    /// Creates a site mount without validating it.
    public init(
        source: String, target: String, readOnly: Bool = false, recursive: Bool = false,
        propagation: MountPropagation? = nil
    ) {
        self.source = source
        self.target = target
        self.readOnly = readOnly
        self.recursive = recursive
        self.propagation = propagation
    }

    /// Parses one `FROM[:TO[:FLAG...]]` entry.
    public static func parse(_ text: String) throws(VolumeSpecError) -> SiteMount {
        let fail = { (reason: String) in VolumeSpecError(input: text, reason: reason, subject: "siteFs entry") }
        let fields = text.splitBytes(omittingEmpty: false, where: { $0 == UInt8(ascii: ":") })
        guard let fromText = fields.first else { throw fail("expected FROM[:TO[:FLAGS]]") }
        let toText = fields.count > 1 ? fields[1] : fromText
        let source: String
        let target: String
        do {
            source = try NormalisedPath.parse(fromText)
            target = try NormalisedPath.parse(toText)
        } catch {
            throw fail(error.reason)
        }
        if forbiddenTargets.contains(target) { throw fail("target may not be \(target)") }
        let flags: MountFlags
        do {
            flags = try MountFlags.parse(fields.dropFirst(2), userVolume: false)
        } catch {
            throw fail(error.reason)
        }
        return SiteMount(
            source: source, target: target, readOnly: flags.readOnly, recursive: flags.recursive,
            propagation: flags.propagation)
    }

    /// Parses entries separated by `;` or whitespace (the old Shifter sample used spaces).
    public static func parseList(_ text: String) throws(VolumeSpecError) -> [SiteMount] {
        var mounts: [SiteMount] = []
        for entry in text.splitBytes(where: { $0 == UInt8(ascii: ";") || isConfigWhitespace($0) || $0 == UInt8(ascii: "\n") }) {
            mounts.append(try parse(String(entry)))
        }
        return mounts
    }

    /// The entry in the form `parse` reads back to an equal value.
    public var canonical: String {
        var parts = [source, target]
        if readOnly { parts.append("ro") }
        if recursive { parts.append("rec") }
        if let propagation { parts.append(propagation.rawValue) }
        return parts.joined(separator: ":")
    }
}

/// A volume or site mount that does not follow its grammar or rules.
public struct VolumeSpecError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The single volume or site mount entry that was refused.
    public var input: String
    /// What is wrong with it.
    public var reason: String
    /// What the entry is, for the message: `volume` or `siteFs entry`.
    public var subject: String

    /// Creates an error for `input` that failed for `reason`.
    public init(input: String, reason: String, subject: String = "volume") {
        self.input = input
        self.reason = reason
        self.subject = subject
    }

    /// One line: `volume "/a:/etc/x": target may not be under /etc`.
    public var description: String { "\(subject) \(quoted(input)): \(reason)" }
}

/// The flags shared by user volumes and site mounts.
struct MountFlags {
    var readOnly = false
    var recursive = false
    var propagation: MountPropagation?
    var perNodeCache: PerNodeCacheSpec?
    var hostSource = false
    var isTmpfs = false
    var tmpfsSize: UInt64?
    var isUmount = false

    struct Violation: Error {
        var reason: String
    }

    static func parse(_ fields: ArraySlice<Substring>, userVolume: Bool) throws(Violation) -> MountFlags {
        var flags = MountFlags()
        var sawOtherFlag = false
        for field in fields {
            // By bytes: every entry of the site's configuration passes here at each start.
            let nameEnd = field.utf8.firstIndex(of: UInt8(ascii: "=")) ?? field.endIndex
            let name = field[..<nameEnd].lowercased()
            let hasValue = nameEnd != field.endIndex
            if name != "pernodecache" && name != "tmpfs" && hasValue {
                throw Violation(reason: "flag \(quoted(name)) takes no value")
            }
            switch name {
            case "ro": flags.readOnly = true
            case "rec": flags.recursive = true
            case "slave", "private":
                let requested: MountPropagation = name == "slave" ? .slave : .private
                if let existing = flags.propagation, existing != requested {
                    throw Violation(reason: "flags \"slave\" and \"private\" cannot be combined")
                }
                flags.propagation = requested
            case "host" where userVolume: flags.hostSource = true
            case "host":
                throw Violation(reason: "host is only for user volumes (a site mount's source is always the host's)")
            case "pernodecache" where userVolume:
                if flags.perNodeCache != nil { throw Violation(reason: "perNodeCache is given twice") }
                flags.perNodeCache = try parsePerNodeCache(hasValue ? field[field.index(after: nameEnd)...] : "")
                continue
            case "tmpfs" where userVolume:
                if flags.isTmpfs { throw Violation(reason: "tmpfs is given twice") }
                flags.isTmpfs = true
                if hasValue {
                    do {
                        flags.tmpfsSize = try ByteSize.parse(field[field.index(after: nameEnd)...])
                    } catch {
                        throw Violation(reason: "tmpfs size: \(error.description)")
                    }
                    if flags.tmpfsSize == 0 { throw Violation(reason: "tmpfs size must be more than 0") }
                }
                continue
            case "umount" where userVolume:
                if flags.isUmount { throw Violation(reason: "umount is given twice") }
                flags.isUmount = true
                continue
            case "pernodecache", "tmpfs", "umount":
                throw Violation(reason: "\(name == "pernodecache" ? "perNodeCache" : name) is only for user volumes")
            case "":
                throw Violation(reason: "empty flag (doubled or trailing \":\")")
            default:
                let known = userVolume ? "ro, rec, slave, private, host, perNodeCache=..., tmpfs[=SIZE], umount" : "ro, rec, slave, private"
                throw Violation(reason: "unknown flag \(quoted(field)) (known: \(known))")
            }
            sawOtherFlag = true
        }
        // A volume that is not a bind (a cache, an umount, a tmpfs) takes no other flag.
        let kindCount = (flags.perNodeCache != nil ? 1 : 0) + (flags.isUmount ? 1 : 0) + (flags.isTmpfs ? 1 : 0)
        if kindCount > 0 && (sawOtherFlag || kindCount > 1) {
            let kind = flags.perNodeCache != nil ? "perNodeCache" : flags.isUmount ? "umount" : "tmpfs"
            throw Violation(reason: "\(kind) cannot be combined with other flags")
        }
        return flags
    }

    private static func parsePerNodeCache(_ text: Substring) throws(Violation) -> PerNodeCacheSpec {
        if text.isEmpty { throw Violation(reason: "perNodeCache needs size=SIZE") }
        var size: UInt64?
        var cache = PerNodeCacheSpec(size: 0)
        var seen: Set<String> = []
        for pair in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let equals = pair.firstIndex(of: "=") else {
                throw Violation(reason: "perNodeCache option \(quoted(pair)) must be KEY=VALUE")
            }
            let key = pair[..<equals].lowercased()
            let value = pair[pair.index(after: equals)...]
            if !seen.insert(key).inserted { throw Violation(reason: "perNodeCache option \(quoted(key)) is given twice") }
            switch key {
            case "size", "bs":
                let bytes: UInt64
                do {
                    bytes = try ByteSize.parse(value)
                } catch {
                    throw Violation(reason: "perNodeCache \(key): \(error.description)")
                }
                if bytes == 0 { throw Violation(reason: "perNodeCache \(key) must be more than 0") }
                if key == "size" {
                    size = bytes
                } else {
                    if bytes & (bytes - 1) != 0 || bytes < 512 {
                        throw Violation(reason: "perNodeCache bs must be a power of two of at least 512 bytes")
                    }
                    cache.blockSize = bytes
                }
            case "fs":
                let name = value.lowercased()
                guard !name.isEmpty, name.utf8.allSatisfy(isLowercaseAlphanumeric) else {
                    throw Violation(reason: "perNodeCache fs \(quoted(value)) is not a filesystem type name")
                }
                cache.filesystem = name
            case "method":
                guard value.lowercased() == "loop" else {
                    throw Violation(reason: "perNodeCache method \(quoted(value)) is not supported (only \"loop\")")
                }
            default:
                throw Violation(reason: "unknown perNodeCache option \(quoted(key)) (known: size, bs, fs, method)")
            }
        }
        guard let size else { throw Violation(reason: "perNodeCache needs size=SIZE") }
        cache.size = size
        if let blockSize = cache.blockSize, blockSize > size {
            throw Violation(reason: "perNodeCache bs is larger than its size")
        }
        return cache
    }
}
