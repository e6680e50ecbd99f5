#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// The entry of a job whose tasks join its namespaces (`entryMode=userns`): made by the prolog
/// once the root is complete, read and joined by `shifter` as the user, released by the epilog.
///
/// `RootLayout.entryDirectory` is a tmpfs of 64 KiB and 16 inodes. It holds the pins of the user
/// and mount namespaces (bind mounts of the namespaces' files, in the node's mount namespace only)
/// and a copy of the root's record. It is root's (0700) until all of that is in place, then the
/// user's, mode 0500 (`writeRecordAndHandOver`): only root and the user can open what is in it, the user can
/// replace nothing that root put there (a mount point cannot be renamed or removed), and the user,
/// who may change its mode, can fill no more than its size.
public enum JobNamespaces {
    /// Makes the entry and the namespaces for `user`, with `groups` mapped.
    static func make(layout: RootLayout, user: ContainerUser, groups: [UInt32]) throws(RuntimeError) {
        do throws(SystemError) {
            try FileSystem.makeDirectories(layout.entryDirectory, mode: 0o700)
            try Mounts.mount(source: "shifter-entry", target: layout.entryDirectory, type: "tmpfs",
                             flags: [.noSetuid, .noDevices, .noExec], data: "mode=0700,size=64k,nr_inodes=16")
            // The pins must not reach another mount namespace through a shared udiMount.
            try Mounts.setPropagation(layout.entryDirectory, .privatePropagation, recursive: false)
            for pin in [layout.userNamespacePin, layout.mountNamespacePin] {
                try FileSystem.writeFile(pin, [], mode: 0o400)
            }
        } catch {
            throw RuntimeError("couldn't make the job's entry: \(error.description)")
        }
        do throws(Namespaces.MakeError) {
            try Namespaces.makeJobNamespaces(root: layout.root, uid: user.uid, gid: user.gid, groups: groups,
                                             userPin: layout.userNamespacePin, mountPin: layout.mountNamespacePin)
        } catch {
            throw RuntimeError(failureMessage(error, uid: user.uid))
        }
    }

    /// Makes for uid `uid` the namespaces a job's prolog makes (`entryMode=userns`), over an empty
    /// root of its own in `udiMount` (root's, as the roots there are), then removes them: nil where
    /// the kernel allowed it, else the one line a prolog would fail with (`shifter-admin check-entry`).
    public static func probe(uid: UInt32, config: SiteConfig) -> String? {
        let gid: UInt32
        do throws(SystemError) { gid = try Credentials.passwdEntry(uid: uid).gid } catch {
            return "couldn't look up uid \(uid): \(error.description)"
        }
        let user: ContainerUser
        do throws(RuntimeError) { user = try JobRoot.jobUser(uid: uid, gid: gid, config: config) } catch {
            return error.description
        }
        guard FileSystem.exists(config.udiMount) else {
            return "udiMount \(config.udiMount) does not exist on this node: a job's prolog makes it; run one here first, or make it (root's, mode 0755)"
        }
        let layout = RootLayout(name: "entry-probe.\(getpid())", udiMount: config.udiMount, loopMount: config.loopMount)
        do throws(SystemError) {
            try FileSystem.makeDirectory(layout.base, mode: 0o700)
            try FileSystem.makeDirectory(layout.root, mode: 0o755)
        } catch {
            try? FileSystem.removeDirectory(layout.base)
            return "couldn't \(error.description)"
        }
        var failure: String?
        do throws(RuntimeError) {
            try make(layout: layout, user: user, groups: ContainerPlanner.namespaceGroups(user))
        } catch {
            failure = error.description
        }
        let left = release(layout)
        try? FileSystem.removeDirectory(layout.root)
        try? FileSystem.removeDirectory(layout.base)
        return failure ?? left.first
    }

    /// One line on a failure to make the namespaces: the step, the reason, and the setting that
    /// forbids them where the kernel's answer points at one.
    static func failureMessage(_ error: Namespaces.MakeError, uid: UInt32) -> String {
        let reason = SystemError("", "", errno: error.errno).reason
        var message = "couldn't \(error.step.action) for the job (entryMode=userns): \(reason)"
        if error.step == .user, error.errno == ENOSPC {
            let limit = Namespaces.userNamespaceLimit().map(String.init) ?? "unknown"
            message += limit == "0"
                ? "; the kernel allows no user namespaces on this node (sysctl user.max_user_namespaces=0): set it above 0, or use entryMode=setuid"
                : "; uid \(uid) has as many user namespaces as the kernel allows (sysctl user.max_user_namespaces=\(limit))"
        } else if error.step == .user, error.errno == EPERM || error.errno == EINVAL {
            message += "; this kernel does not let root make a user namespace for a user (check user namespace support, and any security module that restricts them), or use entryMode=setuid"
        }
        return message
    }

    /// Writes the copy of the root's record that `shifter` reads as the user (root's, read-only),
    /// then gives the entry to the user: the last step, once nothing more is made in it.
    static func writeRecordAndHandOver(layout: RootLayout, state: PreparedRootState) throws(SystemError) {
        try FileSystem.writeFile(layout.entryRecord, state.encoded(), mode: 0o444)
        try FileSystem.setOwner(layout.entryDirectory, uid: state.uid, gid: state.gid)
        try FileSystem.setMode(layout.entryDirectory, 0o500)
    }

