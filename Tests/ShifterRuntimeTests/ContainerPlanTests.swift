#if canImport(Glibc)
import Glibc
#endif
@testable import ShifterCore
import ShifterSystem
import Testing
@testable import ShifterRuntime

private func siteConfig(_ extra: String = "") throws -> SiteConfig {
    let text = """
        udiMount=/var/udiMount
        loopMount=/var/udiLoopMount
        imagePath=/images
        siteFs=/home:/home;/scratch:/scratch:ro
        perNodeCachePath=/pfs/cache
        perNodeCacheSizeLimit=10G
        \(extra)
        """
    return try SiteConfig.parse(text, source: "test").config
}

private let user = ContainerUser(uid: 1000, gid: 100, groups: [100, 2000], name: "alice", home: "/home/alice",
                                 shell: "/bin/bash", groupNames: [100: "users", 2000: "proj"])

private func request(_ config: SiteConfig, volumes: [VolumeSpec] = []) -> ContainerRequest {
    ContainerRequest(config: config, image: .squashfs("/images/abc.squashfs"),
                     metadata: ImageMetadata(digest: "sha256:" + String(repeating: "a", count: 64)),
                     user: user, volumes: volumes, modules: [])
}

@Suite struct ContainerPlanTests {
    @Test func layoutKeepsEverythingUnderTwoPaths() throws {
        let layout = RootLayout.job(42, config: try siteConfig())
        #expect(layout.base == "/var/udiMount/job-42")
        #expect(layout.imageMount == "/var/udiLoopMount/job-42")
        #expect(layout.root == "/var/udiMount/job-42/root")
        #expect(layout.stateFile == "/var/udiMount/job-42/state.json")
        #expect(layout.failureFile == "/var/udiMount/job-42.failed")
    }

