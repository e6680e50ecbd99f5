#if canImport(Glibc)
import Glibc
#endif
import CShifterSys

/// A path inside a container root, opened as an `O_PATH` descriptor with every symlink resolved
/// within the root. Mounting on `/proc/self/fd/N` of such a descriptor acts on exactly the inode
/// that was checked, so a symlink swapped in afterwards (by a user who owns a directory on the way)
/// cannot redirect a root-run mount or write to the host.
public struct ContainedPath: ~Copyable {
    /// The descriptor; closed with the value.
    public let descriptor: Int32
    /// The path inside the container, as asked for.
    public let path: String

    /// The magic link that names the opened inode, for `mount(2)`.
    public var procPath: String { "/proc/self/fd/\(descriptor)" }

    /// Opens `path` under the root directory `root`. `followFinal` follows a final symlink (within
    /// the root); without it a final symlink is opened as the link itself. `noSymlinks` refuses
    /// any symlink on the way (ELOOP).
    public init(root: String, path: String, followFinal: Bool = true, noSymlinks: Bool = false) throws(SystemError) {
        let rootFD = try check("open container root", root) { open(root, cshifter_path_directory_flags()) }
        defer { close(rootFD) }
        self.descriptor = try checkShim("resolve \(path) in", root,
                                        cshifter_open_in_root(rootFD, path, followFinal ? 1 : 0, noSymlinks ? 1 : 0))
        self.path = path
    }

    /// Opens a host path (symlinks followed as usual), for the source of a site bind mount.
    public init(hostPath: String) throws(SystemError) {
        self.descriptor = try check("open", hostPath) { open(hostPath, cshifter_path_flags()) }
        self.path = hostPath
    }

    /// Takes over `descriptor`, which another process opened for `path` (`UserAccess.openDirectory`).
    init(adopting descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    /// Opens `path` under `root`, creating missing directories on the way (mode 0755, owned by the
    /// caller), as a volume target that does not exist yet needs. With `strict`, as for targets a
    /// user names, no symlink may be on the way and directories are created only on the filesystem
    /// of the root itself (the container's writable layer), never inside a bind-mounted site or
    /// host filesystem.
    public static func makingDirectories(root: String, path: String, strict: Bool = false) throws(SystemError) -> ContainedPath {
        if let existing = try? ContainedPath(root: root, path: path, noSymlinks: strict) { return existing }
        let rootDevice = strict ? try ContainedPath(root: root, path: "/").status().device : 0
        var prefix = ""
        for component in path.split(separator: "/") {
            let parent = prefix.isEmpty ? "/" : prefix
            prefix += "/" + component
            if (try? ContainedPath(root: root, path: prefix, noSymlinks: strict)) != nil { continue }
            let parentPath = try ContainedPath(root: root, path: parent, noSymlinks: strict)
            if strict, try parentPath.status().device != rootDevice {
                throw SystemError("create directory \(prefix) (its parent is a mounted filesystem, not the container's own) in", root, errno: EXDEV)
            }
            let name = String(component)
            let (result, error) = retryingInterrupts { mkdirat(parentPath.descriptor, name, 0o755) }
            if result != 0 && error != EEXIST { throw SystemError("create directory \(prefix) in", root, errno: error) }
        }
        return try ContainedPath(root: root, path: path, noSymlinks: strict)
    }

    /// Opens a file for a bind-mount target, creating an empty one when missing; `strict` as for
    /// `makingDirectories` (no symlink on the way, the file's own included).
    public static func makingFile(root: String, path: String, strict: Bool = false) throws(SystemError) -> ContainedPath {
        if let existing = try? ContainedPath(root: root, path: path, noSymlinks: strict) { return existing }
        guard path.hasPrefix("/"), path.count > 1, let slash = path.lastIndex(of: "/") else {
            throw SystemError("create file", path, errno: EINVAL)
        }
        let parentPath = String(path[..<slash])
        let name = String(path[path.index(after: slash)...])
        let parent = try makingDirectories(root: root, path: parentPath.isEmpty ? "/" : parentPath, strict: strict)
        if strict, try parent.status().device != ContainedPath(root: root, path: "/").status().device {
            throw SystemError("create file \(path) (its directory is a mounted filesystem, not the container's own) in", root, errno: EXDEV)
        }
        let fd = try check("create file \(path) in", root) {
            openat(parent.descriptor, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        }
        close(fd)
        return try ContainedPath(root: root, path: path, noSymlinks: strict)
    }

    /// What the descriptor refers to.
    public func status() throws(SystemError) -> FileStatus {
        try FileSystem.status(descriptor: descriptor, path: path)
    }

    /// The mount it was reached through.
    public func mountID() throws(SystemError) -> UInt64 {
        try FileSystem.mountID(descriptor: descriptor, path: path)
    }

    /// Reads a regular file at `path` inside the root, symlinks resolved within the root, so an
    /// image's link to a host file cannot make root read that host file.
    public static func readFile(root: String, path: String, limit: Int) throws(SystemError) -> [UInt8] {
        let file = try ContainedPath(root: root, path: path)
        guard try file.status().kind == .regular else { throw SystemError("read", path, errno: EINVAL) }
        return try FileSystem.readFile(file.procPath, limit: limit)
    }

    /// `path` (absolute, not `/`) as the directory that holds it and the last name in it.
    private static func parentAndName(_ path: String, operation: String) throws(SystemError) -> (parent: String, name: String) {
        guard path.hasPrefix("/"), path.count > 1, let slash = path.lastIndex(of: "/") else {
            throw SystemError(operation, path, errno: EINVAL)
        }
        let parent = String(path[..<slash])
        return (parent.isEmpty ? "/" : parent, String(path[path.index(after: slash)...]))
    }

    /// Writes a file at `path` inside the root, never following a symlink out of it.
    public static func writeFile(root: String, path: String, _ bytes: [UInt8], mode: mode_t = 0o644,
                                 owner: (uid: uid_t, gid: gid_t)? = nil) throws(SystemError) {
        let (parentPath, name) = try parentAndName(path, operation: "write")
        let parent = try makingDirectories(root: root, path: parentPath)
        // A symlink or other non-file at the name is replaced, not followed.
        if let existing = try? ContainedPath(root: root, path: path, followFinal: false),
           let kind = try? existing.status().kind, kind != .regular {
            _ = unlinkat(parent.descriptor, name, kind == .directory ? AT_REMOVEDIR : 0)
        }
        try FileSystem.writeFile(parent.procPath + "/" + name, bytes, mode: mode, owner: owner)
    }

    /// Makes a symlink at `path` inside the root pointing to `target` (which is not followed
    /// here), its directories made as needed, never through a symlink out of the root. An existing
    /// symlink is replaced; false, and nothing changed, when something else is at `path`.
    public static func makeSymlink(root: String, path: String, target: String) throws(SystemError) -> Bool {
        let (parentPath, name) = try parentAndName(path, operation: "make the link")
        let parent = try makingDirectories(root: root, path: parentPath)
        var info = stat()
        if fstatat(parent.descriptor, name, &info, AT_SYMLINK_NOFOLLOW) == 0 {
            guard info.st_mode & S_IFMT == S_IFLNK else { return false }
            try check("replace the link", path) { unlinkat(parent.descriptor, name, 0) }
        }
        try check("make the link", path) { symlinkat(target, parent.descriptor, name) }
        return true
    }

    deinit { close(descriptor) }
}
