import ShifterCore
import ShifterSystem

/// One thing to do while building a container root. Steps are plain values, so a plan can be
/// inspected and tested without root; `RootBuilder` carries them out in order.
public enum PlannedStep: Sendable, Equatable {
    /// Mount the scratch filesystem (tmpfs or ramfs) at the layout's base; `sizeLimit` is nil for
    /// ramfs, which has no size limit.
    case scratch(type: RootfsType, sizeLimit: UInt64?)
    /// Create directories on the host (under the scratch filesystem or the site's mount dirs).
    case hostDirectories([String])
    /// Create, or make root-only (0700), the site's directories that hold the roots and images
    /// (`udiMount`, `loopMount`). A job's root holds its image, volumes and caches, which other
    /// users on a shared node must not reach from the host; root builds and enters it, so nobody
    /// else needs to pass through these directories.
    case privateDirectories([String])
    /// As `privateDirectories`, but mode 0711 (`udiMount` where jobs are entered through their
    /// namespaces): the job's user passes through it to the job's entry directory
    /// (`RootLayout.entryDirectory`); nothing else in it is theirs to open (each root's scratch
    /// filesystem is 0700, each record 0600).
    case searchableDirectories([String])
    /// Mount the image read-only at the image mount: a squashfs file through a loop device, or a
    /// `local:` directory through a bind mount.
    case image(ImageSource)
    /// Mount the overlay: the image below, the scratch's upper layer above, at the root.
    case overlay
    /// Write the user's `/etc/passwd` and `/etc/group` entries, keeping the image's own accounts
    /// (read once the image is mounted).
    case accountFiles
    /// Write a file inside the container (through the overlay, never through a symlink).
    case file(containerPath: String, contents: [UInt8], mode: UInt32)
    /// Copy a host file into the container (e.g. `/etc/hosts`); skipped when the host has none,
    /// and a failure for any other reason stops the build.
    case copyHostFile(hostPath: String, containerPath: String)
    /// A fresh `/proc`.
    case proc
    /// Bind a host path into the container: the site's `/dev`, `/sys`, `/tmp` and `siteFs`.
    case hostBind(source: String, containerPath: String, recursive: Bool, readOnly: Bool,
                  propagation: MountPropagation?, allowDevices: Bool)
    /// A user volume: FROM is resolved inside the container (on the host with the flag `host`) and
    /// checked with the user's credentials.
    case userVolume(VolumeSpec)
    /// A per-node write cache: a sparse file in `directory`, formatted with `mkfs`, loop-mounted
    /// at the target, owned by the user, and unlinked once mounted.
    case perNodeCache(VolumeSpec, directory: String, mkfs: String)
    /// A tmpfs volume: a new tmpfs of `size` bytes at the volume's target, owned by the user,
    /// `nosuid,nodev`; its memory is charged to whoever writes it (the job's memory cgroup).
    case tmpfsVolume(VolumeSpec, size: UInt64)
    /// The `gpu` module: the host's driver libraries and tools, and hidden device nodes.
    case gpu(GPUSetup)
    /// A CDI device node (`--device`): the host's node bound at its path in the container; the
    /// container's `/dev` is the host's, so a node at a path the host's `/dev` lacks is refused.
    case deviceNode(CDIDeviceNode)
    /// The nodes of the devices of the same CDI specs that the job did not ask for, covered so the
    /// container does not show them.
    case hiddenDeviceNodes([String])
    /// A CDI mount: a host path bound into the container with the spec's options.
    case deviceMount(CDIMount)
    /// A CDI hook, in the spec's order once the device's files are in place (a create hook), or
    /// once the root is complete (a start hook): NVIDIA's own hooks done here (`CDIHooks`), any
    /// other program run as the spec says, as root, time-limited. `index` (its place among the
    /// job's hooks) names the files it writes.
    case deviceHook(CDIHook, index: Int)
    /// Run a site script as root with the container root's host path as its argument
    /// (`sitePreMountHook`, `sitePostMountHook`, `module_NAME_roothook`). A failure stops the build.
    case rootHook(script: String, name: String)
    /// Set the propagation of every mount of the root.
    case propagation(MountPropagation)
    /// The job's ssh files (`--ccm`): sshd's configuration and keys, the user's key, `known_hosts`
    /// and `/etc/ssh/ssh_config`, written with the other `/etc` files, before any host path is
    /// bound into the root.
    case sshFiles(SSHSetup)
    /// The tmpfs of the job's sshd log, `sizeLimit` bytes and root's only, below the scratch
    /// filesystem (`RootLayout.sshdLogDirectory`): connections from anyone who reaches the port
    /// fill it, not the container's writable layer.
    case sshdLog(sizeLimit: UInt64)
    /// The cgroup2 group (`JobControlGroup.name`, relative to the hierarchy's mount) that the job's
    /// sshd joins before it drops root, so the epilog ends it and every session at once. Where no
    /// cgroup2 is mounted, a warning, and the sshd runs as before.
    case sshdControlGroup(String)
    /// The job's sshd, started as the user inside the root once the root is complete (the last step).
    case sshd(SSHSetup)
    /// The job's user namespace, owned by the user, with the user's uid and `groups` (the primary
    /// group among them) mapped, and in it a mount namespace whose `/` is the root, pinned in the
    /// job's entry directory (`RootLayout.entryDirectory`) for `shifter` to join without privilege
    /// (`entryMode=userns`). Once the root is complete: the namespace holds copies of its mounts.
    case jobNamespaces(groups: [UInt32])
    /// Make the root's own filesystem (the overlay) read-only, so nobody can write into the
    /// container's `/`; the mounts below it (site mounts, `/tmp`, volumes, per-node caches) stay as
    /// they are (`mountUdiRootWritable=0`). The last step: everything before writes into the root.
    case readOnlyRoot
}

