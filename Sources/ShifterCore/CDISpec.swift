/// A Container Device Interface spec (CDI 0.3.0 to 1.1.0): a vendor's description of its devices
/// as edits to a container (variables, device nodes, mounts, hooks, groups). Decoded from the
/// value tree of a JSON or YAML file; unknown fields are refused, as CDI's own parser does.
public struct CDISpec: Sendable, Equatable {
    public var version: String
    public var vendor: String
    public var deviceClass: String
    public var devices: [CDIDevice]
    /// Edits for every use of the spec, whichever of its devices is asked for.
    public var edits: CDIContainerEdits

    public var kind: String { vendor + "/" + deviceClass }

    /// The `cdiVersion`s there are; a spec names the one it was written for.
    public static let versions = ["0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0"]

    /// Decodes a spec; `source` (its file) is named in every message.
    public static func decode(_ value: JSONValue, source: String) throws(CDIError) -> CDISpec {
        let reader = try CDIReader(value, source: source, path: "")
        try reader.allowOnly(["cdiVersion", "kind", "annotations", "devices", "containerEdits"])
        guard var version = try reader.string("cdiVersion") else { throw reader.failure("cdiVersion is missing") }
        if version.hasPrefix("v") { version.removeFirst() }
        guard let versionIndex = versions.firstIndex(of: version) else {
            throw reader.failure("cdiVersion \(quoted(version)) is not one this Shifter reads (\(versions.joined(separator: ", ")))")
        }
        guard let kind = try reader.string("kind") else { throw reader.failure("kind is missing") }
        let (vendor, deviceClass) = try CDIDeviceName.parseKind(kind, what: source)
        _ = try reader.stringMap("annotations")
        let edits = try reader.record("containerEdits").map(CDIContainerEdits.decode) ?? CDIContainerEdits()
        var devices: [CDIDevice] = []
        for device in try reader.records("devices") ?? [] {
            let decoded = try CDIDevice.decode(device)
            if devices.contains(where: { $0.name == decoded.name }) {
                throw reader.failure("device \(quoted(decoded.name)) is defined twice")
            }
            devices.append(decoded)
        }
        if devices.isEmpty { throw reader.failure("no devices") }
        let spec = CDISpec(version: version, vendor: vendor, deviceClass: deviceClass, devices: devices, edits: edits)
        let required = spec.requiredVersion
        if let requiredIndex = versions.firstIndex(of: required), requiredIndex > versionIndex {
            throw reader.failure("cdiVersion \(version) is older than what the spec uses needs (\(required))")
        }
        return spec
    }

    /// The oldest `cdiVersion` with every field the spec uses, as CDI defines it.
    var requiredVersion: String {
        let all = [edits] + devices.map(\.edits)
        if all.contains(where: { !$0.additionalGroups.isEmpty }) { return "0.7.0" }
        if deviceClass.contains(".") { return "0.6.0" }
        if devices.contains(where: { $0.name.utf8.first.map { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) } ?? false })
            || all.contains(where: { $0.deviceNodes.contains { $0.hostPath != nil } }) { return "0.5.0" }
        if all.contains(where: { $0.mounts.contains { $0.type != nil } }) { return "0.4.0" }
        return "0.3.0"
    }
}

/// One device of a spec.
public struct CDIDevice: Sendable, Equatable {
    public var name: String
    public var edits: CDIContainerEdits

    static func decode(_ reader: CDIReader) throws(CDIError) -> CDIDevice {
        try reader.allowOnly(["name", "annotations", "containerEdits"])
        guard let name = try reader.string("name") else { throw reader.failure("a device has no name") }
        guard CDIDeviceName.isValidDeviceName(name) else {
            throw reader.failure("device name \(quoted(name)) must start and end with a letter or digit and hold only letters, digits and _ . : -")
        }
        _ = try reader.stringMap("annotations")
        guard let edits = try reader.record("containerEdits") else {
            throw reader.failure("device \(quoted(name)) has no containerEdits")
        }
        return CDIDevice(name: name, edits: try CDIContainerEdits.decode(edits))
    }
}

/// What a spec or a device adds to a container.
public struct CDIContainerEdits: Sendable, Equatable {
    public var environment: [EnvironmentAssignment] = []
    public var deviceNodes: [CDIDeviceNode] = []
    public var mounts: [CDIMount] = []
    public var hooks: [CDIHook] = []
    public var additionalGroups: [UInt32] = []

