#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// What is left of one job's root on this node, as found under `udiMount` and `loopMount`.
public struct NodeRootEntry: Sendable, Equatable {
    public var jobID: UInt32
    /// The step whose own root this is (`entryMode=userns`), nil for the job's root.
    public var stepID: UInt32? = nil
    /// The prolog's record, when the root was completed and the record can be trusted.
    public var state: PreparedRootState?
    /// The reason the job's prolog failed on this node, when it did.
    public var failure: String?
    /// Mount points at or below the root's two paths.
    public var mounts: [String]
    /// Whether the prolog began a per-node cache for the job (the marker is still there).
    public var cacheMarker: Bool
    /// The job's entry (`entryMode=userns`): `userns` where its namespaces are pinned, `broken`
    /// where the entry is there without them, nil where the job has none.
    public var entry: String?

    /// The root's name as Slurm names jobs and steps: `12`, or `12.3` for a step's own root.
    public var name: String { stepID.map { "\(jobID).\($0)" } ?? String(jobID) }

    /// `ready` (built and recorded), `failed` (the prolog left its reason) or `incomplete`
    /// (directories or mounts without a record: a prolog or epilog killed half-way).
    public var status: String {
        if state != nil { return "ready" }
        if failure != nil { return "failed" }
        return "incomplete"
    }

    /// The per-node caches the root was built with, and their total size in bytes.
    public var perNodeCaches: (count: Int, bytes: UInt64) {
        var count = 0, bytes: UInt64 = 0
        for text in state?.volumes ?? [] {
            guard let cache = (try? VolumeSpec.parse(text))?.perNodeCache else { continue }
            count += 1
            bytes &+= cache.size
        }
        return (count, bytes)
    }
}

/// The job roots on this node: what `shifter-admin list` and `check` show, and what the node's
/// metrics count. It reads directories and the mount table only; it changes nothing.
public enum NodeInventory {
    /// Every job, and every step with a root of its own, that has a directory, a record, a failure
    /// note, a cache marker or a mount under `udiMount` or `loopMount`, in job and step order (a
    /// job's own root before its steps').
    public static func roots(config: SiteConfig) -> [NodeRootEntry] {
        var names = Set<RootName>()
        for directory in [config.udiMount, config.loopMount] {
            for name in (try? FileSystem.directoryEntries(directory)) ?? [] {
                if let root = rootName(name) { names.insert(RootName(job: root.job, step: root.step)) }
            }
        }
        let mountPoints = ((try? MountTable.current()) ?? []).map(\.mountPoint)
        for point in mountPoints {
            for directory in [config.udiMount, config.loopMount] {
                guard let name = firstComponent(of: point, under: directory), let root = rootName(name) else { continue }
                names.insert(RootName(job: root.job, step: root.step))
            }
        }
        return names.sorted().map { root in
            let layout = root.step.map { RootLayout.step($0, of: root.job, config: config) } ?? RootLayout.job(root.job, config: config)
            let mounts = mountPoints.filter { point in
                [layout.base, layout.imageMount, layout.entryDirectory].contains { point == $0 || point.hasPrefix($0 + "/") }
            }
            var entry: String?
            if FileSystem.exists(layout.entryDirectory) {
                entry = JobNamespaces.pinnedUserNamespace(layout) != nil && mounts.contains(layout.mountNamespacePin)
                    ? "userns" : "broken"
            }
            return NodeRootEntry(jobID: root.job, stepID: root.step, state: JobRoot.state(layout: layout),
                                 failure: JobRoot.failureReason(layout: layout), mounts: mounts,
                                 cacheMarker: FileSystem.exists(layout.cacheMarkerFile), entry: entry)
        }
    }

    /// A job's root, or one of its steps', ordered by job then step (the job's own first).
    struct RootName: Hashable, Comparable {
        var job: UInt32
        var step: UInt32?

        static func < (lhs: Self, rhs: Self) -> Bool {
            if lhs.job != rhs.job { return lhs.job < rhs.job }
            guard let right = rhs.step else { return false }
            guard let left = lhs.step else { return true }
            return left < right
        }
    }

    /// Entries under `udiMount` or `loopMount` that are not a job's (no `job-N` name): nothing
    /// Shifter makes, so something for an administrator to look at.
    public static func strangers(config: SiteConfig) -> [String] {
        var found: [String] = []
        for directory in [config.udiMount, config.loopMount] {
            for name in ((try? FileSystem.directoryEntries(directory)) ?? []).sorted() where rootName(name) == nil {
                found.append(directory + "/" + name)
            }
        }
        return found
    }