/// Where the image's files come from.
public enum ImageSource: Sendable, Equatable {
    /// A squashfs file in the image store.
    case squashfs(String)
    /// A directory on the node (`local:` images).
    case directory(String)
}

/// A container, computed before anything is mounted.
public struct ContainerPlan: Sendable, Equatable {
    /// Where it is built.
    public var layout: RootLayout
    /// Who it is for.
    public var user: ContainerUser
    /// The steps, in order.
    public var steps: [PlannedStep]
    /// The site's mount propagation, for user volumes that ask for none.
    public var propagation: MountPropagation = .private
    /// Whether the image's loop device reads its file with direct I/O (`imageLoopDirectIO`).
    public var imageLoopDirectIO: Bool = false
}

/// The user a container is built for and entered as.
public struct ContainerUser: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var groups: [UInt32]
    public var name: String
    public var home: String
    public var shell: String
    /// Names of the groups in `groups` (and `gid`), where the host has them.
    public var groupNames: [UInt32: String]

    public init(uid: UInt32, gid: UInt32, groups: [UInt32], name: String, home: String, shell: String,
                groupNames: [UInt32: String] = [:]) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.name = name
        self.home = home
        self.shell = shell
        self.groupNames = groupNames
    }
}

/// Everything a container is planned from.
public struct ContainerRequest: Sendable, Equatable {
    /// The site configuration.
    public var config: SiteConfig
    /// The image to mount.
    public var image: ImageSource
    /// The image's metadata.
    public var metadata: ImageMetadata
    /// The user.
    public var user: ContainerUser
    /// User volumes, validated.
    public var volumes: [VolumeSpec]
    /// The modules to load.
    public var modules: [SiteModule]
    /// Names of the files in the site's `etcPath`, copied into the container's `/etc`.
    public var siteEtcFiles: [String]
    /// The GPU driver to expose, when the `gpu` module is loaded.
    public var gpu: GPUSetup?
    /// The job's sshd, when it asked for one (`--ccm`).
    public var ssh: SSHSetup?
    /// The CDI devices the job asked for (`--device`), resolved against the node's specs.
    public var devices: CDIResolution?
    /// Whether the job's tasks enter through namespaces the prolog makes (`entryMode=userns`).
    public var entersThroughNamespaces = false

