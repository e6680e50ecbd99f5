#if canImport(Glibc)
import Glibc
#endif
import CShifterSys

/// Flags of `mount(2)`.
public struct MountFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }

    public static let readOnly = MountFlags(rawValue: UInt(MS_RDONLY))
    public static let noSetuid = MountFlags(rawValue: UInt(MS_NOSUID))
    public static let noDevices = MountFlags(rawValue: UInt(MS_NODEV))
    public static let noExec = MountFlags(rawValue: UInt(MS_NOEXEC))
    public static let remount = MountFlags(rawValue: UInt(MS_REMOUNT))
    public static let bind = MountFlags(rawValue: UInt(MS_BIND))
    public static let recursive = MountFlags(rawValue: UInt(MS_REC))
    public static let privatePropagation = MountFlags(rawValue: UInt(MS_PRIVATE))
    public static let slavePropagation = MountFlags(rawValue: UInt(MS_SLAVE))
    /// Private, and never copied by a bind: a recursive bind of a directory above it leaves it
    /// (and everything below it) out.
    public static let unbindablePropagation = MountFlags(rawValue: UInt(MS_UNBINDABLE))
}

/// Thin wrappers over mounting and namespaces.
public enum Mounts {
    /// Mounts a filesystem. The corresponding C function is `mount(2)`.
    public static func mount(source: String, target: String, type: String?, flags: MountFlags,
                             data: String? = nil) throws(SystemError) {
        try check("mount \(type ?? "bind") \(source) on", target) {
            Glibc.mount(source, target, type, flags.rawValue, data)
        }
    }

    /// Sets the propagation of the mount at `target` (and below it with `recursive`).
    public static func setPropagation(_ target: String, _ propagation: MountFlags,
                                      recursive: Bool = true) throws(SystemError) {
        try mount(source: "none", target: target, type: nil,
                  flags: recursive ? propagation.union(.recursive) : propagation)
    }

    /// Whether `path` is the root of a mount: it is reached through another mount than its
    /// parent directory (`statx(2)` mount ids), however long the mount table. A file (a bind
    /// mount onto one) is compared with the directory its path names. False for a path that
    /// cannot be opened.
    public static func isMountPoint(_ path: String) -> Bool {
        guard let own = try? ContainedPath(hostPath: path).mountID() else { return false }
        let parent: UInt64
        if let above = try? ContainedPath(hostPath: path + "/..").mountID() {
            parent = above
        } else if let slash = path.lastIndex(of: "/"), slash != path.startIndex,
                  let directory = try? ContainedPath(hostPath: String(path[..<slash])).mountID() {
            parent = directory
        } else {
            return false
        }
        return own != parent
    }

    /// Makes the directory `path` a mount that no bind copies (`MS_UNBINDABLE`), binding it onto
    /// itself where it is not a mount point yet, under an exclusive lock on the directory, so
    /// that concurrent callers never stack two binds. Returns false, changing nothing, where a
    /// path that is not a mount point has mounts below it: a bind would hide them.
    /// `flock(2)`, `mount(2)`.
    public static func makeUnbindableMountPoint(_ path: String) throws(SystemError) -> Bool {
        let directory = try check("open", path) { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { close(directory) }
        try check("lock", path) { flock(directory, LOCK_EX) }
        if !isMountPoint(path) {
            guard !MountTable.mountPoints(under: path, in: try MountTable.current()).contains(where: { $0 != path }) else {
                return false
            }
            try mount(source: path, target: path, type: nil, flags: [.bind])
        }
        try setPropagation(path, .unbindablePropagation, recursive: false)
        return true
    }

    /// Unmounts `target`; `detach` makes it lazy (`MNT_DETACH`). A path that is not a mount point
    /// is not an error. The corresponding C function is `umount2(2)`.
    /// `noFollow` refuses a final symlink (`UMOUNT_NOFOLLOW`).
    public static func unmount(_ target: String, detach: Bool = false, noFollow: Bool = false) throws(SystemError) {
        let flags = (detach ? Int32(MNT_DETACH) : 0) | (noFollow ? Int32(UMOUNT_NOFOLLOW) : 0)
        let (result, error) = retryingInterrupts { umount2(target, flags) }
        if result == 0 || error == EINVAL || error == ENOENT { return }
        throw SystemError("unmount", target, errno: error)
    }

    /// Moves the calling process into a new mount namespace. `unshare(2)` with `CLONE_NEWNS`.
    public static func unshareMountNamespace() throws(SystemError) {
        try checkShim("create mount namespace for", "shifter", cshifter_unshare_mount_namespace())
    }
}

/// One line of `/proc/self/mountinfo`.
public struct MountEntry: Sendable, Equatable {
    public var mountPoint: String
    public var filesystemType: String
    public var source: String
    public var options: String
    /// The filesystem's device, `MAJOR:MINOR` in decimal, as `st_dev` of its files.
    public var device: String = ""
}

/// The calling process's mount table.
public enum MountTable {
    /// Parses `/proc/self/mountinfo` text; unparseable lines are skipped.
    public static func parse(_ text: String) -> [MountEntry] {
        text.split(separator: "\n").compactMap { line in
            // Fields are separated by single spaces (the kernel escapes those within a field); a
            // field "-" ends the optional fields, and the filesystem's fields follow it.
            let fields = line.split(separator: " ")
            guard let dash = fields.firstIndex(of: "-") else { return nil }
            let left = fields[..<dash], right = fields[(dash + 1)...]
            guard left.count >= 6, right.count >= 2 else { return nil }
            return MountEntry(mountPoint: unescape(left[4]), filesystemType: String(right[dash + 1]),
                              source: unescape(right[dash + 2]), options: String(left[5]), device: String(left[2]))
        }
    }

