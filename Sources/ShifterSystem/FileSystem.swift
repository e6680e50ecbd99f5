#if canImport(Glibc)
import Glibc
#endif
import CShifterSys

/// What `lstat(2)` says about a path, reduced to what the runtime decides on.
public struct FileStatus: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case regular, directory, symlink, other }
    public var kind: Kind
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    /// The last modification, in seconds since the epoch.
    public var modificationTime: Int64
    /// For a device node or FIFO (`kind` `.other`): `c`, `b` or `p`, as CDI names them.
    public var nodeType: String?
    /// For a device node: the device it stands for (`st_rdev`).
    public var deviceNumber: UInt64 = 0

    /// The major and minor numbers of `deviceNumber`, as glibc's `major(3)` and `minor(3)` split it.
    public var deviceMajor: UInt32 { UInt32(truncatingIfNeeded: ((deviceNumber >> 8) & 0xfff) | ((deviceNumber >> 32) & ~0xfff)) }
    public var deviceMinor: UInt32 { UInt32(truncatingIfNeeded: (deviceNumber & 0xff) | ((deviceNumber >> 12) & ~0xff)) }
}

/// Thin wrappers over the file calls the runtime needs. Paths are plain strings at this layer.
public enum FileSystem {
    /// Status of a path without following a final symlink. The corresponding C function is `lstat(2)`.
    public static func linkStatus(_ path: String) throws(SystemError) -> FileStatus {
        var info = stat()
        try check("stat", path) { lstat(path, &info) }
        return FileStatus(info)
    }

    /// Status of a path following symlinks. The corresponding C function is `stat(2)`.
    public static func status(_ path: String) throws(SystemError) -> FileStatus {
        var info = stat()
        try check("stat", path) { stat(path, &info) }
        return FileStatus(info)
    }

    /// The id of the mount an open file was reached through: an overlay's regular files report
    /// the device of the filesystem below it, but the overlay's mount. `statx(2)` with
    /// `STATX_MNT_ID`.
    public static func mountID(descriptor: Int32, path: String) throws(SystemError) -> UInt64 {
        var id: UInt64 = 0
        let result = cshifter_mount_id(descriptor, &id)
        if result < 0 { throw SystemError("statx", path, errno: -result) }
        return id
    }

    /// Status of an open file. The corresponding C function is `fstat(2)`.
    public static func status(descriptor: Int32, path: String) throws(SystemError) -> FileStatus {
        var info = stat()
        try check("stat", path) { fstat(descriptor, &info) }
        return FileStatus(info)
    }