    public init(config: SiteConfig, image: ImageSource, metadata: ImageMetadata, user: ContainerUser,
                volumes: [VolumeSpec], modules: [SiteModule],
                siteEtcFiles: [String] = [], gpu: GPUSetup? = nil, ssh: SSHSetup? = nil, devices: CDIResolution? = nil) {
        self.config = config
        self.image = image
        self.metadata = metadata
        self.user = user
        self.volumes = volumes
        self.modules = modules
        self.siteEtcFiles = siteEtcFiles
        self.gpu = gpu
        self.ssh = ssh
        self.devices = devices
    }
}

/// Computes container plans. Pure: no file is read and nothing is mounted here.
public enum ContainerPlanner {
    /// The scratch filesystem's size when the site sets none: enough for `/etc` files and volume
    /// targets, small enough that a user cannot fill a node's memory through it.
    public static let defaultScratchSize: UInt64 = 64 << 20

    /// Where module files appear in the container, as in the old Shifter.
    public static let moduleDirectory = "/opt/udiImage/modules"

    /// The modules' variables, with the GPU driver's directories first on the search paths when
    /// the `gpu` module is loaded.
    public static func moduleEnvironments(_ modules: [SiteModule]) -> [SiteModule] {
        guard modules.contains(where: { $0.name == GPUSetup.moduleName }) else { return modules }
        var driver = SiteModule(name: "gpu-driver")
        driver.environment = GPUSetup(libraries: [], tools: [], hiddenDevices: []).environment
        return modules + [driver]
    }

