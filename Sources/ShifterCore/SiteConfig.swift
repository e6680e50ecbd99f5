/// The filesystem that holds the writable layer of a container root.
public enum RootfsType: String, Sendable, Codable, CaseIterable {
    /// Swappable and size-limited; the default.
    case tmpfs
    /// For kernels where tmpfs cannot be used. ramfs takes no `size=`: nothing bounds what a user
    /// writes into the container's `/` but the node's memory. It stays accepted, without a warning
    /// that every user would see on every run, so that old site files keep working; the admin
    /// guide says what it costs and what to prefer.
    case ramfs
}

/// How `shifter` enters a job's container (`entryMode`).
public enum EntryMode: String, Sendable, Codable, CaseIterable {
    /// The setuid-root `shifter` chroots into the job's root, or builds a private root where there
    /// is none (outside a job, a step with an image of its own). The default: it is the only mode
    /// that runs containers outside a job's prepared root.
    case setuid
    /// The prolog makes a user namespace owned by the job's user, with a mount namespace whose
    /// root is the job's root; `shifter`, installed without the setuid bit, joins them. No
    /// privileged program on the node; containers only in jobs that asked for an image.
    case userns
}

/// The site configuration read from `udiRoot.conf` (SPEC section 5).
///
/// Only `udiMount`, `loopMount` and `imagePath` are required: without them nothing can be built or
/// found. Every other key has a default or is optional.
public struct SiteConfig: Sendable, Equatable {
    /// `udiMount`: the directory under which container roots are built.
    public var udiMount: String
    /// `loopMount`: the directory under which images are loop-mounted.
    public var loopMount: String
    /// `imagePath`: the image store.
    public var imagePath: String
    /// `udiRootPath`: the install prefix.
    public var udiRootPath: String?
    /// The site's image client, which submission runs for gateway lookups and pulls.
    public var shifterimgPath: String { (udiRootPath ?? "/usr") + "/bin/shifterimg" }
    /// `etcPath`: files copied into the container's `/etc`.
    public var etcPath: String?
    /// `optUdiImage`: a directory bind-mounted read-only at `/opt/udiImage`.
    public var optUdiImage: String?
    /// `populateEtcDynamically`: generate passwd, group and nsswitch.conf for the user.
    public var populateEtcDynamically: Bool = false
    /// `allowLibcPwdCalls`: whether user and group entries may come from the C library.
    public var allowLibcPwdCalls: Bool = false
    /// `maxGroupCount`: how many groups a container user keeps.
    public var maxGroupCount: Int = 512
    /// `rootfsType`: the filesystem of the root's writable layer.
    public var rootfsType: RootfsType = .tmpfs
    /// `imageLoopDirectIO`: 1 reads images through their loop devices with direct I/O (no second
    /// copy in the page cache, one request per squashfs read); 0 (default) reads them buffered, with
    /// the kernel's read-ahead, which suits an image file on a parallel filesystem.
    public var imageLoopDirectIO: Bool = false
    /// `mountUdiRootWritable`: 1 (default) leaves the built root writable; 0 makes the container's
    /// own `/` read-only once it is built, leaving site mounts, `/tmp`, volumes and caches as they are.
    public var mountUdiRootWritable: Bool = true
    /// `siteFs`: host mounts into every container.
    public var siteFs: [SiteMount] = []
    /// `siteEnv`, `siteEnvAppend`, `siteEnvPrepend`, `siteEnvUnset`.
    public var environment = SiteEnvironment()
    /// `sitePreMountHook`: a root script run before the site mounts.
    public var sitePreMountHook: String?
    /// `sitePostMountHook`: a root script run after the site mounts.
    public var sitePostMountHook: String?
    /// `siteEpilogHook`: a root script the job epilog runs on each node where the job had a root,
    /// before it removes that root.
    public var siteEpilogHook: String?
    /// `nodeMetricsPath`: the directory where the prolog and epilog keep this node's metrics in
    /// Prometheus text format (node_exporter's textfile collector); `nil` writes none.
    public var nodeMetricsPath: String?
    /// `imageGateway`: gateway URLs tried in turn, or `local` for in-process imports.
    public var imageGateway: [String] = []
    /// `system`: this cluster's name at the gateway.
    public var system: String?
    /// `defaultImageType`: the type of a reference without a `TYPE:` prefix.
    public var defaultImageType: ImageType = .docker
    /// `allowLocalChroot`: whether `local:` images are allowed.
    public var allowLocalChroot: Bool = false
    /// `perNodeCachePath`: where per-node cache files live; `nil` disables per-node caches.
    public var perNodeCachePath: String?
    /// `perNodeCacheSizeLimit` in bytes; `nil` sets no limit.
    public var perNodeCacheSizeLimit: UInt64?
    /// `perNodeCacheTotalLimit`: the most bytes all per-node caches of one request (a job, or one
    /// `shifter` run) may add up to on a node; `nil` sets no limit.
    public var perNodeCacheTotalLimit: UInt64?
    /// `tmpfsVolumeSizeLimit`: the largest tmpfs volume (`--volume=...:tmpfs`, Pyxis' `tmpfs:`
    /// mounts) a user may ask for, and the size of one that names none. Its memory is charged to
    /// the job's memory cgroup, where Slurm sets one.
    public var tmpfsVolumeSizeLimit: UInt64 = defaultTmpfsVolumeSizeLimit
    /// `tmpfsVolumeSizeLimit` where the file sets none (or an empty value): 1 GiB.
    public static let defaultTmpfsVolumeSizeLimit: UInt64 = 1 << 30
    /// `perNodeCacheAllowedFsType`: filesystem types a per-node cache may use.
    public var perNodeCacheAllowedFsType: [String] = ["xfs"]
    /// `mkfsXfsPath`: the mkfs.xfs used to format per-node caches.
    public var mkfsXfsPath: String = "/sbin/mkfs.xfs"
    /// `sshPath`: the site's OpenSSH for containers (`bin/sshd`, `bin/ssh`, `bin/ssh-keygen`, runnable
    /// in any image, as `make-ssh-bundle` makes it), bound read-only at the same path in a job's
    /// container when the job asks for sshd (`--ccm`); `nil`: no sshd in containers.
    public var sshPath: String?
    /// `sshPort`: the port each node's sshd of a job listens on (an unprivileged one: it runs as the user).
    public var sshPort: Int = 1204
    /// `sshNodePorts`: nodes whose sshd listens elsewhere, for hosts that run several slurmd:
    /// the node name, and the address and port ssh reaches it at.
    public var sshNodePorts: [SSHNodePort] = []
    /// `entryMode`: how `shifter` enters a job's container.
    public var entryMode: EntryMode = .setuid
    /// `stepRootLimit`: the most steps of one job that have roots of their own on a node at once
    /// (`entryMode=userns`: a step with another image or other volumes than its job's).
    public var stepRootLimit: Int = 4
    /// `mountPropagationStyle`: the propagation of mounts that request none.
    public var mountPropagationStyle: MountPropagation = .private
    /// `defaultModules`: modules loaded when the user names none.
    public var defaultModules: [String] = []
    /// The `module_NAME_*` modules, by name.
    public var modules: [String: SiteModule] = [:]
    /// `gatewayTimeout`: seconds per gateway request.
    public var gatewayTimeout: Int = 60
    /// `imageExpandedSizeLimit`: the most bytes an image's layers may expand to when imported;
    /// `nil` keeps the importer's default.
    public var imageExpandedSizeLimit: UInt64?
    /// `imageEntryLimit`: the most tar entries an image's layers may hold; `nil` keeps the importer's default.
    public var imageEntryLimit: Int?
    /// `cdiSpecDirs`: where the node's Container Device Interface specs are, in order (a later
    /// directory's device wins, as CDI says); `--device` names their devices.
    public var cdiSpecDirs: [String] = defaultCDISpecDirs
    public static let defaultCDISpecDirs = ["/etc/cdi", "/var/run/cdi"]
    /// `requireSignedImages`: an image runs only where its record names the key that signed it,
    /// which the gateway writes when its signature policy checked a signature.
    public var requireSignedImages = false
    /// `acceptedSigners`: the key fingerprints (`sha256:HEX`, as `shifterimg images` shows them) an
    /// image's signer must be one of; a list implies `requireSignedImages`.
    public var acceptedSigners: [String] = []
    /// `cdiSlurmGpuKind`: the CDI kind (`nvidia.com/gpu`) whose devices a job gets for the GPUs
    /// Slurm gave it, by the indices or UUIDs in `SLURM_JOB_GPUS`, without asking; nil: none.
    public var cdiSlurmGpuKind: String?