    /// The current mounts, in mount order. A namespace may hold up to `fs.mount-max` (100,000)
    /// mounts, a few hundred bytes each: the table is read whole up to 256 MiB.
    public static func current() throws(SystemError) -> [MountEntry] {
        parse(String(decoding: try FileSystem.readFile("/proc/self/mountinfo", limit: 256 << 20), as: UTF8.self))
    }

    /// Mount points at or below `prefix`, deepest (latest) first: the order to unmount them in.
    public static func mountPoints(under prefix: String, in entries: [MountEntry]) -> [String] {
        let points = entries.map(\.mountPoint).filter { $0 == prefix || $0.hasPrefix(prefix + "/") }
        return points.reversed()
    }

    /// The kernel writes space, tab, newline and backslash in mountinfo as octal escapes.
    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let raw = Array(field.utf8)
        var index = 0
        while index < raw.count {
            if raw[index] == UInt8(ascii: "\\"), index + 4 <= raw.count,
               let value = UInt8(String(decoding: raw[(index + 1)..<(index + 4)], as: UTF8.self), radix: 8) {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(raw[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Attributes of a mount made with `Mounts.bind(from:onto:...)` or `Mounts.mountNewFilesystem`.
public struct BindAttributes: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let readOnly = BindAttributes(rawValue: Int32(CSHIFTER_BIND_RDONLY))
    public static let noSetuid = BindAttributes(rawValue: Int32(CSHIFTER_BIND_NOSUID))
    public static let noDevices = BindAttributes(rawValue: Int32(CSHIFTER_BIND_NODEV))
    public static let noExec = BindAttributes(rawValue: Int32(CSHIFTER_BIND_NOEXEC))
}

/// Propagation of a new bind mount.
public enum BindPropagation: Sendable {
    case unchanged, `private`, slave
    var raw: Int32 {
        switch self {
        case .unchanged: Int32(CSHIFTER_PROPAGATION_UNCHANGED)
        case .private: Int32(CSHIFTER_PROPAGATION_PRIVATE)
        case .slave: Int32(CSHIFTER_PROPAGATION_SLAVE)
        }
    }
}

extension Mounts {
    /// Bind-mounts the tree at `source` onto `target`, both opened descriptors, with the
    /// attributes applied before the mount becomes visible. See `cshifter_bind_into`.
    public static func bind(from source: borrowing ContainedPath, onto target: borrowing ContainedPath,
                            recursive: Bool, attributes: BindAttributes,
                            propagation: BindPropagation = .unchanged) throws(SystemError) {
        try checkShim("bind \(source.path) on", target.path,
                      cshifter_bind_into(source.descriptor, target.descriptor, recursive ? 1 : 0,
                                         attributes.rawValue, propagation.raw))
    }

    /// Mounts a device node of its own onto `target`: type and permission bits `mode` (`S_IFCHR`
    /// or `S_IFBLK` with the permissions), device `major`:`minor`, owned by `uid`:`gid`, on a
    /// tmpfs of its own that nothing else shows, so no file of the node's `/dev` changes.
    public static func bindNewDeviceNode(onto target: borrowing ContainedPath, mode: UInt32, major: UInt32, minor: UInt32,
                                         uid: UInt32, gid: UInt32) throws(SystemError) {
        try checkShim("mount a device node of its own on", target.path,
                      cshifter_bind_new_device_node(target.descriptor, mode, major, minor, uid, gid))
    }

    /// Makes the mount whose root `target` is read-only, leaving the mounts below it and its other
    /// flags (nosuid, nodev) as they are. The corresponding C function is `mount_setattr(2)`.
    public static func makeReadOnly(_ target: borrowing ContainedPath) throws(SystemError) {
        try checkShim("make read-only the mount at", target.path, cshifter_make_mount_read_only(target.descriptor))
    }

    /// Mounts a new filesystem of `type` from `device` (a block device, or a name for a tmpfs)
    /// onto `target`, with the filesystem's `options` (such as a tmpfs's `size`), with
    /// `attributes`, its root directory owned by `uid`:`gid` with mode 0755 before the mount is
    /// attached, so no one sees it otherwise. The corresponding C functions are `fsopen(2)`,
    /// `fsconfig(2)`, `fsmount(2)` and `move_mount(2)`.
    public static func mountNewFilesystem(type: String, device: String, options: [(String, String)] = [],
                                          onto target: borrowing ContainedPath, attributes: BindAttributes,
                                          uid: UInt32, gid: UInt32) throws(SystemError) {
        let strings = options.flatMap { [strdup($0.0), strdup($0.1)] } + [nil]
        defer { strings.forEach { free($0) } }
        let descriptor = target.descriptor
        let result = strings.map { UnsafePointer($0) }.withUnsafeBufferPointer { list in
            cshifter_mount_new_filesystem(type, device, list.baseAddress, descriptor, attributes.rawValue, uid, gid)
        }
        try checkShim("mount \(type) \(device) on", target.path, result)
    }
}