    public init() {}

    public var isEmpty: Bool {
        environment.isEmpty && deviceNodes.isEmpty && mounts.isEmpty && hooks.isEmpty && additionalGroups.isEmpty
    }

    /// `other` after these, as CDI merges the edits of a request: lists add up.
    public mutating func append(_ other: CDIContainerEdits) {
        environment += other.environment
        deviceNodes += other.deviceNodes
        mounts += other.mounts
        hooks += other.hooks
        additionalGroups += other.additionalGroups.filter { $0 != 0 && !additionalGroups.contains($0) }
    }

    static func decode(_ reader: CDIReader) throws(CDIError) -> CDIContainerEdits {
        try reader.allowOnly(["env", "deviceNodes", "mounts", "hooks", "additionalGids", "intelRdt", "netDevices"])
        if reader.has("intelRdt") { throw reader.failure("intelRdt is not supported: Shifter does not manage resctrl groups") }
        if reader.has("netDevices") { throw reader.failure("netDevices is not supported: a Shifter container shares the node's network") }
        var edits = CDIContainerEdits()
        for entry in try reader.strings("env") ?? [] {
            do {
                edits.environment.append(try EnvironmentAssignment.parse(entry))
            } catch {
                throw reader.failure("env \(quoted(entry)): \(error.reason)")
            }
        }
        edits.deviceNodes = try (reader.records("deviceNodes") ?? []).map(CDIDeviceNode.decode)
        edits.mounts = try (reader.records("mounts") ?? []).map(CDIMount.decode)
        edits.hooks = try (reader.records("hooks") ?? []).map(CDIHook.decode)
        edits.additionalGroups = try reader.uint32s("additionalGids") ?? []
        return edits
    }
}

/// A device node: `hostPath` (else `path`) on the node, at `path` in the container.
public struct CDIDeviceNode: Sendable, Equatable {
    public var path: String
    public var hostPath: String?
    /// `c`, `b`, `u` or `p`; nil: whatever the host's node is.
    public var type: String?
    public var major: Int64?
    public var minor: Int64?
    public var fileMode: UInt32?
    public var permissions: String?
    public var uid: UInt32?
    public var gid: UInt32?

    /// The node's file on the host.
    public var source: String { hostPath ?? path }

    static func decode(_ reader: CDIReader) throws(CDIError) -> CDIDeviceNode {
        try reader.allowOnly(["path", "hostPath", "type", "major", "minor", "fileMode", "permissions", "uid", "gid"])
        guard let path = try reader.path("path") else { throw reader.failure("a device node has no path") }
        var node = CDIDeviceNode(path: path, hostPath: try reader.path("hostPath"))
        node.type = try reader.string("type").flatMap { $0.isEmpty ? nil : $0 }
        if let type = node.type, !["c", "b", "u", "p"].contains(type) {
            throw reader.failure("device node \(path): type \(quoted(type)) is not c, b, u or p")
        }
        node.major = try reader.integer("major")
        node.minor = try reader.integer("minor")
        if let mode = try reader.integer("fileMode") {
            guard (0...0o7777).contains(mode) else { throw reader.failure("device node \(path): fileMode \(mode) is not a file mode") }
            node.fileMode = UInt32(mode)
        }
        node.permissions = try reader.string("permissions")
        if let permissions = node.permissions, permissions != "none", !permissions.allSatisfy({ "rwm".contains($0) }) {
            throw reader.failure("device node \(path): permissions \(quoted(permissions)) should be letters of rwm, or none")
        }
        node.uid = try reader.uint32("uid")
        node.gid = try reader.uint32("gid")
        return node
    }
}

/// A device node's file as the container shows it: permission bits, owner, group and device.
public struct CDINodeFile: Sendable, Equatable {
    public var permissions: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var major: UInt32
    public var minor: UInt32

    public init(permissions: UInt32, uid: UInt32, gid: UInt32, major: UInt32, minor: UInt32) {
        self.permissions = permissions
        self.uid = uid
        self.gid = gid
        self.major = major
        self.minor = minor
    }
}