    /// Creates a configuration with the required keys and every default.
    public init(udiMount: String, loopMount: String, imagePath: String) {
        self.udiMount = udiMount
        self.loopMount = loopMount
        self.imagePath = imagePath
    }

    /// Keys of the old Shifter that mean nothing now; they are accepted with a warning.
    public static let retiredKeys: [String] = [
        "modprobePath", "insmodPath", "cpPath", "mvPath", "chmodPath", "ddPath", "kmodBasePath",
        "kmodCacheFile", "autoLoadKernelModule", "optionalSshdAsRoot", "nodeContextPrefix", "batchType",
    ]

    /// Keys that must be present.
    public static let requiredKeys = ["udiMount", "loopMount", "imagePath"]

    /// Keys whose repeats add to the value instead of replacing it, as in the old Shifter.
    static let accumulatingKeys: [String] = [
        "siteFs", "siteEnv", "siteEnvAppend", "siteEnvPrepend", "siteEnvUnset", "imageGateway",
        "perNodeCacheAllowedFsType", "defaultModules",
    ]

    /// Parses `udiRoot.conf` text; `source` names the file in messages.
    ///
    /// Lines are `key=value`, whitespace around `=` ignored. A line ending in `\` continues on the
    /// next, joined without adding anything. `#` starts a comment at the start of a line or after
    /// whitespace. List items are separated by whitespace (`siteFs` entries also by `;`, module names
    /// and filesystem types also by `,`). A repeated list key adds to the list; a repeated scalar key
    /// replaces the value with a warning.
    public static func parse(
        _ text: String, source: String
    ) throws(SiteConfigError) -> (config: SiteConfig, warnings: [String]) {
        var parser = SiteConfigParser(source: source)
        var pending: String?
        var pendingLine = 0
        var lineNumber = 0
        // Split by bytes: a CRLF line ends in "\r", dropped here.
        for rawLine in text.splitBytes(omittingEmpty: false, where: { $0 == UInt8(ascii: "\n") }) {
            lineNumber += 1
            var line = rawLine
            if line.utf8.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if pending == nil {
                let content = trimmed(line)
                if content.isEmpty || content.utf8.first == UInt8(ascii: "#") { continue }
            }
            let withoutTrailing = trimmed(line, leading: false)
            if withoutTrailing.hasSuffix("\\") {
                if pending == nil { pendingLine = lineNumber }
                var joined = pending ?? ""
                joined.append(contentsOf: withoutTrailing.dropLast())
                pending = joined
                continue
            }
            if var joined = pending {
                joined.append(contentsOf: line)
                try parser.handle(joined, line: pendingLine)
                pending = nil
            } else {
                try parser.handle(String(line), line: lineNumber)
            }
        }
        if let pending { try parser.handle(pending, line: pendingLine) }
        return try parser.finish()
    }

