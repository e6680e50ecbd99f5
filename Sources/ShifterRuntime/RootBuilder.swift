#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// A failure while building, entering or tearing down a container, as one line a user can act on.
public struct RuntimeError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure it is, for a caller that answers each differently (the C ABI maps
    /// each to its own `SHIFTER_E*` status).
    public enum Kind: Sendable, Equatable, CaseIterable {
        /// The request itself is wrong: a malformed image reference, volume or option.
        case invalidRequest
        /// The user may not have what was asked: a private image, a local image where the site
        /// allows none, a root for root.
        case permission
        /// What was asked for does not exist: an image not in the store.
        case notFound
        /// The node failed to do it: a mount, a loop device, a lookup, a helper program.
        case system
    }

    public var message: String
    public var kind: Kind
    public init(_ message: String, kind: Kind = .system) {
        self.message = message
        self.kind = kind
    }
    public var description: String { message }

    /// `error`, from a step that mixes system calls with its own checks, as one line: a failed
    /// call as "couldn't …" under `context`, a `RuntimeError` as it is, anything else under `context`.
    static func from(_ error: any Error, _ context: (String) -> RuntimeError = { RuntimeError($0) }) -> RuntimeError {
        switch error {
        case let error as SystemError: context("couldn't \(error.description)")
        case let error as RuntimeError: error
        default: context("\(error)")
        }
    }
}

/// Carries out a `ContainerPlan`. If any step fails, everything already done is undone before the
/// error is thrown, so a failed build leaves no mount, loop device or directory behind.
public struct RootBuilder {
    public let plan: ContainerPlan

    public init(plan: ContainerPlan) { self.plan = plan }

    /// Builds the root.
    public func build() throws(RuntimeError) {
        var timer = PhaseTimer()
        try build(timer: &timer)
    }

    /// Builds the root, adding the time of each step to its phase in `timer`. What a step can do
    /// without, and the job should know (no cgroup2 for the sshd), goes to `warn`.
    public func build(timer: inout PhaseTimer, warn: (String) -> Void = { _ in }) throws(RuntimeError) {
        do {
            for step in plan.steps {
                try timer.measure(Self.phase(of: step)) { () throws(RuntimeError) in try run(step, warn: warn) }
            }
        } catch {
            // A step that started something in the root (the job's sshd) leaves nothing running.
            RootTeardown.teardown(plan.layout, killProcesses: true, controlGroups: controlGroups())
            throw error
        }
    }

    /// The job's sshd group the plan makes, where it exists.
    private func controlGroups() -> [ControlGroup] {
        guard let mount = ControlGroup.unifiedMountPoint() else { return [] }
        return plan.steps.compactMap { step in
            guard case .sshdControlGroup(let name) = step else { return nil }
            let group = ControlGroup(path: mount + "/" + name)
            return group.exists ? group : nil
        }
    }

    /// The prolog phase (`NodeMetrics.prologPhases`) a step belongs to.
    static func phase(of step: PlannedStep) -> String {
        switch step {
        case .privateDirectories, .searchableDirectories, .hostDirectories, .scratch, .image, .overlay: "image"
        case .accountFiles, .file, .copyHostFile: "etc"
        case .proc, .hostBind, .userVolume, .tmpfsVolume, .propagation, .readOnlyRoot: "mounts"
        case .perNodeCache: "cache"
        case .gpu: "gpu"
        case .deviceNode, .hiddenDeviceNodes, .deviceMount, .deviceHook: "devices"
        case .rootHook: "hooks"
        case .jobNamespaces: "namespaces"
        case .sshFiles, .sshdLog, .sshdControlGroup, .sshd: "sshd"
        }
    }

    private var layout: RootLayout { plan.layout }

