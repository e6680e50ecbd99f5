#if canImport(Glibc)
import Glibc
#endif
import CShifterSys

extension Credentials {
    /// The effective uid and gid of the calling process (root, in a setuid program's start).
    public static var effectiveUser: (uid: UInt32, gid: UInt32) { (geteuid(), getegid()) }

    /// Sets the uid and gid that the kernel checks file access with, and nothing else, so that a
    /// setuid program can open a user's file with the user's rights. The kernel resets
    /// dumpability to `fs.suid_dumpable` on the change: the caller makes the process not dumpable
    /// again. `setfsuid(2)`, `setfsgid(2)`.
    public static func setFilesystemIDs(uid: UInt32, gid: UInt32) throws(SystemError) {
        let result = cshifter_set_filesystem_ids(uid, gid)
        if result < 0 { throw SystemError("set filesystem ids of", "uid \(uid), gid \(gid)", errno: -result) }
    }
}