    /// Checks that the file is owned by root and not writable by group or others.
    ///
    /// The file decides what a setuid-root program mounts, so anyone who could write it could gain
    /// root on every node.
    public static func checkOwnership(path: String, ownerUID: UInt32, mode: UInt32) throws(SiteConfigError) {
        if ownerUID != 0 {
            throw SiteConfigError(source: path, reason: "must be owned by root, not uid \(ownerUID)")
        }
        if mode & 0o022 != 0 {
            let octal = String(mode & 0o7777, radix: 8)
            throw SiteConfigError(
                source: path, reason: "must not be writable by group or others (mode \(String(repeating: "0", count: max(0, 4 - octal.count)) + octal))")
        }
    }
}

/// A site module (`module_NAME_*` keys): mounts, variables and hooks a user loads with `--module`.
///
/// NAME may contain `_` (`module_cray_mpich_siteEnv` configures module `cray_mpich`): the setting
/// is whatever follows the last `_`, since no setting name contains one.
public struct SiteModule: Hashable, Sendable {
    /// The module name: `[A-Za-z0-9_-]+`.
    public var name: String
    /// `module_NAME_siteFs`: host mounts the module adds.
    public var siteFs: [SiteMount] = []
    /// `module_NAME_siteEnv`, `_siteEnvAppend`, `_siteEnvPrepend`, `_siteEnvUnset`.
    public var environment = SiteEnvironment()
    /// `module_NAME_userhook`: a script run as the user in the container before the command.
    public var userhook: String?
    /// `module_NAME_roothook`: a script run as root while the root is built.
    public var roothook: String?
    /// `module_NAME_copyPath`: a directory copied into the container.
    public var copyPath: String?
    /// `module_NAME_conflict`: modules that cannot be loaded together with this one.
    public var conflicts: [String] = []
    /// `module_NAME_enabled`: 0 disables the module; on by default.
    public var enabled: Bool = true