    @Test func planMountsImageThenOverlayThenEtcThenSystemThenSiteThenVolumes() throws {
        let config = try siteConfig()
        let volumes = try VolumeSpec.parseList("/data:/data:ro;/s:/s:tmpfs;/t:/t:tmpfs=16M")
        let plan = ContainerPlanner.plan(request(config, volumes: volumes), layout: RootLayout.job(1, config: config))
        let kinds = stepNames(plan)
        #expect(kinds == ["private dirs", "dirs", "scratch", "dirs", "image", "overlay", "accounts", "file", "copy", "copy", "proc",
                          "bind:/dev", "bind:/sys", "bind:/tmp", "bind:/home", "bind:/scratch", "volume:/data",
                          "tmpfs:/s:\((1 << 30) - (16 << 20))", "tmpfs:/t:\(16 << 20)", "propagation"])
    }

    /// CDI devices: the spec's mounts and its hooks while the root holds only the image and its
    /// /etc (the linker-cache hook runs ldconfig as root in it); the nodes once /dev is the node's
    /// and the site's mounts are made; the hook that needs /proc with them; the user's volumes after all.
    @Test func cdiDeviceStepsComeWhereTheRootHoldsNothingOfTheHostsOrTheUsers() throws {
        let config = try siteConfig("sitePostMountHook=/etc/shifter/post.sh")
        var devices = CDIResolution(devices: [CDIDeviceName(vendor: "example.com", deviceClass: "gpu", name: "0")])
        devices.edits.deviceNodes = [CDIDeviceNode(path: "/dev/example0")]
        devices.edits.mounts = [CDIMount(hostPath: "/opt/driver/lib", containerPath: "/usr/lib/example", options: ["ro"])]
        devices.edits.hooks = ["update-ldcache", "disable-device-node-modification", "create-symlinks"].map {
            CDIHook(hookName: "createContainer", path: "/usr/bin/nvidia-cdi-hook", arguments: ["nvidia-cdi-hook", $0])
        }
        // A start hook runs on the finished root; a stop hook is the epilog's, in no step.
        devices.edits.hooks += [CDIHook(hookName: "poststart", path: "/opt/vendor/started"),
                                CDIHook(hookName: "poststop", path: "/opt/vendor/stopped"),
                                CDIHook(hookName: "startContainer", path: "/opt/vendor/starting")]
        devices.hiddenNodes = ["/dev/example1"]
        var withDevices = request(config, volumes: try VolumeSpec.parseList("/data:/data"))
        withDevices.devices = devices
        let kinds = stepNames(ContainerPlanner.plan(withDevices, layout: RootLayout.job(1, config: config)))
        #expect(kinds == ["private dirs", "dirs", "scratch", "dirs", "image", "overlay", "accounts", "file", "copy", "copy",
                          "device mount:/usr/lib/example", "device hook 0:update-ldcache", "device hook 2:create-symlinks",
                          "proc", "bind:/dev", "bind:/sys", "bind:/tmp", "bind:/home", "bind:/scratch",
                          "device node:/dev/example0", "hidden:/dev/example1", "device hook 1:disable-device-node-modification",
                          "hook:sitePostMountHook", "volume:/data", "propagation",
                          "device hook 3:/opt/vendor/started", "device hook 5:/opt/vendor/starting"])
    }

    private func stepNames(_ plan: ContainerPlan) -> [String] {
        plan.steps.map { step -> String in
            switch step {
            case .hostDirectories: "dirs"
            case .privateDirectories: "private dirs"
            case .searchableDirectories(let paths): "searchable:\(paths.joined(separator: ","))"
            case .jobNamespaces(let groups): "namespaces:\(groups.map(String.init).joined(separator: ","))"
            case .scratch: "scratch"
            case .image: "image"
            case .overlay: "overlay"
            case .accountFiles: "accounts"
            case .file: "file"
            case .copyHostFile: "copy"
            case .proc: "proc"
            case .hostBind(_, let target, _, _, _, _): "bind:\(target)"
            case .userVolume(let v): "volume:\(v.target)"
            case .perNodeCache(let v, _, _): "cache:\(v.target)"
            case .tmpfsVolume(let v, let size): "tmpfs:\(v.target):\(size)"
            case .gpu: "gpu"
            case .deviceNode(let node): "device node:\(node.path)"
            case .hiddenDeviceNodes(let paths): "hidden:\(paths.joined(separator: ","))"
            case .deviceMount(let mount): "device mount:\(mount.containerPath)"
            case .deviceHook(let hook, let index): "device hook \(index):\(hook.arguments.dropFirst().first ?? hook.path)"
            case .rootHook(_, let name): "hook:\(name)"
            case .propagation: "propagation"
            case .readOnlyRoot: "read-only root"
            case .sshFiles: "ssh files"
            case .sshdLog: "sshd log"
            case .sshdControlGroup: "sshd cgroup"
            case .sshd: "sshd"
            }
        }
    }

    /// entryMode=userns: udiMount is searchable (the user reaches the job's entry through it),
    /// loopMount stays root's; the namespaces copy the finished root (after it is made read-only
    /// and the start hooks ran) and come before the job's sshd, which starts in them. The gid map
    /// holds the user's own groups, once each, never 0; not the groups the devices add.
    @Test func namespacesAreMadeFromTheFinishedRootBeforeTheSshd() throws {
        let config = try siteConfig("entryMode=userns\nmountUdiRootWritable=0\nsshPath=/opt/shifter/ssh")
        #expect(config.entryMode == .userns)
        var devices = CDIResolution(devices: [CDIDeviceName(vendor: "example.com", deviceClass: "gpu", name: "0")])
        devices.edits.additionalGroups = [44, 100, 0]
        devices.edits.hooks = [CDIHook(hookName: "poststart", path: "/opt/vendor/started")]
        var userns = request(config)
        userns.entersThroughNamespaces = true
        userns.devices = devices
        userns.ssh = SSHSetup(bundle: "/opt/shifter/ssh", port: 1204, defaultPort: 1204, nodePorts: [],
                              keys: SSHKeys(userPrivate: "a", userPublic: "b", hostPrivate: "c", hostPublic: "d"), jobID: 1, node: nil)
        let kinds = stepNames(ContainerPlanner.plan(userns, layout: RootLayout.job(1, config: config)))
        #expect(Array(kinds.prefix(3)) == ["private dirs", "searchable:/var/udiMount", "dirs"])
        #expect(Array(kinds.suffix(6)) == ["read-only root", "device hook 0:/opt/vendor/started", "namespaces:100,2000",
                                          "sshd log", "sshd cgroup", "sshd"])
        // Without it (setuid entry, a private root) there are no namespaces and udiMount stays root's.
        var setuid = userns
        setuid.entersThroughNamespaces = false
        let plain = stepNames(ContainerPlanner.plan(setuid, layout: RootLayout.job(1, config: config)))
        #expect(!plain.contains { $0.hasPrefix("namespaces") || $0.hasPrefix("searchable") })
        #expect(plain.first == "private dirs")
    }

    @Test func theEntryLiesBesideTheRootUnderUdiMount() throws {
        let layout = RootLayout.job(42, config: try siteConfig())
        #expect(layout.entryDirectory == "/var/udiMount/job-42.entry")
        #expect(layout.userNamespacePin == "/var/udiMount/job-42.entry/user")
        #expect(layout.mountNamespacePin == "/var/udiMount/job-42.entry/mnt")
        #expect(layout.entryRecord == "/var/udiMount/job-42.entry/state.json")
    }

    @Test func aRecordKeepsTheImagesSettingsForTheEntry() throws {
        var state = PreparedRootState(jobID: 7, uid: 1000, gid: 100, image: "sha256:" + String(repeating: "b", count: 64),
                                      volumes: [], modules: ["mpich"])
        #expect(PreparedRootState.decode(state.encoded())?.imageSettings == nil)
        var settings = ImageMetadata(digest: "")
        settings.env = ["PATH=/usr/bin", "A=b c"]
        settings.entrypoint = ["/entry.sh"]
        settings.workdir = "/work"
        state.imageSettings = settings
        let decoded = try #require(PreparedRootState.decode(state.encoded()))
        #expect(decoded == state)
        #expect(decoded.imageSettings?.cmd == nil)
    }

    @Test(arguments: ["setuid", "userns"])
    func entryModeIsASiteChoice(mode: String) throws {
        #expect(try siteConfig("entryMode=\(mode)").entryMode.rawValue == mode)
        #expect(try siteConfig().entryMode == .setuid)
        #expect(throws: SiteConfigError.self) { try siteConfig("entryMode=rootless") }
    }

    @Test func aNamespaceFailureNamesTheStepAndTheSetting() {
        let none = JobNamespaces.failureMessage(Namespaces.MakeError(step: .gidMap, errno: EINVAL), uid: 1000)
        #expect(none.hasPrefix("couldn't write the user namespace's gid_map for the job (entryMode=userns): Invalid argument"))
        let limited = JobNamespaces.failureMessage(Namespaces.MakeError(step: .user, errno: ENOSPC), uid: 1000)
        #expect(limited.contains("user.max_user_namespaces"))
    }

    @Test func imageLoopModeComesFromTheSiteConfig() throws {
        let buffered = try siteConfig()
        #expect(!ContainerPlanner.plan(request(buffered), layout: RootLayout.job(1, config: buffered)).imageLoopDirectIO)
        let direct = try siteConfig("imageLoopDirectIO=1")
        #expect(ContainerPlanner.plan(request(direct), layout: RootLayout.job(1, config: direct)).imageLoopDirectIO)
    }

    @Test(arguments: [("", false), ("mountUdiRootWritable=1", false), ("mountUdiRootWritable=0", true)])
    func aReadOnlyRootIsMadeReadOnlyLastOfAll(setting: String, readOnly: Bool) throws {
        let config = try siteConfig(setting + "\nsitePostMountHook=/etc/shifter/post.sh")
        let volume = try VolumeSpec.parse("/data:/data")
        let plan = ContainerPlanner.plan(request(config, volumes: [volume]), layout: RootLayout.job(1, config: config))

        #expect(plan.steps.contains(.readOnlyRoot) == readOnly)
        if readOnly { #expect(plan.steps.last == .readOnlyRoot) }
    }

    /// tmpfs is limited; ramfs cannot be, and is still accepted, without a warning, for old site files.
    @Test(arguments: [("", RootfsType.tmpfs, ContainerPlanner.defaultScratchSize as UInt64?),
                      ("rootfsType=tmpfs", .tmpfs, ContainerPlanner.defaultScratchSize),
                      ("rootfsType=ramfs", .ramfs, nil)])
    func scratchFilesystemAndItsLimit(setting: String, type: RootfsType, limit: UInt64?) throws {
        let text = "udiMount=/var/udiMount\nloopMount=/var/udiLoopMount\nimagePath=/images\n" + setting
        let (config, warnings) = try SiteConfig.parse(text, source: "test")
        let plan = ContainerPlanner.plan(request(config), layout: RootLayout.job(1, config: config))

        #expect(warnings.isEmpty)
        #expect(plan.steps.contains(.scratch(type: type, sizeLimit: limit)))
    }

    @Test func siteMountsKeepTheirFlagsAndOnlyDevAllowsDevices() throws {
        let config = try siteConfig()
        let plan = ContainerPlanner.plan(request(config), layout: RootLayout.job(1, config: config))
        for step in plan.steps {
            guard case .hostBind(let source, let target, _, let readOnly, _, let allowDevices) = step else { continue }
            #expect(allowDevices == (target == "/dev"), "devices on \(target)")
            #expect(readOnly == (source == "/scratch"), "read-only on \(target)")
        }
    }

    @Test func siteTmpReplacesTheDefaultTmp() throws {
        let config = try siteConfig("siteFs=/local/tmp:/tmp")
        let plan = ContainerPlanner.plan(request(config), layout: RootLayout.job(1, config: config))
        let tmpSources = plan.steps.compactMap { step -> String? in
            if case .hostBind(let source, "/tmp", _, _, _, _) = step { return source }
            return nil
        }
        #expect(tmpSources == ["/local/tmp"])
    }

    @Test func umountVolumesLeaveOutTheirSiteMountAndMountNothing() throws {
        let config = try siteConfig()
        let volumes = try VolumeSpec.parseList("/tmp:/tmp:umount;/home:/home:umount")
        let plan = ContainerPlanner.plan(request(config, volumes: volumes), layout: RootLayout.job(1, config: config))
        let binds = plan.steps.compactMap { step -> String? in
            if case .hostBind(_, let target, _, _, _, _) = step { return target }
            return nil
        }
        #expect(binds == ["/dev", "/sys", "/scratch"])
        #expect(!plan.steps.contains { if case .userVolume = $0 { true } else { false } })
    }

    @Test func perNodeCacheVolumesBecomeCacheSteps() throws {
        let config = try siteConfig()
        let volume = try VolumeSpec.parse("/x:/cache:perNodeCache=size=1G")
        let plan = ContainerPlanner.plan(request(config, volumes: [volume]), layout: RootLayout.job(1, config: config))
        #expect(plan.steps.contains(.perNodeCache(volume, directory: "/pfs/cache", mkfs: "/sbin/mkfs.xfs")))
        #expect(!plan.steps.contains(.userVolume(volume)))
    }

    @Test func passwdKeepsImageAccountsAndReplacesClashes() {
        let image = "root:x:0:0:root:/root:/bin/sh\nalice:x:5:5::/:/bin/false\nold:x:1000:1000::/:/bin/sh\nbad line\n"
        let passwd = ContainerPlanner.passwd(image: image, user: user)
        #expect(passwd == "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:100:alice:/home/alice:/bin/bash\n")
    }

    @Test func groupListsTheUsersGroupsWithNames() {
        let group = ContainerPlanner.group(image: "root:x:0:\nusers:x:100:\nwheel:x:10:\n", user: user)
        #expect(group == "root:x:0:\nwheel:x:10:\nusers:x:100:alice\nproj:x:2000:alice\n")
    }

    @Test func preparedRootMatchesOnlyItsUserAndRequest() {
        let state = PreparedRootState(jobID: 7, uid: 1000, gid: 100, image: "sha256:x", volumes: ["/a:/b"], modules: [])
        #expect(state.mismatch(uid: 1000, image: "sha256:x", volumes: ["/a:/b"], modules: []) == nil)
        #expect(state.mismatch(uid: 1001, image: "sha256:x", volumes: ["/a:/b"], modules: []) == "it belongs to uid 1000")
        #expect(state.mismatch(uid: 1000, image: "sha256:y", volumes: ["/a:/b"], modules: []) != nil)
        #expect(state.mismatch(uid: 1000, image: "sha256:x", volumes: [], modules: []) != nil)
        #expect(state.mismatch(uid: 1000, image: "sha256:x", volumes: nil, modules: nil) == nil)
        #expect(PreparedRootState.decode(state.encoded()) == state)
        #expect(PreparedRootState.decode(Array("{".utf8)) == nil)
    }
}

