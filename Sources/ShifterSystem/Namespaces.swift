#if canImport(Glibc)
import Glibc
#endif
import CShifterSys

/// A job's user namespace and mount namespace (`entryMode=userns`): made by root in the prolog,
/// pinned by bind mounts onto two files, joined by the job's user with `setns(2)`.
public enum Namespaces {
    /// Where making them failed, for the message.
    public enum Step: Int32, Sendable {
        case start = 1, user, uidMap, gidMap, mount, bind, pivot, detach, pin, done

        public var action: String {
            switch self {
            case .start: "take the user's ids for the namespace"
            case .user: "create the user namespace"
            case .uidMap: "write the user namespace's uid_map"
            case .gidMap: "write the user namespace's gid_map"
            case .mount: "create the mount namespace"
            case .bind: "bind the root onto itself in the mount namespace"
            case .pivot: "make the root the mount namespace's /"
            case .detach: "detach the node's mounts from the mount namespace"
            case .pin: "pin the namespaces"
            case .done: "make the namespaces"
            }
        }
    }

    /// Why making a job's namespaces failed.
    public struct MakeError: Error, Sendable {
        public var step: Step
        public var errno: Int32

        public init(step: Step, errno: Int32) {
            self.step = step
            self.errno = errno
        }
    }

    /// Makes the namespaces of a job whose root is `root`, for `uid`, with `groups` (the primary
    /// group among them) in the gid map, pinned at `userPin` and `mountPin` (existing files). See
    /// `cshifter_make_job_namespaces`.
    public static func makeJobNamespaces(root: String, uid: UInt32, gid: UInt32, groups: [UInt32], userPin: String,
                                         mountPin: String, timeLimit: Duration = .seconds(30)) throws(MakeError) {
        var seen: Set<UInt32> = []
        let map = ([gid] + groups).filter { $0 != 0 && seen.insert($0).inserted }.map { "\($0) \($0) 1\n" }.joined()
        let parts = timeLimit.components
        let milliseconds = Int32(clamping: parts.seconds * 1000 + parts.attoseconds / 1_000_000_000_000_000)
        var step: Int32 = 0
        let result = cshifter_make_job_namespaces(root, uid, gid, map, userPin, mountPin, milliseconds, &step)
        if result < 0 { throw MakeError(step: Step(rawValue: step) ?? .start, errno: -result) }
    }

    /// The kernel's limit on user namespaces (`user.max_user_namespaces`), where it can be read.
    public static func userNamespaceLimit() -> Int? {
        guard let bytes = try? FileSystem.readFile("/proc/sys/user/max_user_namespaces", limit: 64) else { return nil }
        return Int(String(decoding: bytes, as: UTF8.self).split(separator: "\n").first ?? "")
    }

    /// Joins the user namespace pinned at `userPin`, then the mount namespace at `mountPin`: the
    /// caller's `/` and working directory are then the mount namespace's `/`. Both are opened
    /// before either is joined.
    public static func enter(userPin: String, mountPin: String) throws(SystemError) {
        let (user, mount) = try open(userPin: userPin, mountPin: mountPin)
        defer {
            close(user)
            close(mount)
        }
        try checkShim("join the user namespace", userPin, cshifter_setns(user, Int32(CSHIFTER_USER_NAMESPACE)))
        try checkShim("join the mount namespace", mountPin, cshifter_setns(mount, Int32(CSHIFTER_MOUNT_NAMESPACE)))
    }

    /// Opens the namespaces pinned at `userPin` and `mountPin` for a child to join (see
    /// `UserDaemon.start`); the caller closes both.
    public static func open(userPin: String, mountPin: String) throws(SystemError) -> (user: Int32, mount: Int32) {
        let user = try check("open", userPin) { Glibc.open(userPin, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
        do {
            let mount = try check("open", mountPin) { Glibc.open(mountPin, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
            return (user, mount)
        } catch {
            close(user)
            throw error
        }
    }

    /// The identity (device and inode of its nsfs file) of the namespace pinned or linked at
    /// `path`, or nil where there is none.
    public static func identity(_ path: String) -> (device: UInt64, inode: UInt64)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }

    /// Whether the namespace at `path` (`/proc/PID/ns/user`, `/proc/PID/fd/N`) is the user
    /// namespace `identity` or lies within it (see `cshifter_namespace_within`). False when it
    /// cannot be opened (the process is gone).
    public static func isWithin(_ path: String, userNamespace identity: (device: UInt64, inode: UInt64)) -> Bool {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return cshifter_namespace_within(fd, identity.device, identity.inode) == 1
    }
}