    /// What a job that has ended left on this node, and in the shared per-node cache directory:
    /// roots of jobs not in `activeJobs` (pending, running or completing), backing files of their
    /// per-node caches, and entries under `udiMount` or `loopMount` that are no job's. Each line
    /// says what to run about it.
    public static func leftovers(config: SiteConfig, activeJobs: Set<UInt32>) -> [String] {
        leftovers(config: config, activeJobs: { activeJobs })
    }

    /// The same, with the jobs that have not ended asked for (`activeJobs`) only once the node has
    /// been looked at: a job that starts in between is then in the answer, and is never reported
    /// as ended (which would have an administrator remove a running job's root).
    public static func leftovers<E: Error>(config: SiteConfig, activeJobs: () throws(E) -> Set<UInt32>) throws(E) -> [String] {
        let nodeRoots = roots(config: config)
        var cacheFiles: [(job: UInt32, path: String, size: Int64)] = []
        var privateFiles: [(path: String, status: FileStatus)] = []
        if let directory = config.perNodeCachePath {
            privateFiles = PerNodeCache.abandonedPrivateFiles(in: directory, now: Int64(time(nil)))
            for name in ((try? FileSystem.directoryEntries(directory)) ?? []).sorted() {
                guard let job = PerNodeCache.jobID(inFileName: name) else { continue }
                let path = directory + "/" + name
                guard let status = try? FileSystem.linkStatus(path), status.kind == .regular else { continue }
                cacheFiles.append((job, path, status.size))
            }
        }
        let active = try activeJobs()
        var found: [String] = []
        for root in nodeRoots where !active.contains(root.jobID) {
            found.append("\(root.stepID == nil ? "job" : "step") \(root.name) has ended but its root is \(root.status) here with \(root.mounts.count) mount(s); run 'shifter-admin cleanup --job \(root.jobID)'")
        }
        for file in cacheFiles where !active.contains(file.job) {
            found.append("job \(file.job) has ended but its per-node cache file \(file.path) (\(ByteSize.format(UInt64(max(0, file.size))))) is left; run 'shifter-admin cleanup --job \(file.job)'")
        }
        for (path, status) in privateFiles {
            found.append("\(path) (\(ByteSize.format(UInt64(max(0, status.size))))) is the per-node cache file of a shifter run outside any job that was killed while it formatted it; run 'shifter-admin cleanup --private-caches'")
        }
        for path in strangers(config: config) {
            found.append("\(path) is not a job root; Shifter did not make it (remove it by hand once you know what it is)")
        }
        return found
    }

    /// Removes the cache files that killed `shifter` runs outside any job left (see
    /// `PerNodeCache.abandonedPrivateFiles`); returns what could not be removed.
    public static func removeAbandonedPrivateCaches(config: SiteConfig) -> (removed: [String], left: [String]) {
        guard let directory = config.perNodeCachePath else { return ([], []) }
        var removed: [String] = [], left: [String] = []
        for (path, _) in PerNodeCache.abandonedPrivateFiles(in: directory, now: Int64(time(nil))) {
            do throws(SystemError) {
                try FileSystem.removeFile(path)
                removed.append(path)
            } catch {
                left.append("couldn't \(error.description)")
            }
        }
        return (removed, left)
    }

    /// The job id in `job-N`, `job-N.failed`, `job-N.caches` or `job-N.entry`, and in the same
    /// names of a step's root (`job-N.step-M`).
    static func jobID(inName name: String) -> UInt32? { rootName(name)?.job }

    /// The job and step of a root's name: `job-N` or `job-N.step-M`, alone or with `.failed`,
    /// `.caches` or `.entry`; nil for any other name.
    static func rootName(_ name: String) -> (job: UInt32, step: UInt32?)? {
        guard name.hasPrefix("job-") else { return nil }
        var rest = name.dropFirst(4)
        for suffix in [".failed", ".caches", ".entry"] where rest.hasSuffix(suffix) {
            rest = rest.dropLast(suffix.count)
        }
        var step: UInt32?
        if let dot = rest.firstIndex(of: ".") {
            let tail = rest[dot...]
            guard tail.hasPrefix(RootLayout.stepInfix), let number = decimal(tail.dropFirst(RootLayout.stepInfix.count)) else {
                return nil
            }
            step = number
            rest = rest[..<dot]
        }
        return decimal(rest).map { ($0, step) }
    }

    /// A number as Slurm writes one: decimal digits without a leading zero, within 32 bits.
    private static func decimal(_ text: Substring) -> UInt32? {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), text.first != "0" || text.count == 1 else {
            return nil
        }
        return UInt32(text)
    }

    /// The first path component of `path` below `directory`, or nil when it is not below it.
    static func firstComponent(of path: String, under directory: String) -> String? {
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        guard path.hasPrefix(prefix) else { return nil }
        let rest = path.dropFirst(prefix.count)
        return rest.split(separator: "/").first.map(String.init)
    }
}