    /// The user as the container's passwd shows them. sshd logs a user in only with a shell that
    /// exists, so where the job has an sshd and the image lacks the user's shell (a host's
    /// /bin/bash in a busybox image), the entry gives /bin/sh.
    private func accountUser() -> ContainerUser {
        var user = plan.user
        let hasSSHD = plan.steps.contains { if case .sshFiles = $0 { true } else { false } }
        guard hasSSHD else { return user }
        do throws(SystemError) {
            let shell = try ContainedPath(root: layout.root, path: user.shell)
            if try shell.status().kind == .regular { return user }
        } catch {}
        user.shell = "/bin/sh"
        return user
    }

    private func run(_ step: PlannedStep, warn: (String) -> Void) throws(RuntimeError) {
        do {
            switch step {
            case .hostDirectories(let paths):
                for path in paths { try FileSystem.makeDirectories(path) }
            case .privateDirectories(let paths):
                for path in paths {
                    try makePrivate(path)
                    try makeUnbindable(path, warn: warn)
                }
            case .searchableDirectories(let paths):
                for path in paths {
                    try makePrivate(path, searchable: true)
                    try makeUnbindable(path, warn: warn)
                }
            case .jobNamespaces(let groups):
                try JobNamespaces.make(layout: layout, user: plan.user, groups: groups)
            case .scratch(let type, let sizeLimit):
                // Root-only, like udiMount: the container's own / is the overlay below it.
                var data = "mode=0700"
                if let sizeLimit { data += ",size=\(sizeLimit)" }
                try Mounts.mount(source: "shifter", target: layout.base, type: type.rawValue,
                                 flags: [.noSetuid, .noDevices], data: data)
                // What is mounted below the root stays in the root, whatever udiMount's parent is.
                try Mounts.setPropagation(layout.base, .privatePropagation, recursive: false)
            case .image(.squashfs(let file)):
                try mountImage(file)
            case .image(.directory(let directory)):
                try mountLocalImage(directory)
            case .overlay:
                let data = "lowerdir=\(layout.imageMount),upperdir=\(layout.upper),workdir=\(layout.work)"
                try Mounts.mount(source: "shifter", target: layout.root, type: "overlay",
                                 flags: [.noSetuid, .noDevices], data: data)
            case .accountFiles:
                let imagePasswd = try imageAccounts("/etc/passwd")
                let imageGroup = try imageAccounts("/etc/group")
                let passwd = ContainerPlanner.passwd(image: imagePasswd.map { String(decoding: $0, as: UTF8.self) },
                                                     user: accountUser())
                let group = ContainerPlanner.group(image: imageGroup.map { String(decoding: $0, as: UTF8.self) },
                                                   user: plan.user)
                try ContainedPath.writeFile(root: layout.root, path: "/etc/passwd", Array(passwd.utf8), mode: 0o644)
                try ContainedPath.writeFile(root: layout.root, path: "/etc/group", Array(group.utf8), mode: 0o644)
            case .file(let path, let contents, let mode):
                try ContainedPath.writeFile(root: layout.root, path: path, contents, mode: mode_t(mode))
            case .copyHostFile(let hostPath, let containerPath):
                try copyHostFile(hostPath, to: containerPath)
            case .proc:
                let target = try ContainedPath.makingDirectories(root: layout.root, path: "/proc")
                try Mounts.mount(source: "proc", target: target.procPath, type: "proc",
                                 flags: [.noSetuid, .noDevices, .noExec])
            case .hostBind(let source, let containerPath, let recursive, let readOnly, let propagation, let allowDevices):
                try bindHostPath(source, containerPath, recursive: recursive, readOnly: readOnly,
                                 propagation: propagation, allowDevices: allowDevices)
            case .userVolume(let volume):
                try UserVolumeMounter(layout: layout, user: plan.user, propagation: plan.propagation).mount(volume)
            case .perNodeCache(let volume, let directory, let mkfs):
                try PerNodeCache(layout: layout, user: plan.user).create(volume, directory: directory, mkfs: mkfs)
            case .tmpfsVolume(let volume, let size):
                try mountTmpfsVolume(volume, size: size)
            case .gpu(let setup):
                try exposeGPU(setup)
            case .deviceNode(let node):
                try CDIDevices.bindNode(node, layout: layout)
            case .hiddenDeviceNodes(let paths):
                try hideDeviceNodes(paths)
            case .deviceMount(let mount):
                try CDIDevices.bindMount(mount, layout: layout)
            case .deviceHook(let hook, let index):
                try CDIHooks.runInStage(hook, index: index, layout: layout, warn: warn)
            case .rootHook(let script, let name):
                try runHook(script, name: name)
            case .propagation(let style):
                try Mounts.setPropagation(layout.root, style == .slave ? .slavePropagation : .privatePropagation)
            case .readOnlyRoot:
                try Mounts.makeReadOnly(ContainedPath(hostPath: layout.root))
            case .sshFiles(let setup):
                try ContainerSSH.writeFiles(setup, layout: layout, user: plan.user)
            case .sshdLog(let sizeLimit):
                try ContainerSSH.mountLog(layout: layout, sizeLimit: sizeLimit)
            case .sshdControlGroup(let name):
                try ContainerSSH.makeControlGroup(name, warn: warn)
            case .sshd(let setup):
                try ContainerSSH.start(setup, layout: layout, user: plan.user,
                                       inNamespaces: plan.steps.contains { if case .jobNamespaces = $0 { true } else { false } })
            }
        } catch {
            throw RuntimeError.from(error)
        }
    }