    /// Creates an enabled module that does nothing yet.
    public init(name: String) {
        self.name = name
    }

    /// The settings that follow `module_NAME_`.
    public static let keySuffixes = [
        "siteFs", "siteEnv", "siteEnvPrepend", "siteEnvAppend", "siteEnvUnset", "userhook", "roothook",
        "copyPath", "conflict", "enabled",
    ]

    /// Whether `name` is a valid module name: `[A-Za-z0-9_-]+`.
    public static func isValidName(_ name: some StringProtocol) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }
}

/// A `udiRoot.conf` that cannot be used.
public struct SiteConfigError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The file, as the caller named it.
    public var source: String
    /// The 1-based line, when the problem is on one line.
    public var line: Int?
    /// What is wrong.
    public var reason: String

    /// Creates an error in `source`, optionally on `line`.
    public init(source: String, line: Int? = nil, reason: String) {
        self.source = source
        self.line = line
        self.reason = reason
    }

    /// One line: `udiRoot.conf line 12: unknown key "fooBar"`.
    public var description: String {
        escaped(source) + (line.map { " line \($0)" } ?? "") + ": " + reason
    }
}

/// Space, tab, CR, VT and FF. The configuration is read by bytes, not Characters: every `shifter`
/// start parses it, and ASCII bytes never occur inside a multi-byte UTF-8 sequence.
func isConfigWhitespace(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0B || byte == 0x0C
}

func trimmed(_ text: Substring, leading: Bool = true) -> Substring {
    let bytes = text.utf8
    var start = bytes.startIndex, end = bytes.endIndex
    if leading { while start < end, isConfigWhitespace(bytes[start]) { start = bytes.index(after: start) } }
    while end > start, isConfigWhitespace(bytes[bytes.index(before: end)]) { end = bytes.index(before: end) }
    return text[start..<end]
}

extension StringProtocol {
    /// The pieces between bytes for which `isSeparator` holds, which must be ASCII; by bytes, so no
    /// Character is formed.
    func splitBytes(omittingEmpty: Bool = true, where isSeparator: (UInt8) -> Bool) -> [SubSequence] {
        var pieces: [SubSequence] = []
        let bytes = utf8
        var start = bytes.startIndex, index = start
        while index < bytes.endIndex {
            if isSeparator(bytes[index]) {
                if !omittingEmpty || start < index { pieces.append(self[start..<index]) }
                start = bytes.index(after: index)
            }
            index = bytes.index(after: index)
        }
        if !omittingEmpty || start < bytes.endIndex { pieces.append(self[start..<bytes.endIndex]) }
        return pieces
    }
}

/// The state of one `udiRoot.conf` parse.
struct SiteConfigParser {
    let source: String
    var config = SiteConfig(udiMount: "", loopMount: "", imagePath: "")
    var warnings: [String] = []
    var lineOfKey: [String: Int] = [:]

    init(source: String) {
        self.source = source
    }

    mutating func handle(_ text: String, line: Int) throws(SiteConfigError) {
        var content = Substring(text)
        if let hash = commentStart(content) { content = content[..<hash] }
        content = trimmed(content)
        if content.isEmpty { return }
        guard let equals = content.utf8.firstIndex(of: UInt8(ascii: "=")) else {
            throw SiteConfigError(source: source, line: line, reason: "expected key=value, found \(quoted(content))")
        }
        let key = String(trimmed(content[..<equals]))
        let value = trimmed(content[content.index(after: equals)...])
        if key.isEmpty { throw SiteConfigError(source: source, line: line, reason: "no key before \"=\"") }
        if let earlier = lineOfKey[key], !SiteConfig.accumulatingKeys.contains(key) {
            warnings.append(message(line, "key \(quoted(key)) was already set on line \(earlier); the later value wins"))
        }
        let firstOccurrence = lineOfKey[key] == nil
        lineOfKey[key] = line
        try assign(key: key, value: value, line: line, firstOccurrence: firstOccurrence)
    }

