import ShifterCore

/// Where a container root named `name` lives on the node. Everything a root mounts sits under
/// `base` (a scratch tmpfs holding the overlay's upper layer and the root itself) or at
/// `imageMount`, so tearing a root down means unmounting everything under two paths.
public struct RootLayout: Sendable, Equatable {
    /// `job-<id>` for a per-job root, `job-<id>.step-<id>` for a step's own root (`entryMode=userns`),
    /// `private` for a root in `shifter`'s own mount namespace.
    public var name: String
    /// `<udiMount>/<name>`: the scratch filesystem.
    public var base: String
    /// `<loopMount>/<name>`: the read-only image.
    public var imageMount: String

    /// The layout of root `name` under the site's `udiMount` and `loopMount`.
    public init(name: String, udiMount: String, loopMount: String) {
        self.name = name
        self.base = Self.join(udiMount, name)
        self.imageMount = Self.join(loopMount, name)
    }

    /// The layout of the per-job root of job `jobID`.
    public static func job(_ jobID: UInt32, config: SiteConfig) -> RootLayout {
        RootLayout(name: name(job: jobID), udiMount: config.udiMount, loopMount: config.loopMount)
    }

    /// The layout of the root of step `stepID` of job `jobID`, where the step asked for another
    /// image or other volumes than the job's and the site enters containers through namespaces.
    public static func step(_ stepID: UInt32, of jobID: UInt32, config: SiteConfig) -> RootLayout {
        RootLayout(name: name(job: jobID, step: stepID), udiMount: config.udiMount, loopMount: config.loopMount)
    }

    /// The name of job `jobID`'s root, or of its step `stepID`'s.
    public static func name(job jobID: UInt32, step stepID: UInt32? = nil) -> String {
        "job-\(jobID)" + (stepID.map { stepInfix + String($0) } ?? "")
    }

    /// The part of a step root's name that follows its job's name.
    public static let stepInfix = ".step-"

    /// The overlay's writable layer.
    public var upper: String { base + "/upper" }
    /// The overlay's work directory.
    public var work: String { base + "/work" }
    /// The container's `/`.
    public var root: String { base + "/root" }
    /// The tmpfs of the job's sshd log (`--ccm`), of its own so a flood of connections fills
    /// nothing else.
    public var sshdLogDirectory: String { base + "/sshd-log" }
    /// The record of what a per-job root was built for.
    public var stateFile: String { base + "/state.json" }

    /// The job's entry (`entryMode=userns`): a small tmpfs of the job's user's, mode 0500, beside
    /// the root, holding the pins of the job's namespaces and a copy of the root's record.
    public var entryDirectory: String { base + ".entry" }
    /// The bind mount that pins the job's user namespace.
    public var userNamespacePin: String { entryDirectory + "/user" }
    /// The bind mount that pins the job's mount namespace, whose / is the root.
    public var mountNamespacePin: String { entryDirectory + "/mnt" }
    /// The copy of the root's record, with the image's settings, that `shifter` reads as the user.
    public var entryRecord: String { entryDirectory + "/state.json" }

    /// Where a failed prolog leaves its reason, for the job's steps to report.
    public var failureFile: String { base + ".failed" }

    /// Left on the node before the root's first per-node cache file is created on the parallel
    /// filesystem: the epilog looks for abandoned cache files there only when it is present, so a
    /// job without a cache costs the shared directory nothing.
    public var cacheMarkerFile: String { base + ".caches" }

    /// The host path of a path inside the container (without resolving symlinks).
    public func hostPath(_ containerPath: String) -> String {
        containerPath == "/" ? root : root + containerPath
    }

    /// `directory/name`, with one slash whether `directory` ends in one or not.
    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
