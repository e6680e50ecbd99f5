#if canImport(Glibc)
import Glibc
#endif
import ShifterSystem

/// Removes a container root: kills what still runs inside it, detaches the mounts at its two
/// paths with everything below them, and removes its directories. Loop devices were bound with autoclear, so
/// unmounting releases them. It never throws: it is safe to run twice, after a partial build, or
/// on a root that never existed, and it reports what it could not undo.
public enum RootTeardown {
    /// Tears down `layout`; returns one line per thing left behind (empty when clean).
    @discardableResult
    public static func teardown(_ layout: RootLayout, killProcesses: Bool = false) -> [String] {
        if killProcesses { killProcessesInside(layout.root) }
        var problems: [String] = []
        for top in [layout.base, layout.imageMount] {
            // Detaching the top mount takes everything below it along, so no path inside the
            // container (some run through directories users can change) is resolved again as root.
            // Several mounts may be stacked on the top.
            for _ in 0..<8 {
                guard ((try? MountTable.current()) ?? []).contains(where: { $0.mountPoint == top }) else { break }
                do {
                    try Mounts.unmount(top, detach: true)
                } catch {
                    problems.append("couldn't \(error.description)")
                    break
                }
            }
            // Left only by a build that failed in an unusual place: mounts below a top that is not
            // itself a mount point.
            let entries = (try? MountTable.current()) ?? []
            for point in MountTable.mountPoints(under: top, in: entries) where point != top {
                do {
                    try Mounts.unmount(point, detach: true)
                } catch {
                    problems.append("couldn't \(error.description)")
                }
            }
        }
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

    /// Kills every process whose root directory is the container root or lies below it, and waits
    /// (up to five seconds) for them to go.
    static func killProcessesInside(_ root: String) {
        for _ in 0..<50 {
            let inside = processes(rootedAt: root)
            if inside.isEmpty { return }
            for pid in inside { kill(pid, SIGKILL) }
            usleep(100_000)
        }
    }

    static func processes(rootedAt root: String) -> [pid_t] {
        guard let names = try? FileSystem.directoryEntries("/proc") else { return [] }
        return names.compactMap { name -> pid_t? in
            guard let pid = pid_t(name), pid != getpid() else { return nil }
            var buffer = [CChar](repeating: 0, count: 4096)
            let count = readlink("/proc/\(name)/root", &buffer, buffer.count - 1)
            guard count > 0 else { return nil }
            let link = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return link == root || link.hasPrefix(root + "/") ? pid : nil
        }
    }
}