extension CDIDeviceNode {
    /// The node's file in the container, from the host's node `host`: the spec's `fileMode`,
    /// `uid`, `gid`, `major` and `minor` where it gives them, and an access its cgroup
    /// `permissions` leave out (`r`, `w`) taken from every class's bits, so the container's user
    /// cannot open the node for it.
    public func containerFile(host: CDINodeFile) -> CDINodeFile {
        var file = host
        if let fileMode { file.permissions = fileMode & 0o777 }
        if let uid { file.uid = uid }
        if let gid { file.gid = gid }
        if let major, let value = UInt32(exactly: major) { file.major = value }
        if let minor, let value = UInt32(exactly: minor) { file.minor = value }
        if let permissions {
            if !permissions.contains("r") { file.permissions &= ~0o444 }
            if !permissions.contains("w") { file.permissions &= ~0o222 }
        }
        return file
    }
}

/// A bind mount of a host path into the container.
public struct CDIMount: Sendable, Equatable {
    public var hostPath: String
    public var containerPath: String
    public var options: [String] = []
    public var type: String?

    /// The options a bind of a host path may carry here; CDI passes others to the runtime's mount.
    static let knownOptions: Set<String> = ["ro", "rw", "nosuid", "nodev", "noexec", "bind", "rbind", "rprivate",
                                            "private", "rslave", "slave"]

    public var readOnly: Bool { options.contains("ro") }
    public var recursive: Bool { options.contains("rbind") }

    static func decode(_ reader: CDIReader) throws(CDIError) -> CDIMount {
        try reader.allowOnly(["hostPath", "containerPath", "options", "type"])
        guard let hostPath = try reader.path("hostPath"), let containerPath = try reader.path("containerPath") else {
            throw reader.failure("a mount needs hostPath and containerPath")
        }
        let options = try reader.strings("options") ?? []
        if let unknown = options.first(where: { !knownOptions.contains($0) }) {
            throw reader.failure("mount \(containerPath): option \(quoted(unknown)) is not supported (\(knownOptions.sorted().joined(separator: ", ")))")
        }
        let type = try reader.string("type")
        if let type, type != "bind", type != "none" {
            throw reader.failure("mount \(containerPath): type \(quoted(type)) is not supported: Shifter binds host paths only")
        }
        return CDIMount(hostPath: hostPath, containerPath: containerPath, options: options, type: type)
    }
}

/// A program the runtime runs at a point of the container's life (`hookName`).
public struct CDIHook: Sendable, Equatable {
    public var hookName: String
    public var path: String
    public var arguments: [String] = []
    public var environment: [String] = []
    public var timeout: Int?

    public static let hookNames = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]

    /// When a job's hook runs. A job's container is created by the prolog and lives until the
    /// epilog, whatever steps enter it: `create` while the root is built (OCI state `creating`),
    /// `start` once it is complete, before any task can enter it (`running`), `stop` in the
    /// epilog, after every process of the job has ended and before the root is removed (`stopped`).
    public enum Stage: String, Sendable, Equatable { case create, start, stop }

    public var stage: Stage {
        switch hookName {
        case "startContainer", "poststart": .start
        case "poststop": .stop
        default: .create
        }
    }

    /// Whether a failure only warns, as OCI says of `poststart` and `poststop`: the job has its
    /// container (or has finished with it) by then.
    public var failureOnlyWarns: Bool { hookName == "poststart" || hookName == "poststop" }

    /// The OCI state's `status` while a hook of this stage runs.
    public var ociStatus: String {
        switch stage {
        case .create: "creating"
        case .start: "running"
        case .stop: "stopped"
        }
    }

    /// The hook in its spec's form, as a job's record keeps its stop hooks for the epilog.
    public var jsonValue: JSONValue {
        var members: [String: JSONValue] = ["hookName": .string(hookName), "path": .string(path),
                                            "args": .strings(arguments), "env": .strings(environment)]
        if let timeout { members["timeout"] = .number(String(timeout)) }
        return .object(members)
    }

    /// A hook in its spec's form; `source` names where it was read in messages.
    public static func decode(_ value: JSONValue, source: String) throws(CDIError) -> CDIHook {
        try decode(CDIReader(value, source: source, path: "hook"))
    }

    static func decode(_ reader: CDIReader) throws(CDIError) -> CDIHook {
        try reader.allowOnly(["hookName", "path", "args", "env", "timeout"])
        guard let hookName = try reader.string("hookName"), let path = try reader.path("path") else {
            throw reader.failure("a hook needs hookName and path")
        }
        guard hookNames.contains(hookName) else {
            throw reader.failure("hook \(path): hookName \(quoted(hookName)) is not one of \(hookNames.joined(separator: ", "))")
        }
        let timeout = try reader.integer("timeout").map(Int.init)
        if let timeout, timeout <= 0 { throw reader.failure("hook \(path): timeout must be more than 0 seconds") }
        return CDIHook(hookName: hookName, path: path, arguments: try reader.strings("args") ?? [],
                       environment: try reader.strings("env") ?? [], timeout: timeout)
    }
}