    /// The command with the modules' user hooks run first, as the user, inside the container:
    /// each hook must succeed before the next, and the command replaces the shell at the end.
    public static func commandWithUserHooks(_ command: [String], modules: [SiteModule]) -> [String] {
        let hooks = modules.compactMap(\.userhook)
        guard !hooks.isEmpty else { return command }
        let script = hooks.map { "'" + $0.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'" }
            .joined(separator: " && ") + " && exec \"$@\""
        return ["/bin/sh", "-c", script, "shifter-userhook"] + command
    }

    /// Plans the root for `request` at `layout`.
    public static func plan(_ request: ContainerRequest, layout: RootLayout) -> ContainerPlan {
        let config = request.config
        let directories: [PlannedStep] = request.entersThroughNamespaces
            ? [.privateDirectories([config.loopMount]), .searchableDirectories([config.udiMount])]
            : [.privateDirectories([config.udiMount, config.loopMount])]
        var steps: [PlannedStep] = directories + [
            .hostDirectories([layout.base, layout.imageMount]),
            .scratch(type: config.rootfsType, sizeLimit: config.rootfsType == .tmpfs ? defaultScratchSize : nil),
            .hostDirectories([layout.upper, layout.work, layout.root]),
            .image(request.image),
            .overlay,
        ]
        steps += etcSteps(request)
        // A CDI spec's mounts and hooks come while the root holds only the image, its /etc files
        // and the spec's own mounts: the linker-cache hook runs the host's ldconfig as root
        // inside the root, which must not reach a host path (/tmp, a site mount, /proc) through it.
        if let devices = request.devices { steps += deviceFileSteps(devices) }
        steps.append(.proc)
        // Every bind is made private (or slave) as it is made: a clone of a shared host mount
        // would otherwise be its peer, and a mount made inside the container (a GPU cover on
        // /dev/nvidia1, a volume on /tmp) would appear on the host too.
        let style = config.mountPropagationStyle
        steps.append(.hostBind(source: "/dev", containerPath: "/dev", recursive: true, readOnly: false,
                               propagation: style, allowDevices: true))
        steps.append(.hostBind(source: "/sys", containerPath: "/sys", recursive: true, readOnly: false,
                               propagation: style, allowDevices: false))
        // The site mounts a user's `umount` volumes leave out (checked at submission: /tmp and
        // siteFs only, never a module's files or a device).
        let leftOut = Set(request.volumes.filter(\.isUmount).map(\.target))
        let siteMounts = config.siteFs.filter { !leftOut.contains($0.target) } + request.modules.flatMap(\.siteFs)
        if !siteMounts.contains(where: { $0.target == "/tmp" }), !leftOut.contains("/tmp") {
            steps.append(.hostBind(source: "/tmp", containerPath: "/tmp", recursive: false, readOnly: false,
                                   propagation: style, allowDevices: false))
        }
        if let hook = config.sitePreMountHook { steps.append(.rootHook(script: hook, name: "sitePreMountHook")) }
        for mount in siteMounts {
            steps.append(.hostBind(source: mount.source, containerPath: mount.target, recursive: mount.recursive,
                                   readOnly: mount.readOnly, propagation: mount.propagation ?? style, allowDevices: false))
        }
        // A module's files are bound read-only rather than copied: the same result for the user,
        // at no cost per node.
        for module in request.modules {
            if let copyPath = module.copyPath {
                steps.append(.hostBind(source: copyPath, containerPath: moduleDirectory + "/" + module.name,
                                       recursive: true, readOnly: true, propagation: style, allowDevices: false))
            }
        }
        if let ssh = request.ssh {
            steps.append(.hostBind(source: ssh.bundle, containerPath: ssh.bundle, recursive: false, readOnly: true,
                                   propagation: style, allowDevices: false))
        }
        if let gpu = request.gpu { steps.append(.gpu(gpu)) }
        if let devices = request.devices { steps += deviceNodeSteps(devices) }
        if let hook = config.sitePostMountHook { steps.append(.rootHook(script: hook, name: "sitePostMountHook")) }
        // Root's scripts run before anything of the user's is mounted: a root hook walking the
        // container must not meet directories the user can change under it.
        for module in request.modules {
            if let hook = module.roothook { steps.append(.rootHook(script: hook, name: "module \(module.name) roothook")) }
        }
        for volume in request.volumes where !volume.isUmount {
            if volume.perNodeCache != nil, let directory = config.perNodeCachePath {
                steps.append(.perNodeCache(volume, directory: directory, mkfs: config.mkfsXfsPath))
            } else if volume.isTmpfs {
                let share = VolumeSpec.tmpfsShare(of: request.volumes, limit: config.tmpfsVolumeSizeLimit)
                steps.append(.tmpfsVolume(volume, size: volume.tmpfsSize ?? share))
            } else {
                steps.append(.userVolume(volume))
            }
        }
        steps.append(.propagation(config.mountPropagationStyle))
        if !config.mountUdiRootWritable { steps.append(.readOnlyRoot) }
        // The spec's start hooks, on the finished root, before any task can enter it.
        if let devices = request.devices { steps += deviceHookSteps(devices, stage: .start) }
        // The namespaces copy the finished root's mounts; the job's sshd then starts in them.
        if request.entersThroughNamespaces { steps.append(.jobNamespaces(groups: namespaceGroups(request.user))) }
        // Last: the user's sessions see the root as the job's tasks do, and nothing after it can
        // fail with the daemon running.
        if let ssh = request.ssh {
            steps += [.sshdLog(sizeLimit: SSHSetup.logSizeLimit), .sshdControlGroup(ssh.controlGroup), .sshd(ssh)]
        }
        return ContainerPlan(layout: layout, user: request.user, steps: steps, propagation: style,
                             imageLoopDirectIO: config.imageLoopDirectIO)
    }

    /// The groups a job's user namespace maps for `user`: the primary group, then the others, once
    /// each, never gid 0. A mapped group is one the user may take inside (`setresgid`), so the
    /// groups a job's CDI specs add are not mapped: outside its root, the namespace would give
    /// them on the whole node.
    static func namespaceGroups(_ user: ContainerUser) -> [UInt32] {
        var seen: Set<UInt32> = []
        return ([user.gid] + user.groups).filter { $0 != 0 && seen.insert($0).inserted }
    }

    /// The CDI devices' mounts, then their hooks in the spec's order (which may use the mounts).
    /// NVIDIA's disable-device-node-modification needs the container's /proc: it is done with the nodes.
    static func deviceFileSteps(_ devices: CDIResolution) -> [PlannedStep] {
        devices.edits.mounts.map(PlannedStep.deviceMount) + deviceHookSteps(devices, stage: .create) { !CDIHooks.needsProc($0) }
    }

    /// The hooks of `stage` that `include` takes, in the spec's order; `index` is a hook's place
    /// among all the job's hooks. Stop hooks are not steps: the epilog runs them
    /// (`PreparedRootState.stopHooks`).
    static func deviceHookSteps(_ devices: CDIResolution, stage: CDIHook.Stage,
                                including include: (CDIHook) -> Bool = { _ in true }) -> [PlannedStep] {
        devices.edits.hooks.enumerated().filter { $0.element.stage == stage && include($0.element) }
            .map { PlannedStep.deviceHook($1, index: $0) }
    }

    /// The CDI devices' nodes, once the container's /dev is the node's: those asked for bound where
    /// they are not already, the same specs' other devices' covered, and the hooks that need /proc.
    static func deviceNodeSteps(_ devices: CDIResolution) -> [PlannedStep] {
        var steps = devices.edits.deviceNodes.map(PlannedStep.deviceNode)
        if !devices.hiddenNodes.isEmpty { steps.append(.hiddenDeviceNodes(devices.hiddenNodes)) }
        return steps + deviceHookSteps(devices, stage: .create, including: CDIHooks.needsProc)
    }

    /// The files of the container's `/etc`: the user's passwd and group entries (keeping the
    /// image's system accounts), name resolution through files, and the host's hosts and resolver.
    static func etcSteps(_ request: ContainerRequest) -> [PlannedStep] {
        var steps: [PlannedStep] = []
        steps.append(.accountFiles)
        steps.append(.file(containerPath: "/etc/nsswitch.conf",
                           contents: Array("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n".utf8),
                           mode: 0o644))
        steps.append(.copyHostFile(hostPath: "/etc/hosts", containerPath: "/etc/hosts"))
        steps.append(.copyHostFile(hostPath: "/etc/resolv.conf", containerPath: "/etc/resolv.conf"))
        if let ssh = request.ssh { steps.append(.sshFiles(ssh)) }
        if let etcPath = request.config.etcPath {
            for name in request.siteEtcFiles.sorted() where !name.contains("/") && name != "." && name != ".." {
                steps.append(.copyHostFile(hostPath: etcPath + "/" + name, containerPath: "/etc/" + name))
            }
        }
        return steps
    }

    /// The names of the files in the site's `etcPath` that go into every container's `/etc`:
    /// regular files and links to them; subdirectories are not copied. A site that names an
    /// `etcPath` must be able to read it: a container without the site's files is an error.
    public static func siteEtcFileNames(_ etcPath: String?) throws(RuntimeError) -> [String] {
        guard let etcPath else { return [] }
        do {
            return try FileSystem.directoryEntries(etcPath).filter { name in
                (try? FileSystem.status(etcPath + "/" + name))?.kind != .directory
            }.sorted()
        } catch {
            throw RuntimeError("etcPath \(etcPath) in udiRoot.conf: couldn't \(error.description)")
        }
    }

    /// The image's passwd lines, less any that clash with the user's name or uid, plus the user.
    public static func passwd(image: String?, user: ContainerUser) -> String {
        var lines = (image ?? "root:x:0:0:root:/root:/bin/sh\n").split(separator: "\n").filter { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 7 else { return false }
            return fields[0] != user.name && fields[2] != "\(user.uid)"
        }.map(String.init)
        lines.append("\(user.name):x:\(user.uid):\(user.gid):\(user.name):\(user.home):\(user.shell)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The image's group lines, less any that clash with the user's groups, plus those groups with
    /// the user as a member.
    public static func group(image: String?, user: ContainerUser) -> String {
        let ids = [user.gid] + user.groups.filter { $0 != user.gid }
        let names = Set(ids.compactMap { user.groupNames[$0] })
        var lines = (image ?? "root:x:0:\n").split(separator: "\n").filter { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 4, let gid = UInt32(fields[2]) else { return false }
            return !ids.contains(gid) && !names.contains(String(fields[0]))
        }.map(String.init)
        for gid in ids where gid != 0 {
            lines.append("\(user.groupNames[gid] ?? "group\(gid)"):x:\(gid):\(user.name)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
