#if canImport(Glibc)
import Glibc
#endif
import ShifterSystem

/// The cgroup2 group of a job's sshd (`--ccm`) on one node: the daemon joins it before it drops
/// root, so every session and everything a session forks is in it, and the epilog ends them all
/// at once. Sessions are in no job step, so no cgroup of Slurm's holds them. Named by job and node,
/// because several slurmd on one host (each node in a mount namespace of its own) share one
/// cgroup tree.
public enum JobControlGroup {
    /// The directory below the cgroup2 mount that holds every job's group.
    static let parent = "shifter"

    /// The group of job `jobID` on node `node`, relative to the cgroup2 mount:
    /// `shifter/job-<id>-<node>`, or `shifter/job-<id>` without a node name. Bytes of the name
    /// other than letters, digits, `.`, `_` and `-` become `_`, and it is cut to 64 bytes, so it is
    /// always one path component.
    public static func name(jobID: UInt32, node: String?) -> String {
        guard let node, !node.isEmpty else { return "\(parent)/job-\(jobID)" }
        let safe = node.utf8.prefix(64).map { byte -> Character in
            let plain = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: "-")
            return plain ? Character(Unicode.Scalar(byte)) : "_"
        }
        return "\(parent)/job-\(jobID)-" + String(safe)
    }

    /// Whether `entry`, a name in the parent directory, is a group of job `jobID` on any node.
    static func isGroup(_ entry: String, ofJob jobID: UInt32) -> Bool {
        entry == "job-\(jobID)" || entry.hasPrefix("job-\(jobID)-")
    }

    /// The groups of job `jobID` that exist here: the one of `node`, or with `anyNode` (an
    /// administrator's cleanup, who says the job has ended everywhere) those of every node.
    /// Empty where no cgroup2 hierarchy is mounted.
    static func existing(jobID: UInt32, node: String?, anyNode: Bool) -> [ControlGroup] {
        guard let mount = ControlGroup.unifiedMountPoint() else { return [] }
        if !anyNode {
            let group = ControlGroup(path: mount + "/" + name(jobID: jobID, node: node))
            return group.exists ? [group] : []
        }
        let names = (try? FileSystem.directoryEntries(mount + "/" + parent)) ?? []
        return names.filter { isGroup($0, ofJob: jobID) }.sorted().map { ControlGroup(path: mount + "/" + parent + "/" + $0) }
    }

    /// How long the processes of a group may take to go once killed.
    static let endTimeLimit: Duration = .seconds(10)

    /// Ends every process in `group` and removes it; returns what could not be done, one line each.
    static func end(_ group: ControlGroup) -> [String] {
        guard group.exists else { return [] }
        do throws(SystemError) {
            try group.killAll()
            guard try group.waitUntilEmpty(timeLimit: endTimeLimit) else {
                let left = ((try? group.members()) ?? []).prefix(8).map(String.init).joined(separator: " ")
                return ["couldn't end the processes of cgroup \(group.path): still running after \(endTimeLimit.components.seconds) s (pids \(left))"]
            }
            try group.remove()
            return []
        } catch {
            return ["couldn't end the processes of cgroup \(group.path): \(error.description)"]
        }
    }
}
