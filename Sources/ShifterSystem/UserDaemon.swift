#if canImport(Glibc)
import Glibc
#endif
import CShifterSys

/// A daemon of a user's, started by root inside a container root.
public enum UserDaemon {
    /// Starts `path` (absolute in `root`) with `arguments` and `environment` as a daemon of the
    /// user's: in a session of its own, reparented to init, chrooted to `root`, with `groups`,
    /// `gid` and `uid` (real, effective and saved), an empty capability bounding set and
    /// no_new_privs, standard output and error to `log`, and no other descriptor of the caller's.
    /// With `controlGroupProcesses` (a group's `cgroup.procs`, `ControlGroup.openProcesses`) it
    /// joins that group before it drops root. With `namespaces` (a job's user and mount namespaces,
    /// opened) it joins them instead of chrooting to `root`. Returns its pid once its exec succeeded; throws with
    /// the errno of the step that failed, or `ETIMEDOUT`. The child is `cshifter_start_daemon`.
    public static func start(_ path: String, arguments: [String], environment: [String], root: String,
                             uid: UInt32, gid: UInt32, groups: [UInt32], log: Int32,
                             controlGroupProcesses: Int32? = nil, namespaces: (user: Int32, mount: Int32)? = nil,
                             timeLimit: Duration = .seconds(30)) throws(SystemError) -> pid_t {
        let parts = timeLimit.components
        let milliseconds = Int32(clamping: parts.seconds * 1000 + parts.attoseconds / 1_000_000_000_000_000)
        var pid: pid_t = 0
        let list = groups.map { gid_t($0) }
        let result = withCStrings([path] + arguments) { argv in
            withCStrings(environment) { envp in
                list.withUnsafeBufferPointer { buffer in
                    cshifter_start_daemon(root, namespaces?.user ?? -1, namespaces?.mount ?? -1, uid, gid, buffer.count, buffer.baseAddress, argv, envp, log,
                                          controlGroupProcesses ?? -1, milliseconds, &pid)
                }
            }
        }
        try checkShim("start", path, result)
        return pid
    }

    /// Calls `body` with a NULL-terminated C array of `strings`.
    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for pointer in pointers { free(pointer) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