    /// A `#` at the start or after whitespace starts a comment; one inside a value (a URL) does not.
    private func commentStart(_ text: Substring) -> Substring.Index? {
        var previous: UInt8?
        let bytes = text.utf8
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == UInt8(ascii: "#"), previous.map(isConfigWhitespace) ?? true { return index }
            previous = bytes[index]
            index = bytes.index(after: index)
        }
        return nil
    }

    private func message(_ line: Int, _ text: String) -> String {
        "\(escaped(source)) line \(line): \(text)"
    }

    private mutating func assign(key: String, value: Substring, line: Int, firstOccurrence: Bool) throws(SiteConfigError) {
        let values = ValueReader(source: source, line: line, key: key, value: value)
        switch key {
        case "udiMount": config.udiMount = try values.path()
        case "loopMount": config.loopMount = try values.path()
        case "imagePath": config.imagePath = try values.path()
        case "udiRootPath": config.udiRootPath = try values.optionalPath()
        case "etcPath": config.etcPath = try values.optionalPath()
        case "optUdiImage": config.optUdiImage = try values.optionalPath()
        case "populateEtcDynamically": config.populateEtcDynamically = try values.boolean()
        case "allowLibcPwdCalls": config.allowLibcPwdCalls = try values.boolean()
        case "maxGroupCount": config.maxGroupCount = try values.integer(in: 1...65536)
        case "rootfsType": config.rootfsType = try values.choice(of: RootfsType.self)
        case "mountUdiRootWritable": config.mountUdiRootWritable = try values.boolean()
        case "imageLoopDirectIO": config.imageLoopDirectIO = try values.boolean()
        case "siteFs": config.siteFs += try values.siteMounts()
        case "siteEnv": config.environment.assign += try values.assignments()
        case "siteEnvAppend": config.environment.append += try values.assignments()
        case "siteEnvPrepend": config.environment.prepend += try values.assignments()
        case "siteEnvUnset": config.environment.unset += try values.variableNames()
        case "sitePreMountHook": config.sitePreMountHook = try values.optionalPath()
        case "sitePostMountHook": config.sitePostMountHook = try values.optionalPath()
        case "siteEpilogHook": config.siteEpilogHook = try values.optionalPath()
        case "nodeMetricsPath": config.nodeMetricsPath = try values.optionalPath()
        case "imageGateway": config.imageGateway += try values.gatewayURLs()
        case "system": config.system = try values.systemName()
        case "defaultImageType": config.defaultImageType = try values.choice(of: ImageType.self)
        case "allowLocalChroot": config.allowLocalChroot = try values.boolean()
        case "perNodeCachePath": config.perNodeCachePath = try values.optionalPath()
        case "perNodeCacheSizeLimit": config.perNodeCacheSizeLimit = try values.size()
        case "tmpfsVolumeSizeLimit": config.tmpfsVolumeSizeLimit = try values.size() ?? SiteConfig.defaultTmpfsVolumeSizeLimit
        case "perNodeCacheTotalLimit": config.perNodeCacheTotalLimit = try values.size()
        case "perNodeCacheAllowedFsType":
            // The first occurrence replaces the built-in default instead of adding to it.
            let types = try values.filesystemTypes()
            let existing = firstOccurrence ? [] : config.perNodeCacheAllowedFsType
            config.perNodeCacheAllowedFsType = existing + types.filter { !existing.contains($0) }
        case "mkfsXfsPath": config.mkfsXfsPath = try values.path()
        case "sshPath": config.sshPath = try values.optionalPath()
        case "sshPort": config.sshPort = try values.integer(in: 1024...65535)
        case "sshNodePorts": config.sshNodePorts += try values.sshNodePorts()
        case "mountPropagationStyle": config.mountPropagationStyle = try values.choice(of: MountPropagation.self)
        case "entryMode": config.entryMode = try values.choice(of: EntryMode.self)
        case "stepRootLimit": config.stepRootLimit = try values.integer(in: 1...1024)
        case "defaultModules": config.defaultModules += try values.moduleNames()
        case "gatewayTimeout": config.gatewayTimeout = try values.integer(in: 1...86400)
        case "imageExpandedSizeLimit": config.imageExpandedSizeLimit = try values.size()
        case "imageEntryLimit": config.imageEntryLimit = try values.integer(in: 1...1_000_000_000)
        case "cdiSpecDirs": config.cdiSpecDirs = try values.paths()
        case "cdiSlurmGpuKind": config.cdiSlurmGpuKind = try values.cdiKind()
        case "requireSignedImages": config.requireSignedImages = try values.boolean()
        case "acceptedSigners": config.acceptedSigners += try values.keyFingerprints()
        default:
            if SiteConfig.retiredKeys.contains(key) {
                warnings.append(message(line, "key \(quoted(key)) is no longer used and is ignored"))
            } else if key.hasPrefix("module_") {
                try assignModuleKey(key, values: values)
            } else {
                throw SiteConfigError(source: source, line: line, reason: "unknown key \(quoted(key))")
            }
        }
    }

    /// `module_NAME_SUFFIX`, where NAME may itself contain `_`: the suffix is what follows the last `_`.
    private mutating func assignModuleKey(_ key: String, values: ValueReader) throws(SiteConfigError) {
        let rest = key.dropFirst("module_".count)
        guard let lastUnderscore = rest.lastIndex(of: "_") else {
            throw values.failure("module keys are module_NAME_SETTING")
        }
        let name = String(rest[..<lastUnderscore])
        let suffix = String(rest[rest.index(after: lastUnderscore)...])
        guard SiteModule.isValidName(name) else {
            throw values.failure("module name \(quoted(name)) may only use letters, digits, \"_\" and \"-\"")
        }
        guard SiteModule.keySuffixes.contains(suffix) else {
            throw SiteConfigError(
                source: source, line: values.line,
                reason: "unknown key \(quoted(key)) (module settings: \(SiteModule.keySuffixes.joined(separator: ", ")))")
        }
        var module = config.modules[name] ?? SiteModule(name: name)
        switch suffix {
        case "siteFs": module.siteFs += try values.siteMounts()
        case "siteEnv": module.environment.assign += try values.assignments()
        case "siteEnvPrepend": module.environment.prepend += try values.assignments()
        case "siteEnvAppend": module.environment.append += try values.assignments()
        case "siteEnvUnset": module.environment.unset += try values.variableNames()
        case "userhook": module.userhook = try values.optionalPath()
        case "roothook": module.roothook = try values.optionalPath()
        case "copyPath": module.copyPath = try values.optionalPath()
        case "conflict": module.conflicts += try values.moduleNames()
        default: module.enabled = try values.boolean()
        }
        config.modules[name] = module
    }

    mutating func finish() throws(SiteConfigError) -> (config: SiteConfig, warnings: [String]) {
        for key in SiteConfig.requiredKeys where lineOfKey[key] == nil {
            throw SiteConfigError(source: source, reason: "required key \(quoted(key)) is missing")
        }
        let roots = [("udiMount", config.udiMount), ("loopMount", config.loopMount)]
        for (key, path) in roots + [("imagePath", config.imagePath)] where path == "/" {
            throw SiteConfigError(source: source, line: lineOfKey[key], reason: "\(key) may not be /")
        }
        if NormalisedPath.path(config.udiMount, isWithin: config.loopMount)
            || NormalisedPath.path(config.loopMount, isWithin: config.udiMount)
        {
            throw SiteConfigError(
                source: source, line: lineOfKey["loopMount"],
                reason: "udiMount and loopMount must be separate directories, neither inside the other")
        }
        let defaultsLine = lineOfKey["defaultModules"]
        for name in config.defaultModules {
            guard let module = config.modules[name] else {
                throw SiteConfigError(source: source, line: defaultsLine, reason: "defaultModules names undefined module \(quoted(name))")
            }
            if !module.enabled {
                warnings.append(message(defaultsLine ?? 0, "default module \(quoted(name)) is disabled and will not be loaded"))
            }
        }
        for module in config.modules.values.sorted(by: { $0.name < $1.name }) {
            for other in module.conflicts where config.modules[other] == nil {
                warnings.append("\(escaped(source)): module \(quoted(module.name)) conflicts with undefined module \(quoted(other))")
            }
        }
        return (config, warnings)
    }
}

