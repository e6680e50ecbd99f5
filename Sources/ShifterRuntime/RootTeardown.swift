#if canImport(Glibc)
import Glibc
#endif
import ShifterSystem

/// Removes a container root: kills what still runs inside it, detaches the mounts at its two
/// paths with everything below them, and removes its directories. Loop devices were bound with autoclear, so
/// unmounting releases them. It never throws: it is safe to run twice, after a partial build, or
/// on a root that never existed, and it reports what it could not undo.
public enum RootTeardown {
    /// Tears down `layout`; returns one line per thing left behind (empty when clean). With
    /// `killProcesses`, the processes of `controlGroups` (the job's sshd and its sessions) are
    /// ended first, all at once, then whatever else still runs in the root.
    @discardableResult
    public static func teardown(_ layout: RootLayout, killProcesses: Bool = false,
                                controlGroups: [ControlGroup] = [], warn: (String) -> Void = { _ in }) -> [String] {
        var problems: [String] = []
        if killProcesses {
            for group in controlGroups { problems += JobControlGroup.end(group) }
            killProcessesInside(layout.root)
        }
        // A job entered through its namespaces: what runs in them ends, their pins go, and with
        // them the namespaces' copies of the root's mounts, before the root's own are detached.
        problems += JobNamespaces.release(layout, warn: warn)
        if killProcesses { killHolders(of: layout, warn: warn) }
        // Whether the loop devices let go is known only after the unmounts, by which time the
        // mounts that named them are gone. A table that cannot be read is said, never taken for
        // an empty one: that would leave the root mounted and call it clean.
        let loops: [LoopBinding]
        do {
            loops = try loopBindings(under: [layout.base, layout.imageMount])
        } catch {
            loops = []
            problems.append("couldn't read the mount table: \(error.description)")
        }
        for top in [layout.base, layout.imageMount] {
            // Detaching the top mount takes everything below it along, so no path inside the
            // container (some run through directories users can change) is resolved again as root.
            // Several mounts may be stacked on the top; the kernel says when none is left there
            // (EINVAL), whatever the size of the table.
            for _ in 0..<8 {
                guard Mounts.isMountPoint(top) else { break }
                do {
                    try Mounts.unmount(top, detach: true)
                } catch {
                    problems.append("couldn't \(error.description)")
                    break
                }
            }
            // Left only by a build that failed in an unusual place: mounts below a top that is not
            // itself a mount point.
            let entries: [MountEntry]
            do {
                entries = try MountTable.current()
            } catch {
                problems.append("couldn't read the mount table for what is left below \(top): \(error.description)")
                continue
            }
            for point in MountTable.mountPoints(under: top, in: entries) where point != top {
                do {
                    try Mounts.unmount(point, detach: true)
                } catch {
                    problems.append("couldn't \(error.description)")
                }
            }
        }
        problems += loopsStillBound(loops)
        do {
            try FileSystem.removeFile(layout.failureFile)
        } catch {
            problems.append("couldn't \(error.description)")
        }
        for directory in [layout.base, layout.imageMount] {
            do {
                try FileSystem.removeDirectory(directory)
            } catch {
                problems.append("couldn't \(error.description)")
            }
        }
        return problems
    }

    /// Kills the users' processes that hold a file of the root's image or caches (their loop
    /// devices' filesystems, the overlay above the image, or its writable layer): open, mapped, or as their working or
    /// root directory, from outside the root and the job (through `/proc/PID/root` of a task). One
    /// would keep the image's loop device bound after the unmounts, and the epilog would fail and
    /// drain the node. Root's own processes are left alone (the epilog then reports the device).
    static func killHolders(of layout: RootLayout, warn: (String) -> Void = { _ in }) {
        guard let entries = try? MountTable.current() else { return }
        let inside = { (entry: MountEntry) in
            [layout.base, layout.imageMount].contains { entry.mountPoint == $0 || entry.mountPoint.hasPrefix($0 + "/") }
        }
        // A file of the overlay's upper layer shows the scratch filesystem's device; held, it holds
        // the overlay, and the overlay its image.
        let devices = Set(entries.filter {
            inside($0) && ($0.source.hasPrefix("/dev/loop") || $0.filesystemType == "overlay" || $0.mountPoint == layout.base)
        }.map(\.device).filter { !$0.isEmpty })
        guard !devices.isEmpty else { return }
        killProcesses(where: { pid in realUser(of: pid).map { $0 != 0 } == true && holdsFile(pid, onDevices: devices) },
                      why: "it holds a file of the job's root from outside it", warn: warn)
    }

    /// The real uid of process `pid`, from its status.
    static func realUser(of pid: pid_t) -> UInt32? {
        guard let bytes = try? FileSystem.readFile("/proc/\(pid)/status", limit: 1 << 16) else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("Uid:") {
            return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { UInt32($0) }
        }
        return nil
    }

    /// Whether process `pid` has a file on one of `devices` (`MAJOR:MINOR`) open, mapped, or as its
    /// working or root directory. Only the kernel's record is read: no filesystem is asked.
    static func holdsFile(_ pid: pid_t, onDevices devices: Set<String>) -> Bool {
        let base = "/proc/\(pid)"
        for link in ["cwd", "root"] {
            if let device = FileSystem.cachedDevice(base + "/" + link), devices.contains(device) { return true }
        }
        if let names = try? FileSystem.directoryEntries(base + "/fd") {
            var buffer = [CChar](repeating: 0, count: 8)
            for name in names {
                let path = base + "/fd/" + name
                // Pipes, sockets and the like ("pipe:[N]") are no file of a filesystem.
                guard readlink(path, &buffer, 1) == 1, buffer[0] == CChar(UInt8(ascii: "/")) else { continue }
                if let device = FileSystem.cachedDevice(path), devices.contains(device) { return true }
            }
        }
        // Mappings name their device in hex (`07:00`).
        guard let maps = try? FileSystem.readFile(base + "/maps", limit: 64 << 20) else { return false }
        for line in String(decoding: maps, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[4] != "0" else { continue }
            let parts = fields[3].split(separator: ":")
            guard parts.count == 2, let major = UInt32(parts[0], radix: 16), let minor = UInt32(parts[1], radix: 16) else { continue }
            if devices.contains("\(major):\(minor)") { return true }
        }
        return false
    }

