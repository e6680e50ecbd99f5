#if canImport(Glibc)
import Glibc
#endif
import CShifterSys

/// User and group lookups, and the one-way switch to the user's credentials.
public enum Credentials {
    /// The real uid and gid of the calling process (the user who ran a setuid program).
    public static var realUser: (uid: UInt32, gid: UInt32) { (getuid(), getgid()) }

    /// The supplementary groups the calling process holds. `getgroups(2)`.
    public static func currentGroups() throws(SystemError) -> [UInt32] {
        let count = getgroups(0, nil)
        if count < 0 { throw SystemError("read groups of", "the calling process", errno: errno) }
        var groups = [gid_t](repeating: 0, count: Int(count))
        let read = getgroups(count, &groups)
        if read < 0 { throw SystemError("read groups of", "the calling process", errno: errno) }
        return Array(groups.prefix(Int(read)))
    }

    /// The passwd entry of `uid`, as `getpwuid_r(3)` finds it.
    public static func passwdEntry(uid: UInt32) throws(SystemError) -> (name: String, gid: UInt32, home: String, shell: String) {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let status = getpwuid_r(uid, &entry, &buffer, buffer.count, &result)
        guard status == 0, let found = result else {
            throw SystemError("look up user", "uid \(uid)", errno: status == 0 ? ENOENT : status)
        }
        return (String(cString: found.pointee.pw_name), found.pointee.pw_gid,
                String(cString: found.pointee.pw_dir), String(cString: found.pointee.pw_shell))
    }

    /// The name of group `gid`, or nil when it has no entry. `getgrgid_r(3)`.
    public static func groupName(gid: UInt32) -> String? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65536)
        guard getgrgid_r(gid, &entry, &buffer, buffer.count, &result) == 0, let found = result else { return nil }
        return String(cString: found.pointee.gr_name)
    }

    /// The groups `user` belongs to according to the system databases. `getgrouplist(3)`.
    public static func groupList(user: String, gid: UInt32, limit: Int) throws(SystemError) -> [UInt32] {
        var capacity = Int32(max(1, min(limit, 65536)))
        while true {
            var groups = [gid_t](repeating: 0, count: Int(capacity))
            var count = capacity
            let result = cshifter_getgrouplist(user, gid, &groups, &count)
            if result == 0 { return Array(groups.prefix(Int(count)).prefix(limit)) }
            if result == -ERANGE, count > capacity, capacity < 65536 {
                capacity = min(count, 65536)
                continue
            }
            throw SystemError("look up groups of", user, errno: -result)
        }
    }

    /// Sets the real and saved ids to the effective root ids of a setuid start. `setresuid(2)`.
    /// The process stays not dumpable: the kernel resets dumpability to `fs.suid_dumpable` on
    /// every change of ids.
    public static func becomeRoot() throws(SystemError) {
        try checkShim("set gid of", "root", cshifter_setresgid(0, 0, 0))
        try checkShim("set uid of", "root", cshifter_setresuid(0, 0, 0))
        try checkShim("set not dumpable", "shifter", cshifter_set_not_dumpable())
    }

    /// Gives up what a user namespace the caller joined gave it, keeping its ids and groups (those
    /// the kernel gave the user): an empty capability bounding set, no capabilities, and
    /// `no_new_privs`. Refuses where the ids are root's.
    public static func dropNamespaceCapabilities(name: String) throws(SystemError) {
        try checkShim("drop capability bounding set for", name, cshifter_drop_bounding_set())
        try checkShim("clear capabilities of", name, cshifter_clear_capabilities())
        try checkShim("set no_new_privs for", name, cshifter_set_no_new_privs())
        if setuid(0) == 0 || geteuid() == 0 || getegid() == 0 || getuid() == 0 {
            throw SystemError("drop privileges for", name, errno: EPERM)
        }
    }

    /// Becomes the user for good: supplementary groups, gid, uid (real, effective and saved), an
    /// empty capability bounding set, no capabilities, and `no_new_privs`, so no later exec can
    /// regain privilege. Refuses uid or gid 0.
    public static func become(uid: UInt32, gid: UInt32, groups: [UInt32], name: String) throws(SystemError) {
        guard uid != 0, gid != 0 else { throw SystemError("switch to", "uid \(uid) gid \(gid)", errno: EPERM) }
        try checkShim("drop capability bounding set for", name, cshifter_drop_bounding_set())
        let groups = groups.filter { $0 != 0 }
        try checkShim("set groups of", name, groups.withUnsafeBufferPointer {
            cshifter_setgroups($0.count, $0.baseAddress)
        })
        try checkShim("set gid of", name, cshifter_setresgid(gid, gid, gid))
        try checkShim("set uid of", name, cshifter_setresuid(uid, uid, uid))
        try checkShim("clear capabilities of", name, cshifter_clear_capabilities())
        try checkShim("set no_new_privs for", name, cshifter_set_no_new_privs())
        // Paranoia: the switch must be irreversible.
        if setuid(0) == 0 || geteuid() == 0 || getegid() == 0 {
            throw SystemError("drop privileges for", name, errno: EPERM)
        }
    }
}