/// Reads one key's value as a typed setting, with errors that name the file, line and key.
struct ValueReader {
    let source: String
    let line: Int
    let key: String
    let value: Substring

    func failure(_ reason: String) -> SiteConfigError {
        SiteConfigError(source: source, line: line, reason: "\(key): \(reason)")
    }

    private var words: [Substring] { value.splitBytes(where: isConfigWhitespace) }

    func path() throws(SiteConfigError) -> String {
        do {
            return try NormalisedPath.parse(value)
        } catch {
            throw failure(error.reason)
        }
    }

    /// Paths separated by whitespace; none is an empty list.
    func paths() throws(SiteConfigError) -> [String] {
        try words.map { (word) throws(SiteConfigError) -> String in
            do throws(PathRuleViolation) { return try NormalisedPath.parse(word) } catch { throw failure(error.reason) }
        }
    }

    /// Key fingerprints, `sha256:` and 64 hex digits, separated by whitespace.
    func keyFingerprints() throws(SiteConfigError) -> [String] {
        try words.map { (word) throws(SiteConfigError) -> String in
            guard isSHA256Digest(word) else {
                throw failure("\(quoted(String(word))) is not a key fingerprint (sha256: and 64 lower-case hex digits)")
            }
            return String(word)
        }
    }

    /// A CDI kind, `vendor.com/class`; empty means unset.
    func cdiKind() throws(SiteConfigError) -> String? {
        guard !value.isEmpty else { return nil }
        do throws(CDIError) { _ = try CDIDeviceName.parseKind(value, what: "the value") } catch { throw failure(error.reason) }
        return String(value)
    }