    /// The loop devices the root bound (the image, per-node caches): mounted at or below `tops`
    /// and nowhere else, as bound now. A host filesystem on a loop device that a site mount binds
    /// into the root stays mounted on the host, and is not the root's to release.
    static func loopBindings(under tops: [String]) throws(SystemError) -> [LoopBinding] {
        let entries = try MountTable.current().filter { $0.source.hasPrefix("/dev/loop") }
        let inside = { (entry: MountEntry) in tops.contains { entry.mountPoint == $0 || entry.mountPoint.hasPrefix($0 + "/") } }
        let elsewhere = Set(entries.filter { !inside($0) }.map(\.source))
        var seen: Set<String> = []
        return entries.filter(inside).map(\.source).filter { !elsewhere.contains($0) && seen.insert($0).inserted }
            .compactMap(LoopBinding.current)
    }

    /// One line for each of `loops` that is still bound as it was: with autoclear the kernel
    /// unbinds a device when its filesystem's last mount goes, so a binding that outlives the
    /// unmounts means a mount of the job's is still held, by a process that neither the job's
    /// cgroup nor its root held (another mount namespace), and the job is not clean.
    static func loopsStillBound(_ loops: [LoopBinding]) -> [String] {
        loops.compactMap { before in
            guard let now = LoopBinding.current(before.device), now == before else { return nil }
            return "loop device \(before.device) is still bound to \(before.backingFile) after its mounts were detached: a process outside the job's root and cgroup still holds the job's mount of it"
        }
    }

    /// Kills every process whose root directory is the container root or lies below it, and waits
    /// (up to five seconds) for them to go.
    static func killProcessesInside(_ root: String) {
        killProcesses { isRooted($0, at: root) }
    }

    /// Kills every process (but this one) for which `belongs` holds, and waits (up to five
    /// seconds) for them to go.
    /// With `why`, each process is first named through `warn` (its pid, command and real uid), so
    /// that what the epilog ended outside the root shows in slurmd's log.
    static func killProcesses(where belongs: (pid_t) -> Bool, why: String? = nil, warn: (String) -> Void = { _ in }) {
        var named: Set<pid_t> = []
        for _ in 0..<50 {
            let found = processes(where: belongs)
            if found.isEmpty { return }
            for pid in found {
                if let why, named.insert(pid).inserted {
                    let command = (try? FileSystem.readFile("/proc/\(pid)/comm", limit: 64))
                        .map { String(decoding: $0, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "" } ?? "?"
                    warn("ending process \(pid) (\(command), uid \(realUser(of: pid).map(String.init) ?? "?")): \(why)")
                }
                killIfStill(pid, belongs)
            }
            usleep(100_000)
        }
    }

    /// Sends SIGKILL to process `pid` if `belongs` (still) holds for it. A process found in
    /// `/proc` may exit before it is signalled, and its number go to a process that does not
    /// belong (a daemon, a step of another job): so the process is first held by a pidfd, the
    /// check is made again, and the signal goes through the pidfd, which reaches the process held
    /// or nobody.
    static func killIfStill(_ pid: pid_t, _ belongs: (pid_t) -> Bool) {
        let process: ProcessDescriptor
        do {
            process = try ProcessDescriptor(pid: pid)
        } catch {
            // Kernels before 5.3 have no pidfds: there only the number is left to signal.
            if error.errno == ENOSYS { kill(pid, SIGKILL) }
            return
        }
        // The check must be about the process the pidfd holds, so it is made after the open. Should
        // that process exit between the check and the signal, and its number be reused by a process
        // that belongs, the check saw the wrong process, but the signal fails with ESRCH.
        guard belongs(pid) else { return }
        try? process.send(SIGKILL)
    }

    static func processes(where belongs: (pid_t) -> Bool) -> [pid_t] {
        guard let names = try? FileSystem.directoryEntries("/proc") else { return [] }
        return names.compactMap { name -> pid_t? in
            guard let pid = pid_t(name), pid != getpid() else { return nil }
            return belongs(pid) ? pid : nil
        }
    }

    /// Whether the root directory of process `pid` (`/proc/PID/root`) is `root` or lies below it;
    /// false when the process is gone. A process of another mount namespace shows its root by its
    /// path there, which on a host running several slurmd (each node in a namespace of its own) is
    /// the same path for the same job on every node: it counts only when its root is this root's
    /// very filesystem (a user process that made a namespace of its own inside the container).
    static func isRooted(_ pid: pid_t, at root: String) -> Bool {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/\(pid)/root", &buffer, buffer.count - 1)
        guard count > 0 else { return false }
        let link = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard link == root || link.hasPrefix(root + "/") else { return false }
        var ours = stat(), theirs = stat()
        guard stat("/proc/self/ns/mnt", &ours) == 0, stat("/proc/\(pid)/ns/mnt", &theirs) == 0 else { return true }
        if ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev { return true }
        var here = stat(), there = stat()
        guard stat(root, &here) == 0, stat("/proc/\(pid)/root", &there) == 0 else { return false }
        return here.st_dev == there.st_dev
    }
}