    /// True when something exists at the path (a dangling symlink counts).
    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// Creates one directory; an existing directory is not an error. `mkdir(2)`.
    public static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        let (result, error) = retryingInterrupts { mkdir(path, mode) }
        if result == 0 { return }
        if error == EEXIST, (try? linkStatus(path))?.kind == .directory { return }
        throw SystemError("create directory", path, errno: error)
    }

    /// Creates a directory and its missing parents, like `mkdir -p`.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        var prefix = ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            try makeDirectory(prefix, mode: mode)
        }
    }

    /// Removes an empty directory; a missing one is not an error. `rmdir(2)`.
    public static func removeDirectory(_ path: String) throws(SystemError) {
        let (result, error) = retryingInterrupts { rmdir(path) }
        if result == 0 || error == ENOENT { return }
        throw SystemError("remove directory", path, errno: error)
    }

    /// Removes a file or symlink; a missing one is not an error. `unlink(2)`.
    public static func removeFile(_ path: String) throws(SystemError) {
        let (result, error) = retryingInterrupts { unlink(path) }
        if result == 0 || error == ENOENT { return }
        throw SystemError("remove", path, errno: error)
    }

    /// Removes a directory tree that holds no mount points, without following symlinks.
    public static func removeTree(_ path: String) throws(SystemError) {
        guard let status = try? linkStatus(path) else { return }
        if status.kind != .directory {
            try removeFile(path)
            return
        }
        for name in try directoryEntries(path) {
            try removeTree(path + "/" + name)
        }
        try removeDirectory(path)
    }

    /// The names in a directory, without "." and "..". `opendir(3)`/`readdir(3)`.
    public static func directoryEntries(_ path: String) throws(SystemError) -> [String] {
        guard let dir = opendir(path) else { throw SystemError("read directory", path, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Reads a whole file, refusing files larger than `limit` bytes.
    public static func readFile(_ path: String, limit: Int = 16 << 20) throws(SystemError) -> [UInt8] {
        try readFileWithStatus(path, limit: limit).bytes
    }

    /// Reads a whole file and returns what `fstat(2)` says of the very file read, so a check of its
    /// owner and mode applies to these bytes.
    public static func readFileWithStatus(_ path: String, limit: Int = 16 << 20) throws(SystemError) -> (bytes: [UInt8], status: FileStatus) {
        let fd = try check("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        let status = try FileSystem.status(descriptor: fd, path: path)
        var bytes: [UInt8] = []
        // Not zeroed: a file of a few KiB (what shifter reads on every start) touches one page of
        // it, where zeroing all of it would fault in and clear 64 KiB for nothing.
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            let count = retryingInterrupts { Int32(truncatingIfNeeded: read(fd, chunk.baseAddress, chunk.count)) }
            if count.result < 0 { throw SystemError("read", path, errno: count.errno) }
            if count.result == 0 { return (bytes, status) }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<Int(count.result)]))
            if bytes.count > limit { throw SystemError("read", path, errno: EFBIG) }
        }
    }

    /// Writes a file (created or truncated) with the given mode and owner, not following a final
    /// symlink, so a planted link cannot redirect a root-owned write.
    public static func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644,
                                 owner: (uid: uid_t, gid: gid_t)? = nil) throws(SystemError) {
        let fd = try check("create", path) { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                retryingInterrupts {
                    Int32(truncatingIfNeeded: write(fd, buffer.baseAddress.map { $0 + offset }, buffer.count - offset))
                }
            }
            if written.result < 0 { throw SystemError("write", path, errno: written.errno) }
            offset += Int(written.result)
        }
        try check("set mode of", path) { fchmod(fd, mode) }
        if let owner { try check("set owner of", path) { fchown(fd, owner.uid, owner.gid) } }
    }

    /// Replaces `path` with `bytes` at once: readers see the old file or the new one, never a part.
    /// The bytes go to `path.tmp` first (not following a planted link), which is then renamed over
    /// `path`. The corresponding C function is `rename(2)`.
    public static func replaceFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(SystemError) {
        let temporary = path + ".tmp"
        do {
            try writeFile(temporary, bytes, mode: mode)
            try check("rename", temporary) { rename(temporary, path) }
        } catch {
            _ = unlink(temporary)
            throw error
        }
    }

    /// Opens the directory `path` (never through a symlink) and takes an exclusive `flock` on it,
    /// waiting for it; returns the descriptor, which holds the lock until it is closed.
    public static func lockDirectoryExclusively(_ path: String) throws(SystemError) -> Int32 {
        try lockExclusively(try check("open", path) { open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }, path)
    }

    /// Opens (creating it, mode 0600) the lock file at `path` and waits for an exclusive lock on
    /// it; the lock lasts until the descriptor returned is closed. The corresponding C function is
    /// `flock(2)`.
    public static func lockExclusively(_ path: String) throws(SystemError) -> Int32 {
        try lockExclusively(try check("open", path) { open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600) }, path)
    }

    /// Waits for an exclusive `flock` on `fd`, opened from `path`; returns `fd`, or closes it and
    /// throws.
    private static func lockExclusively(_ fd: Int32, _ path: String) throws(SystemError) -> Int32 {
        do {
            try check("lock", path) { flock(fd, LOCK_EX) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// The device of the file `path` names, `MAJOR:MINOR`, from what the kernel holds of it: a
    /// filesystem a user runs (FUSE) is not asked. nil where it cannot be had.
    public static func cachedDevice(_ path: String) -> String? {
        var major: UInt32 = 0, minor: UInt32 = 0
        guard cshifter_cached_device(path, &major, &minor) == 0 else { return nil }
        return "\(major):\(minor)"
    }

    /// Gives `path` (not following a final symlink) to `uid` and `gid`. `lchown(2)`.
    public static func setOwner(_ path: String, uid: UInt32, gid: UInt32) throws(SystemError) {
        try check("set owner of", path) { lchown(path, uid, gid) }
    }

    /// Sets the permission bits of a path. `chmod(2)`.
    public static func setMode(_ path: String, _ mode: mode_t) throws(SystemError) {
        try check("set mode of", path) { chmod(path, mode) }
    }

    /// Creates a symlink. `symlink(2)`.
    public static func makeSymlink(_ path: String, pointingTo target: String) throws(SystemError) {
        try check("create symlink", path) { symlink(target, path) }
    }

}

extension FileStatus {
    init(_ info: stat) {
        switch info.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        mode = UInt32(info.st_mode & 0o7777)
        uid = info.st_uid
        gid = info.st_gid
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modificationTime = Int64(info.st_mtim.tv_sec)
        deviceNumber = UInt64(info.st_rdev)
        switch info.st_mode & S_IFMT {
        case S_IFCHR: nodeType = "c"
        case S_IFBLK: nodeType = "b"
        case S_IFIFO: nodeType = "p"
        default: nodeType = nil
        }
    }
}

extension FileSystem {
    /// Creates a new file with a random name in `directory` (never reusing an existing one),
    /// sized sparsely to `size` bytes, mode 0600; returns its path and an open read-write
    /// descriptor the caller closes. `open(2)` with `O_EXCL`, `ftruncate(2)`.
    public static func createUniqueFile(in directory: String, prefix: String, suffix: String,
                                        size: Int64) throws(SystemError) -> (path: String, descriptor: Int32) {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<16 {
            let token = String(generator.next() as UInt64, radix: 16)
            let path = "\(directory)/\(prefix)\(token)\(suffix)"
            let (fd, error) = retryingInterrupts { open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
            if fd < 0 {
                if error == EEXIST { continue }
                throw SystemError("create", path, errno: error)
            }
            let (result, truncateError) = retryingInterrupts { ftruncate(fd, off_t(size)) }
            if result != 0 {
                close(fd)
                unlink(path)
                throw SystemError("size", path, errno: truncateError)
            }
            return (path, fd)
        }
        throw SystemError("create a unique file in", directory, errno: EEXIST)
    }
}