    /// An empty value means unset, as `sitePreMountHook=` did in the old Shifter.
    func optionalPath() throws(SiteConfigError) -> String? {
        value.isEmpty ? nil : try path()
    }

    func boolean() throws(SiteConfigError) -> Bool {
        switch value.lowercased() {
        case "1", "true", "yes": return true
        case "0", "false", "no": return false
        default: throw failure("\(quoted(value)) is not a boolean (use 0 or 1)")
        }
    }

    func integer(in range: ClosedRange<Int>) throws(SiteConfigError) -> Int {
        guard value.utf8.count <= 18, value.utf8.allSatisfy(isASCIIDigit), let number = Int(value), range.contains(number) else {
            throw failure("\(quoted(value)) is not a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    func size() throws(SiteConfigError) -> UInt64? {
        if value.isEmpty { return nil }
        do {
            return try ByteSize.parse(value)
        } catch {
            throw failure(error.description)
        }
    }

    func choice<Choice: RawRepresentable & CaseIterable>(of type: Choice.Type) throws(SiteConfigError) -> Choice
    where Choice.RawValue == String {
        if let choice = Choice(rawValue: String(value)) { return choice }
        let names = Choice.allCases.map(\.rawValue).joined(separator: ", ")
        throw failure("\(quoted(value)) is not one of \(names)")
    }

    func siteMounts() throws(SiteConfigError) -> [SiteMount] {
        do {
            return try SiteMount.parseList(String(value))
        } catch {
            throw failure(error.description)
        }
    }

    func assignments() throws(SiteConfigError) -> [EnvironmentAssignment] {
        var result: [EnvironmentAssignment] = []
        for word in words {
            do {
                result.append(try EnvironmentAssignment.parse(String(word)))
            } catch {
                throw failure(error.description)
            }
        }
        return result
    }

    func variableNames() throws(SiteConfigError) -> [String] {
        try words.map { (word) throws(SiteConfigError) -> String in
            guard EnvironmentAssignment.isValidName(word) else { throw failure("\(quoted(word)) is not a valid variable name") }
            return String(word)
        }
    }

    func gatewayURLs() throws(SiteConfigError) -> [String] {
        try words.map { (word) throws(SiteConfigError) -> String in
            let isURL = (word.hasPrefix("http://") && word.count > 7) || (word.hasPrefix("https://") && word.count > 8)
            guard word == "local" || isURL, word.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value != 0x7F }) else {
                throw failure("\(quoted(word)) is neither an http:// or https:// URL nor \"local\"")
            }
            return String(word)
        }
    }