    /// The record of the job's entry, for the user `uid`: nil where there is no entry, or it is not
    /// the user's (the directory owned by `uid`, the record by root and written by nobody else).
    public static func record(layout: RootLayout, uid: UInt32) -> PreparedRootState? {
        guard let directory = try? FileSystem.linkStatus(layout.entryDirectory), directory.kind == .directory,
              directory.uid == uid,
              let status = try? FileSystem.linkStatus(layout.entryRecord), status.kind == .regular, status.uid == 0,
              status.mode & 0o022 == 0, let bytes = try? FileSystem.readFile(layout.entryRecord, limit: 1 << 20),
              let state = PreparedRootState.decode(bytes), state.uid == uid else {
            return nil
        }
        return state
    }

    /// Ends every process in the job's namespaces, or in namespaces made within them, and every
    /// process holding one of them open; unpins them and removes the entry. Nothing when the job
    /// has no entry. Returns what could not be undone.
    static func release(_ layout: RootLayout, warn: (String) -> Void = { _ in }) -> [String] {
        guard FileSystem.exists(layout.entryDirectory) else { return [] }
        var problems: [String] = []
        endProcesses(layout, warn: warn)
        for pin in [layout.userNamespacePin, layout.mountNamespacePin] where isPin(pin) {
            // Not detached: the namespace, and its copies of the root's mounts, go before this
            // returns. Never through a symlink: the entry is the user's.
            do throws(SystemError) {
                try Mounts.unmount(pin, noFollow: true)
            } catch {
                do throws(SystemError) { try Mounts.unmount(pin, detach: true, noFollow: true) } catch {
                    problems.append("couldn't \(error.description)")
                }
            }
        }
        if Mounts.isMountPoint(layout.entryDirectory) {
            do throws(SystemError) { try Mounts.unmount(layout.entryDirectory, detach: true) } catch {
                problems.append("couldn't \(error.description)")
            }
        }
        do throws(SystemError) {
            try FileSystem.removeDirectory(layout.entryDirectory)
        } catch where error.errno != ENOENT {
            problems.append("couldn't \(error.description)")
        } catch {}
        return problems
    }

    /// Ends every process in the job's namespaces, in namespaces made within them, or holding one
    /// of them open; nothing where the job has no pinned namespaces.
    /// Those that run in them are the job's, ended as a root's are; one that only holds them open
    /// from outside is named through `warn`.
    static func endProcesses(_ layout: RootLayout, warn: (String) -> Void = { _ in }) {
        guard let user = pinnedUserNamespace(layout) else { return }
        RootTeardown.killProcesses(where: { runsInNamespace($0, within: user) })
        RootTeardown.killProcesses(where: { holdsNamespaceFromOutside($0, within: user, entry: layout.entryDirectory) },
                                   why: "it holds the job's namespaces from outside them", warn: warn)
    }

    /// The user namespace pinned in the entry, where the pin is one (an nsfs file, as this
    /// process's own namespace is).
    static func pinnedUserNamespace(_ layout: RootLayout) -> (device: UInt64, inode: UInt64)? {
        guard isPin(layout.userNamespacePin), let pinned = Namespaces.identity(layout.userNamespacePin),
              let own = Namespaces.identity("/proc/self/ns/user"), pinned.device == own.device else { return nil }
        return pinned
    }

    /// Whether `path` is a pin: a file (not a symlink, which the user could have put in the
    /// entry) that is a mount point.
    static func isPin(_ path: String) -> Bool {
        guard let status = try? FileSystem.linkStatus(path), status.kind == .regular else { return false }
        return Mounts.isMountPoint(path)
    }

    /// Whether process `pid` is in the user namespace `user` or one within it, or in a mount
    /// namespace such a namespace owns.
    static func runsInNamespace(_ pid: pid_t, within user: (device: UInt64, inode: UInt64)) -> Bool {
        Namespaces.isWithin("/proc/\(pid)/ns/user", userNamespace: user) || Namespaces.isWithin("/proc/\(pid)/ns/mnt", userNamespace: user)
    }

    /// Whether process `pid`, not running in those namespaces (`runsInNamespace`), holds one of
    /// them open: through the pins in `entry`, or through a `/proc/PID/ns` file.
    static func holdsNamespaceFromOutside(_ pid: pid_t, within user: (device: UInt64, inode: UInt64), entry: String) -> Bool {
        if runsInNamespace(pid, within: user) { return false }
        // A namespace opened through /proc shows as "mnt:[INODE]", one opened through a pin as the
        // pin's path. Only those are looked at: the status of any other file the process holds
        // could be asked of a filesystem a user runs (FUSE), which need never answer.
        let descriptors = "/proc/\(pid)/fd"
        guard let names = try? FileSystem.directoryEntries(descriptors) else { return false }
        var buffer = [CChar](repeating: 0, count: 4096)
        for name in names {
            let path = descriptors + "/" + name
            let count = readlink(path, &buffer, buffer.count - 1)
            guard count > 0 else { continue }
            let link = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let kindAndInode = link.firstIndex(of: ":").map { link[link.index(after: $0)...].hasPrefix("[") } ?? false
            guard link.hasPrefix(entry + "/") || (!link.hasPrefix("/") && kindAndInode) else { continue }
            guard let held = Namespaces.identity(path), held.device == user.device else { continue }
            if Namespaces.isWithin(path, userNamespace: user) { return true }
        }
        return false
    }
}