    /// A tmpfs volume: `size` bytes and one inode per KiB of it (many tiny files cost memory the
    /// size does not count), at a target made in the container's own layer, never through a
    /// symlink, owned by the user.
    private func mountTmpfsVolume(_ volume: VolumeSpec, size: UInt64) throws(RuntimeError) {
        let describe = { (reason: String) in RuntimeError("volume \"\(volume.canonical)\": \(reason)") }
        try VolumeTargetAccess.check(volume, layout: layout, user: plan.user)
        let isDirectory: Bool
        do throws(SystemError) {
            let target = try ContainedPath.makingDirectories(root: layout.root, path: volume.target, strict: true)
            isDirectory = try target.status().kind == .directory
            if isDirectory {
                try Mounts.mountNewFilesystem(type: "tmpfs", device: "shifter-tmpfs",
                                              options: [("size", String(size)), ("nr_inodes", String(max(size / 1024, 1024)))],
                                              onto: target, attributes: [.noSetuid, .noDevices], uid: plan.user.uid,
                                              gid: plan.user.gid)
            }
        } catch {
            throw describe("couldn't \(error.description)")
        }
        if !isDirectory { throw describe("target \(volume.target) exists in the image and is not a directory") }
    }

    /// Makes `path` (udiMount, loopMount) a mount of its own that no bind copies (`MS_UNBINDABLE`):
    /// another container's recursive bind of a host directory above it (a volume of `/`) then
    /// leaves every job's root and image out, where a copy would hold their mount points busy after
    /// the job (the epilog fails, the node drains) and copies of copies would nest. A path that is
    /// not a mount point yet is bound onto itself, under a lock on the directory, so that
    /// concurrent builds do not stack two binds; where jobs' mounts already lie below it (a node
    /// upgraded while jobs run), a bind would hide them, so it waits for a build that finds none.
    private func makeUnbindable(_ path: String, warn: (String) -> Void) throws(RuntimeError) {
        do {
            if try !Mounts.makeUnbindableMountPoint(path) {
                warn("\(path) holds mounts of running jobs and is not a mount point yet: a host volume of a directory above it copies them until a build finds none (then it becomes an unbindable mount)")
            }
        } catch {
            throw RuntimeError("couldn't make \(path) a mount that binds do not copy: \(error.description)")
        }
    }