@Suite struct HookTests {
    @Test func hooksRunAroundSiteMountsAndModuleRootHooksBeforeTheUsersVolumes() throws {
        var config = try siteConfig("""
            sitePreMountHook=/etc/shifter/pre.sh
            sitePostMountHook=/etc/shifter/post.sh
            module_mpi_roothook=/etc/shifter/mpi-check.sh
            module_mpi_copyPath=/usr/lib/shifter/mpi
            """)
        config.siteFs = [try SiteMount.parse("/home")]
        let modules = try config.selectModules(.named(["mpi"]))
        var req = request(config)
        req.modules = modules
        req.volumes = [try VolumeSpec.parse("/data:/data"), try VolumeSpec.parse("/x:/scratch:perNodeCache=size=1G")]
        let plan = ContainerPlanner.plan(req, layout: RootLayout.job(1, config: config))
        let order = plan.steps.compactMap { step -> String? in
            switch step {
            case .rootHook(_, let name): name
            case .userVolume(let volume): "volume:\(volume.target)"
            case .perNodeCache(let volume, _, _): "cache:\(volume.target)"
            case .hostBind(_, let target, _, _, _, _) where target != "/dev" && target != "/sys" && target != "/tmp": target
            case .propagation: "propagation"
            default: nil
            }
        }
        #expect(order == ["sitePreMountHook", "/home", "/opt/udiImage/modules/mpi", "sitePostMountHook",
                          "module mpi roothook", "volume:/data", "cache:/scratch", "propagation"])
    }

    @Test func userHooksRunBeforeTheCommandAndQuoteSafely() throws {
        var module = SiteModule(name: "a")
        module.userhook = "/opt/udiImage/modules/a/it's.sh"
        let command = ContainerPlanner.commandWithUserHooks(["python3", "-c", "print(1)"], modules: [module])
        #expect(command == ["/bin/sh", "-c", "'/opt/udiImage/modules/a/it'\\''s.sh' && exec \"$@\"", "shifter-userhook",
                            "python3", "-c", "print(1)"])
        #expect(ContainerPlanner.commandWithUserHooks(["true"], modules: [SiteModule(name: "b")]) == ["true"])
    }
}

@Suite struct MountTableTests {
    @Test func parsesMountinfoAndUnescapesSpaces() {
        let text = """
            22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
            40 22 0:35 / /var/udi\\040mount/job-1 rw,nosuid - tmpfs shifter rw
            41 40 7:0 / /var/udi\\040mount/job-1/root ro - overlay shifter ro
            garbage
            50 22 0:40 / /scratch rw,nodev shared:2 master:1 - xfs /dev/loop0 rw,noquota
            51 22 0:41 / /cut rw -
            """
        let entries = MountTable.parse(text)
        #expect(entries.count == 4)
        #expect(entries[3].mountPoint == "/scratch" && entries[3].filesystemType == "xfs")
        #expect(entries[3].source == "/dev/loop0" && entries[3].options == "rw,nodev")
        #expect(entries[1].mountPoint == "/var/udi mount/job-1")
        #expect(entries[2].filesystemType == "overlay")
        #expect(MountTable.mountPoints(under: "/var/udi mount/job-1", in: entries)
            == ["/var/udi mount/job-1/root", "/var/udi mount/job-1"])
        #expect(MountTable.mountPoints(under: "/var/udi mount/job", in: entries).isEmpty)
    }
}
