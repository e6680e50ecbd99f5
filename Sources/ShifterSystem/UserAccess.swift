#if canImport(Glibc)
import Glibc
#endif
import CShifterSys

/// What a user may open, decided by the kernel with the user's own credentials.
public enum UserAccess {
    /// How long the check may take before the checking process is killed: a path on a filesystem
    /// that never answers (a user's FUSE mount) must not hold a prolog or a job step.
    public static let timeLimit: Duration = .seconds(30)

    /// Opens the directory `path`, as seen from `root`, in a child process that has taken the
    /// user's ids (`groups`, all of them, and `gid` as its own), and returns what it opened: the
    /// very mount and directory the user reached, so a bind of it shows what the user may see even
    /// if the path is changed afterwards (a symlink swapped to a root-only place with the same
    /// directory under other mounts). A failure is the user's own (`open PATH: Permission
    /// denied`): it tells the user nothing they could not learn with their own rights. The child
    /// is `cshifter_open_in_root_as_user`.
    public static func openDirectory(_ path: String, root: String, uid: UInt32, gid: UInt32, groups: [UInt32],
                                     timeLimit: Duration = timeLimit) throws(SystemError) -> ContainedPath {
        try open(path, root: root, how: Int32(CSHIFTER_OPEN_DIRECTORY), uid: uid, gid: gid, groups: groups, timeLimit: timeLimit)
    }

    /// `openDirectory`, for a directory or any other file the user may read: a volume's source.
    /// The caller looks at what it got (a FIFO or a device is opened without waiting or becoming
    /// a terminal, with the user's own rights, and is the caller's to refuse).
    public static func openFileOrDirectory(_ path: String, root: String, uid: UInt32, gid: UInt32, groups: [UInt32],
                                           timeLimit: Duration = timeLimit) throws(SystemError) -> ContainedPath {
        try open(path, root: root, how: Int32(CSHIFTER_OPEN_ANY), uid: uid, gid: gid, groups: groups, timeLimit: timeLimit)
    }

    /// `openDirectory`, for a directory the user may reach (search permission on the way), read
    /// or not: where a volume's target lies.
    public static func reachDirectory(_ path: String, root: String, uid: UInt32, gid: UInt32, groups: [UInt32],
                                      timeLimit: Duration = timeLimit) throws(SystemError) -> ContainedPath {
        try open(path, root: root, how: Int32(CSHIFTER_OPEN_REACH), uid: uid, gid: gid, groups: groups, timeLimit: timeLimit)
    }

    private static func open(_ path: String, root: String, how: Int32, uid: UInt32, gid: UInt32, groups: [UInt32],
                             timeLimit: Duration) throws(SystemError) -> ContainedPath {
        // Already the user, without privileges (srun, sbatch and salloc check a request with the
        // submitting user's rights): the child opens with them as they are, since no child could
        // change its root or ids, within the same time limit (a filesystem that never answers
        // would otherwise hold the submission for ever).
        if geteuid() != 0 {
            guard root == "/", uid == geteuid() else { throw SystemError("open", path, errno: EPERM) }
        }
        let list = groups.map { gid_t($0) }
        let parts = timeLimit.components
        let milliseconds = Int32(clamping: parts.seconds * 1000 + parts.attoseconds / 1_000_000_000_000_000)
        var fd: Int32 = -1
        let result = list.withUnsafeBufferPointer { buffer in
            cshifter_open_in_root_as_user(uid, gid, buffer.count, buffer.baseAddress, root, path, how, milliseconds, &fd)
        }
        if result < 0 { throw SystemError("open", path, errno: -result) }
        return ContainedPath(adopting: fd, path: path)
    }

    /// Opens `path` read-only with a user's rights (`groups`, all of them, `gid` and `uid`) from a
    /// multi-threaded process that must keep its own ids, and returns the descriptor
    /// (close-on-exec). A child process takes the user's ids, opens the file (symlinks followed,
    /// `O_NONBLOCK` so a FIFO cannot hold it) and passes the descriptor back, so the kernel applies
    /// every rule to every component. A file on a FUSE filesystem is refused. The child is
    /// `cshifter_open_as_user`.
    public static func openFile(_ path: String, uid: UInt32, gid: UInt32, groups: [UInt32],
                                timeLimit: Duration = timeLimit) throws(UserOpenError) -> Int32 {
        let parts = timeLimit.components
        let milliseconds = Int32(clamping: parts.seconds * 1000 + parts.attoseconds / 1_000_000_000_000_000)
        var descriptor: Int32 = -1
        var cause: Int32 = 0
        let result = groups.map { gid_t($0) }.withUnsafeBufferPointer { buffer in
            cshifter_open_as_user(uid, gid, buffer.count, buffer.baseAddress, path, milliseconds, &descriptor, &cause)
        }
        if result == 0 { return descriptor }
        let error = SystemError("open", path, errno: -result)
        switch Int(cause) {
        case Int(CSHIFTER_OPEN_FAILED_USER): throw UserOpenError(.user, error)
        case Int(CSHIFTER_OPEN_FAILED_FUSE): throw UserOpenError(.onFUSE, error)
        default: throw UserOpenError(.takingRights, error)
        }
    }
}

/// Why `UserAccess.openFile` failed, and the errno it failed with.
public struct UserOpenError: Error, CustomStringConvertible, Sendable {
    /// Whose the failure is.
    public enum Cause: Sendable, Equatable {
        /// The user's own `open(2)` or `fstatfs(2)` failed: it tells the user nothing they could
        /// not learn with their own rights.
        case user
        /// The file is on a FUSE filesystem (`EXDEV`), whose daemon, which a user may run, could
        /// hold every later read.
        case onFUSE
        /// Taking the user's rights failed (socket, fork, the ids), or the child had no answer
        /// within the time limit (`ETIMEDOUT`).
        case takingRights
    }

    public var cause: Cause
    public var error: SystemError

    public init(_ cause: Cause, _ error: SystemError) {
        self.cause = cause
        self.error = error
    }

    public var description: String { error.description }
}