    func systemName() throws(SiteConfigError) -> String? {
        if value.isEmpty { return nil }
        guard value.utf8.allSatisfy({ isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }) else {
            throw failure("\(quoted(value)) may only use letters, digits, \"_\", \".\" and \"-\"")
        }
        return String(value)
    }

    func filesystemTypes() throws(SiteConfigError) -> [String] {
        try value.splitBytes(where: { isConfigWhitespace($0) || $0 == UInt8(ascii: ",") }).map { (word) throws(SiteConfigError) -> String in
            guard word.utf8.allSatisfy(isLowercaseAlphanumeric) else { throw failure("\(quoted(word)) is not a filesystem type name") }
            return String(word)
        }
    }

    /// `NODE=PORT` or `NODE=ADDRESS:PORT`, space-separated.
    func sshNodePorts() throws(SiteConfigError) -> [SSHNodePort] {
        try words.map { (word) throws(SiteConfigError) -> SSHNodePort in
            let parts = word.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let where_ = parts.count == 2 ? parts[1] : ""
            let colon = where_.lastIndex(of: ":")
            let address = colon.map { String(where_[..<$0]) }
            let portText = colon.map { where_[where_.index(after: $0)...] } ?? where_
            let safe = { (text: Substring) in
                !text.isEmpty && text.utf8.allSatisfy { isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") }
            }
            guard parts.count == 2, safe(parts[0]), address.map({ safe(Substring($0)) }) ?? true,
                  portText.utf8.count <= 5, portText.utf8.allSatisfy(isASCIIDigit), let port = Int(portText), (1024...65535).contains(port) else {
                throw failure("\(quoted(word)) is not NODE=PORT or NODE=ADDRESS:PORT with a port from 1024 to 65535")
            }
            return SSHNodePort(node: String(parts[0]), address: address, port: port)
        }
    }

    /// Module lists are written with commas (`--module=a,b`) or spaces; both are accepted.
    func moduleNames() throws(SiteConfigError) -> [String] {
        try value.splitBytes(where: { isConfigWhitespace($0) || $0 == UInt8(ascii: ",") }).map { (word) throws(SiteConfigError) -> String in
            guard SiteModule.isValidName(word) else { throw failure("module name \(quoted(word)) may only use letters, digits, \"_\" and \"-\"") }
            return String(word)
        }
    }
}

/// Where one node's sshd of a job listens (`sshNodePorts`).
public struct SSHNodePort: Sendable, Equatable {
    /// The node's name, as Slurm knows it (`SLURMD_NODENAME`).
    public var node: String
    /// The address ssh connects to, where the name does not resolve to the node.
    public var address: String?
    /// The port.
    public var port: Int

    public init(node: String, address: String? = nil, port: Int) {
        self.node = node
        self.address = address
        self.port = port
    }
}

extension SiteConfig {
    /// The port the sshd of a job listens on on node `node`.
    public func sshPort(onNode node: String?) -> Int {
        node.flatMap { name in sshNodePorts.last(where: { $0.node == name })?.port } ?? sshPort
    }
}

extension SiteConfig {
    /// Whether images run only with a signer on record (`requireSignedImages`, `acceptedSigners`).
    public var requiresSigner: Bool { requireSignedImages || !acceptedSigners.isEmpty }

    /// Why this system does not run an image whose record names signer `signedBy` (nil: none),
    /// or nil when it does (`requireSignedImages`, `acceptedSigners`).
    public func signerProblem(_ signedBy: String?) -> String? {
        guard requiresSigner else { return nil }
        guard let signedBy else {
            return "this system runs signed images only (requireSignedImages), and the image's record names no signer: it was pulled before the gateway checked signatures, or from a scope its policy accepts unsigned; pull it again (shifterimg pull) for the gateway to check its signature"
        }
        if !acceptedSigners.isEmpty && !acceptedSigners.contains(signedBy) {
            return "it was signed by key \(signedBy), which is not one of this system's acceptedSigners"
        }
        return nil
    }
}