    /// Creates `path` mode 0700 (0711 where `searchable`), or takes group and other permissions
    /// (but search) away from an existing one, which must be a directory owned by root.
    private func makePrivate(_ path: String, searchable: Bool = false) throws(RuntimeError) {
        let status: FileStatus
        do throws(SystemError) {
            try FileSystem.makeDirectories(path, mode: searchable ? 0o711 : 0o700)
            status = try FileSystem.linkStatus(path)
        } catch {
            throw RuntimeError("couldn't \(error.description)")
        }
        guard status.kind == .directory, status.uid == 0 else {
            throw RuntimeError("\(path) (udiMount or loopMount in udiRoot.conf) must be a directory owned by root")
        }
        let wanted = searchable ? (status.mode & 0o7700) | 0o011 : status.mode & 0o7700
        if status.mode & 0o7777 != wanted {
            do throws(SystemError) {
                try FileSystem.setMode(path, mode_t(wanted))
            } catch {
                throw RuntimeError("couldn't \(error.description)")
            }
        }
    }

    /// The image's own account file at `path`, or nil when the image has none. One that exists but
    /// cannot be read is an error: writing the user's entries over it would drop the image's
    /// accounts without a word.
    private func imageAccounts(_ path: String) throws(RuntimeError) -> [UInt8]? {
        do {
            return try ContainedPath.readFile(root: layout.root, path: path, limit: 16 << 20)
        } catch where error.errno == ENOENT {
            return nil
        } catch {
            throw RuntimeError("the image's \(path) cannot be read: \(error.description) (it must be a regular file of at most 16 MiB; fix the image)")
        }
    }

    /// Copies a host file into the container. Only a host without the file is skipped: one that
    /// cannot be read (a directory, too large, unreadable) would leave the container without the
    /// site's file, or with the image's, and nobody would know.
    private func copyHostFile(_ hostPath: String, to containerPath: String) throws(RuntimeError) {
        let contents: [UInt8]
        do {
            contents = try FileSystem.readFile(hostPath)
        } catch where error.errno == ENOENT {
            return
        } catch {
            throw RuntimeError("couldn't copy host file \(hostPath) to \(containerPath) in the container: \(error.description) (it must be a regular file of at most 16 MiB that root can read; remove it or fix it)")
        }
        do {
            try ContainedPath.writeFile(root: layout.root, path: containerPath, contents, mode: 0o644)
        } catch {
            throw RuntimeError("couldn't copy host file \(hostPath) to \(containerPath) in the container: \(error.description)")
        }
    }

    /// A `local:` image is bound only if the user may open its directory: the check runs as the
    /// user, and the directory bound is the one checked.
    private func mountLocalImage(_ directory: String) throws(RuntimeError) {
        let describe = { (reason: String) in RuntimeError("image \"local:\(directory)\": \(reason)") }
        let user = plan.user
        let opened = try LocalImageAccess.check(directory, uid: user.uid, gid: user.gid, groups: user.groups + [user.gid],
                                                userName: user.name)
        do {
            let source = try ContainedPath(hostPath: directory)
            let status = try source.status()
            guard status.kind == .directory, opened.device == status.device, opened.inode == status.inode else {
                throw describe("it changed while it was being checked")
            }
            let target = try ContainedPath(hostPath: layout.imageMount)
            try Mounts.bind(from: source, onto: target, recursive: false,
                            attributes: [.readOnly, .noSetuid, .noDevices], propagation: .private)
        } catch {
            throw RuntimeError.from(error, describe)
        }
    }

    /// Binds each driver file under its own name (a symlink's target under the link's name) and
    /// covers the device nodes the job may not use with an empty file nobody may open.
    private func exposeGPU(_ setup: GPUSetup) throws(SystemError) {
        for (files, directory) in [(setup.libraries, GPUSetup.libraryDirectory), (setup.tools, GPUSetup.toolDirectory)] {
            for file in files {
                let name = String(file.split(separator: "/").last ?? "")
                let source = try ContainedPath(hostPath: file)
                let target = try ContainedPath.makingFile(root: layout.root, path: directory + "/" + name)
                try Mounts.bind(from: source, onto: target, recursive: false, attributes: [.readOnly, .noSetuid, .noDevices])
            }
        }
        try hideDeviceNodes(setup.hiddenDevices)
    }