/// Reads one object of a spec, with messages that name the file and where in it.
struct CDIReader {
    let record: JSONRecord
    let source: String
    let path: String

    init(_ value: JSONValue, source: String, path: String) throws(CDIError) {
        do {
            record = try JSONRecord(value)
        } catch {
            throw CDIError("CDI spec \(source): \(path.isEmpty ? "the top level" : path) should be a mapping")
        }
        self.source = source
        self.path = path
    }

    func failure(_ reason: String) -> CDIError { CDIError("CDI spec \(source): \(reason)") }

    func has(_ key: String) -> Bool { record.member(key) != nil }

    func allowOnly(_ keys: Set<String>) throws(CDIError) {
        if let unknown = record.members.keys.sorted().first(where: { !keys.contains($0) }) {
            throw failure("unknown field \(quoted(unknown))\(path.isEmpty ? "" : " in \(path)")")
        }
    }

    private func where_(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    /// One of `JSONRecord`'s readers, its message placed in the spec.
    private func read<T>(_ body: (JSONRecord) throws(JSONError) -> T) throws(CDIError) -> T {
        do { return try body(record) } catch { throw failure((path.isEmpty ? "" : path + ": ") + error.reason) }
    }

    /// A string; a number stands for its text (a YAML `name: 0`).
    func string(_ key: String) throws(CDIError) -> String? {
        if case .number(let text)? = record.member(key) { return text }
        return try read { (record) throws(JSONError) in try record.string(key) }
    }

    func path(_ key: String) throws(CDIError) -> String? {
        guard let text = try string(key) else { return nil }
        guard text.hasPrefix("/"), !text.split(separator: "/").contains(".."), !text.utf8.contains(0) else {
            throw failure("\(where_(key)) \(quoted(text)) should be an absolute path without \"..\"")
        }
        return text
    }

    func integer(_ key: String) throws(CDIError) -> Int64? {
        guard let value = record.member(key) else { return nil }
        guard case .number(let text) = value, let number = Int64(text) else { throw failure("\(where_(key)) should be a whole number") }
        return number
    }

    func uint32(_ key: String) throws(CDIError) -> UInt32? { try read { (record) throws(JSONError) in try record.uint32(key) } }
    func uint32s(_ key: String) throws(CDIError) -> [UInt32]? { try read { (record) throws(JSONError) in try record.uint32s(key) } }
    func stringMap(_ key: String) throws(CDIError) -> [String: String]? { try read { (record) throws(JSONError) in try record.stringMap(key) } }

    /// A list of strings; numbers stand for their text.
    func strings(_ key: String) throws(CDIError) -> [String]? {
        guard case .array(let items)? = record.member(key) else { return try read { (record) throws(JSONError) in try record.strings(key) } }
        return try items.map { (item) throws(CDIError) -> String in
            switch item {
            case .string(let text), .number(let text): return text
            default: throw failure("\(where_(key)) should be a list of strings")
            }
        }
    }

    func record(_ key: String) throws(CDIError) -> CDIReader? {
        guard let value = record.member(key) else { return nil }
        return try CDIReader(value, source: source, path: where_(key))
    }

    func records(_ key: String) throws(CDIError) -> [CDIReader]? {
        guard let value = record.member(key) else { return nil }
        guard case .array(let items) = value else { throw failure("\(where_(key)) should be a list") }
        return try items.enumerated().map { (index, item) throws(CDIError) in
            try CDIReader(item, source: source, path: "\(where_(key))[\(index)]")
        }
    }
}
