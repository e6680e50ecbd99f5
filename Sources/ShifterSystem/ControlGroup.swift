#if canImport(Glibc)
import Glibc
#endif

/// A group of the cgroup2 hierarchy, by the host path of its directory. A process moved in
/// (through `cgroup.procs`) stays in it with everything it forks, wherever it goes in the mount
/// tree, and root can end them all at once: a scan of `/proc` cannot promise that against a
/// process that keeps forking and exiting.
public struct ControlGroup: Sendable, Equatable {
    /// The group's directory, e.g. `/sys/fs/cgroup/unified/shifter/job-5-n1`.
    public let path: String

    public init(path: String) { self.path = path }

    /// Where the cgroup2 hierarchy is mounted in `entries`, or nil where it is not: `/sys/fs/cgroup`
    /// on a unified host, `/sys/fs/cgroup/unified` on a hybrid one. The first in mount order: a
    /// container root with the host's `/sys` bound into it shows the same hierarchy again below.
    public static func unifiedMountPoint(in entries: [MountEntry]) -> String? {
        entries.first { $0.filesystemType == "cgroup2" }?.mountPoint
    }

    /// Where the cgroup2 hierarchy is mounted in this mount namespace, or nil where it is not (or
    /// `/proc/self/mountinfo` cannot be read).
    public static func unifiedMountPoint() -> String? {
        (try? MountTable.current()).flatMap { unifiedMountPoint(in: $0) }
    }

    /// Whether the group's directory exists.
    public var exists: Bool { (try? FileSystem.linkStatus(path))?.kind == .directory }

    /// Creates the group, and its missing parents, mode 0755 and root's. The corresponding C
    /// function is `mkdir(2)`.
    public func create() throws(SystemError) {
        try FileSystem.makeDirectories(path, mode: 0o755)
    }

    /// Opens the group's `cgroup.procs` for writing: a process that writes "0" to it moves itself
    /// into the group. Checked at open: the caller (root) may write it later with fewer rights.
    public func openProcesses() throws(SystemError) -> Int32 {
        let file = path + "/cgroup.procs"
        return try check("open", file) { open(file, O_WRONLY | O_CLOEXEC) }
    }

    /// Ends every process in the group: `cgroup.kill` (Linux 5.14), which signals them all at once,
    /// new children included; where the kernel lacks it, the group is frozen (`cgroup.freeze`,
    /// Linux 5.2), so nothing in it can fork, and each member gets SIGKILL, which reaches frozen
    /// processes too. Returns once the kill is sent; `waitUntilEmpty` waits for its effect.
    /// `useKillFile: false` takes the freezer's way on any kernel (for tests).
    public func killAll(freezeTimeLimit: Duration = .seconds(5), useKillFile: Bool = true) throws(SystemError) {
        if useKillFile {
            do {
                try write("1", to: "cgroup.kill")
                return
            } catch where error.errno == ENOENT {}
        }
        let frozen: Bool
        do {
            try write("1", to: "cgroup.freeze")
            frozen = try waitForEvent("frozen", 1, timeLimit: freezeTimeLimit)
        } catch where error.errno == ENOENT {
            frozen = false
        }
        // Unfrozen (a kernel before 5.2, or a member that did not stop in time), a member may fork
        // between the read and the signal: the caller's wait then ends in a time-out it reports.
        for pid in try members() { kill(pid, SIGKILL) }
        if frozen { try? write("0", to: "cgroup.freeze") }
    }

    /// Waits until no process is left in the group (`populated 0` in `cgroup.events`), woken by
    /// the kernel's notification on that file rather than by polling; false when `timeLimit`
    /// passed first.
    public func waitUntilEmpty(timeLimit: Duration) throws(SystemError) -> Bool {
        try waitForEvent("populated", 0, timeLimit: timeLimit)
    }

    /// Removes the (empty) group; a missing one is not an error. The corresponding C function is
    /// `rmdir(2)`.
    public func remove() throws(SystemError) {
        try FileSystem.removeDirectory(path)
    }

    /// The processes in the group now (`cgroup.procs`).
    public func members() throws(SystemError) -> [pid_t] {
        let text = String(decoding: try FileSystem.readFile(path + "/cgroup.procs", limit: 1 << 20), as: UTF8.self)
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }

    /// Waits until `cgroup.events` says `key value`. The kernel marks the file changed (POLLPRI)
    /// whenever a value in it changes, and a fresh read from its start clears the mark.
    private func waitForEvent(_ key: String, _ value: Int, timeLimit: Duration) throws(SystemError) -> Bool {
        let file = path + "/cgroup.events"
        let fd = try check("open", file) { open(file, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        let deadline = MonotonicClock.seconds + MonotonicClock.seconds(timeLimit)
        let wanted = "\(key) \(value)"
        while true {
            var buffer = [UInt8](repeating: 0, count: 512)
            let count = try check("read", file) { Int32(truncatingIfNeeded: pread(fd, &buffer, buffer.count, 0)) }
            let lines = String(decoding: buffer.prefix(Int(count)), as: UTF8.self).split(separator: "\n")
            if lines.contains(where: { $0 == wanted }) { return true }
            let left = deadline - MonotonicClock.seconds
            if left <= 0 { return false }
            var ready = pollfd(fd: fd, events: Int16(POLLPRI), revents: 0)
            try check("wait for a change of", file) { poll(&ready, 1, Int32(min(left * 1000, 60_000).rounded(.up))) }
        }
    }

    /// Writes `text` to the group's file `name` in one `write(2)`, as the kernel's interface files expect.
    private func write(_ text: String, to name: String) throws(SystemError) {
        let file = path + "/" + name
        let fd = try check("open", file) { open(file, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        try check("write \"\(text)\" to", file) { Int32(truncatingIfNeeded: Glibc.write(fd, bytes, bytes.count)) }
    }
}