    /// Covers each of `devices` (paths under the container's `/dev`) with an empty file no one
    /// may read: the container shows the node's name, not the device. A node this node does not
    /// have (a CDI spec's device that is absent) has nothing to cover.
    private func hideDeviceNodes(_ devices: [String]) throws(SystemError) {
        guard !devices.isEmpty else { return }
        let cover = layout.base + "/hidden-device"
        if !FileSystem.exists(cover) { try FileSystem.writeFile(cover, [], mode: 0) }
        let source = try ContainedPath(hostPath: cover)
        for device in devices {
            let target: ContainedPath
            do {
                target = try ContainedPath(root: layout.root, path: device, followFinal: false)
            } catch where error.errno == ENOENT {
                continue
            }
            try Mounts.bind(from: source, onto: target, recursive: false, attributes: [.readOnly, .noSetuid, .noDevices])
        }
    }

    /// How long a site hook may run before it and everything it started are killed and the build
    /// fails: a hook that hangs must not hold the prolog, and the job's nodes, forever.
    static let hookTimeLimit: Duration = .seconds(120)

    /// Runs a site script with `/bin/sh SCRIPT ROOT`, so it needs no execute bit.
    func runHook(_ script: String, name: String, timeLimit: Duration = hookTimeLimit) throws(RuntimeError) {
        try Self.runScript(script, name: name, root: layout.root,
                           environment: ["SHIFTER_ROOT=\(layout.root)", "SHIFTER_USER=\(plan.user.name)",
                                         "SHIFTER_UID=\(plan.user.uid)", "SHIFTER_GID=\(plan.user.gid)"],
                           timeLimit: timeLimit)
    }

    /// Runs a site or module script as root with the container root as `$1`; a failure, or a
    /// script still running after `timeLimit` (killed with what it started), is an error naming
    /// the script (`name`) and its last line of output.
    static func runScript(_ script: String, name: String, root: String, environment: [String],
                          timeLimit: Duration = hookTimeLimit) throws(RuntimeError) {
        let outcome: ProgramRunner.Outcome
        do {
            outcome = try ProgramRunner.run("/bin/sh", [script, root], environment: environment, timeLimit: timeLimit)
        } catch {
            throw RuntimeError("\(name) \(script): couldn't \(error.description)")
        }
        if outcome.timedOut {
            throw RuntimeError("\(name) \(script) did not finish within \(timeLimit.components.seconds) s and was killed with the processes it started; make it return sooner, or start long-running work detached from the hook")
        }
        guard outcome.status == 0 else {
            let lines = outcome.output.split(separator: "\n")
            let detail = lines.last.map { ": " + $0 } ?? ""
            throw RuntimeError("\(name) \(script) failed with status \(outcome.status)\(detail)")
        }
    }

    private func mountImage(_ file: String) throws(SystemError) {
        let device = try LoopDevice.attach(file: file, readOnly: true, directIO: plan.imageLoopDirectIO)
        do {
            try Mounts.mount(source: device.path, target: layout.imageMount, type: "squashfs",
                             flags: [.readOnly, .noSetuid, .noDevices])
        } catch {
            device.detach()
            throw error
        }
        device.release()
        try Mounts.setPropagation(layout.imageMount, .privatePropagation, recursive: false)
    }

    private func bindHostPath(_ source: String, _ containerPath: String, recursive: Bool, readOnly: Bool,
                              propagation: MountPropagation?, allowDevices: Bool) throws(SystemError) {
        let sourcePath = try ContainedPath(hostPath: source)
        let target = try sourcePath.status().kind == .directory
            ? try ContainedPath.makingDirectories(root: layout.root, path: containerPath)
            : try ContainedPath.makingFile(root: layout.root, path: containerPath)
        var attributes: BindAttributes = [.noSetuid]
        if !allowDevices { attributes.insert(.noDevices) }
        if readOnly { attributes.insert(.readOnly) }
        try Mounts.bind(from: sourcePath, onto: target, recursive: recursive, attributes: attributes,
                        propagation: BindPropagation(propagation))
    }
}

extension BindPropagation {
    init(_ propagation: MountPropagation?) {
        switch propagation {
        case .none: self = .unchanged
        case .some(.private): self = .private
        case .some(.slave): self = .slave
        }
    }
}
