import Testing

@testable import ShifterCore

/// The settings of the old Shifter's sample `udiRoot.conf`, with every key it documents.
let oldShifterSampleConfig = #"""
    # udiRoot.conf
    udiMount=/var/udiMount
    loopMount=/var/udiLoopMount
    imagePath=/images
    udiRootPath=/opt/shifter/udiRoot
    sitePreMountHook=/etc/shifter/premount.sh
    sitePostMountHook=/etc/shifter/postmount.sh
    optUdiImage=/opt/shifter/udiRoot/default/deps/udiImage
    etcPath=/opt/shifter/default/etc_files
    allowLocalChroot=1
    autoLoadKernelModule=0
    mountUdiRootWritable=1
    maxGroupCount=31
    modprobePath=/sbin/modprobe
    insmodPath=/sbin/insmod
    cpPath=/bin/cp
    mvPath=/bin/mv
    chmodPath=/bin/chmod
    mkfsXfsPath=/sbin/mkfs.xfs
    rootfsType=tmpfs
    gatewayTimeout=30
    kmodBasePath=/lib/modules
    kmodCacheFile=/var/run/udiRoot.kmod.cache
    siteFs=/home:/home;/global:/global;/var/opt/cray/spool:/var/spool:rec
    siteEnv=SHIFTER_RUNTIME=1
    siteEnvAppend=PATH=/opt/udiImage/bin
    siteEnvPrepend=PATH=/opt/site/bin
    siteEnvUnset=LOADEDMODULES
    imageGateway=http://imagegwapi:5000 https://gw2.example.org
    system=mycluster
    defaultImageType=docker
    nodeContextPrefix=
    ddPath=/bin/dd
    perNodeCachePath=/scratch/pncache
    perNodeCacheSizeLimit=200G
    perNodeCacheAllowedFsType=xfs
    populateEtcDynamically=1
    optionalSshdAsRoot=0
    allowLibcPwdCalls=1
    batchType=slurm
    mountPropagationStyle=slave
    """#

let minimalConfig = "udiMount=/var/udiMount\nloopMount=/var/udiLoopMount\nimagePath=/images\n"

struct SiteConfigTests {
    @Test func epilogHookAndNodeMetricsPath() throws {
        let (config, warnings) = try SiteConfig.parse(minimalConfig + "siteEpilogHook=/etc/shifter/epilog.sh\nnodeMetricsPath=/var/lib/node_exporter/\n", source: "udiRoot.conf")
        #expect(warnings.isEmpty)
        #expect(config.siteEpilogHook == "/etc/shifter/epilog.sh")
        #expect(config.nodeMetricsPath == "/var/lib/node_exporter")
        let (limits, _) = try SiteConfig.parse(minimalConfig + "perNodeCacheTotalLimit=100G\n", source: "udiRoot.conf")
        #expect(limits.perNodeCacheTotalLimit == 100 << 30)
        let (defaults, _) = try SiteConfig.parse(minimalConfig + "siteEpilogHook=\n", source: "udiRoot.conf")
        #expect(defaults.siteEpilogHook == nil)
        #expect(defaults.nodeMetricsPath == nil)
        #expect(throws: SiteConfigError.self) { try SiteConfig.parse(minimalConfig + "nodeMetricsPath=relative/dir\n", source: "udiRoot.conf") }
    }

    @Test func sshdSettings() throws {
        let (config, warnings) = try SiteConfig.parse(minimalConfig + "sshPath=/opt/shifter/ssh\nsshPort=2222\nsshNodePorts=n1=2201 n2=127.0.0.1:2202\n", source: "udiRoot.conf")
        #expect(warnings.isEmpty)
        #expect(config.sshPath == "/opt/shifter/ssh")
        #expect(config.sshNodePorts == [SSHNodePort(node: "n1", port: 2201), SSHNodePort(node: "n2", address: "127.0.0.1", port: 2202)])
        #expect(config.sshPort(onNode: "n2") == 2202)
        #expect(config.sshPort(onNode: "n9") == 2222)
        #expect(config.sshPort(onNode: nil) == 2222)
        let (defaults, _) = try SiteConfig.parse(minimalConfig, source: "udiRoot.conf")
        #expect(defaults.sshPath == nil)
        #expect(defaults.sshPort == 1204)
        for bad in ["sshPort=22", "sshPort=70000", "sshNodePorts=n1", "sshNodePorts=n1=80", "sshNodePorts==2201", "sshNodePorts=n1=a;b:2201"] {
            #expect(throws: SiteConfigError.self, "\(bad)") { try SiteConfig.parse(minimalConfig + bad + "\n", source: "udiRoot.conf") }
        }
    }

    @Test func parsesOldShifterSample() throws {
        let (config, warnings) = try SiteConfig.parse(oldShifterSampleConfig, source: "udiRoot.conf")
        #expect(config.udiMount == "/var/udiMount")
        #expect(config.loopMount == "/var/udiLoopMount")
        #expect(config.imagePath == "/images")
        #expect(config.udiRootPath == "/opt/shifter/udiRoot")
        #expect(config.sitePreMountHook == "/etc/shifter/premount.sh")
        #expect(config.sitePostMountHook == "/etc/shifter/postmount.sh")
        #expect(config.optUdiImage == "/opt/shifter/udiRoot/default/deps/udiImage")
        #expect(config.etcPath == "/opt/shifter/default/etc_files")
        #expect(config.allowLocalChroot)
        #expect(config.mountUdiRootWritable)
        #expect(config.maxGroupCount == 31)
        #expect(config.mkfsXfsPath == "/sbin/mkfs.xfs")
        #expect(config.rootfsType == .tmpfs)
        #expect(config.gatewayTimeout == 30)
        #expect(config.siteFs.map(\.canonical) == ["/home:/home", "/global:/global", "/var/opt/cray/spool:/var/spool:rec"])
        #expect(config.environment.assign == [EnvironmentAssignment(name: "SHIFTER_RUNTIME", value: "1")])
        #expect(config.environment.append == [EnvironmentAssignment(name: "PATH", value: "/opt/udiImage/bin")])
        #expect(config.environment.prepend == [EnvironmentAssignment(name: "PATH", value: "/opt/site/bin")])
        #expect(config.environment.unset == ["LOADEDMODULES"])
        #expect(config.imageGateway == ["http://imagegwapi:5000", "https://gw2.example.org"])
        #expect(config.system == "mycluster")
        #expect(config.defaultImageType == .docker)
        #expect(config.perNodeCachePath == "/scratch/pncache")
        #expect(config.perNodeCacheSizeLimit == UInt64(200) * 1024 * 1024 * 1024)
        #expect(config.perNodeCacheAllowedFsType == ["xfs"])
        #expect(config.populateEtcDynamically)
        #expect(config.allowLibcPwdCalls)
        #expect(config.mountPropagationStyle == .slave)
        let retired = [
            "autoLoadKernelModule", "modprobePath", "insmodPath", "cpPath", "mvPath", "chmodPath", "kmodBasePath",
            "kmodCacheFile", "nodeContextPrefix", "ddPath", "optionalSshdAsRoot", "batchType",
        ]
        #expect(warnings.count == retired.count)
        for key in retired {
            #expect(warnings.contains { $0.contains("\"\(key)\" is no longer used") && $0.hasPrefix("udiRoot.conf line ") })
        }
    }

    @Test func appliesDefaults() throws {
        let (config, warnings) = try SiteConfig.parse(minimalConfig, source: "udiRoot.conf")
        #expect(warnings.isEmpty)
        #expect(config == SiteConfig(udiMount: "/var/udiMount", loopMount: "/var/udiLoopMount", imagePath: "/images"))
        #expect(config.rootfsType == .tmpfs)
        #expect(config.defaultImageType == .docker)
        #expect(config.mountPropagationStyle == .private)
        #expect(config.perNodeCacheAllowedFsType == ["xfs"])
        #expect(config.perNodeCacheSizeLimit == nil)
        #expect(config.mkfsXfsPath == "/sbin/mkfs.xfs")
        #expect(config.gatewayTimeout == 60)
        #expect(config.maxGroupCount == 512)
        #expect(config.mountUdiRootWritable)
        #expect(!config.imageLoopDirectIO)
        #expect(!config.allowLocalChroot)
        #expect(config.modules.isEmpty && config.defaultModules.isEmpty)
    }

    @Test func readsImageLoopDirectIO() throws {
        #expect(try SiteConfig.parse(minimalConfig + "\nimageLoopDirectIO=1\n", source: "c").config.imageLoopDirectIO)
        #expect(try !SiteConfig.parse(minimalConfig + "\nimageLoopDirectIO=no\n", source: "c").config.imageLoopDirectIO)
        #expect(throws: SiteConfigError.self) { try SiteConfig.parse(minimalConfig + "\nimageLoopDirectIO=sometimes\n", source: "c") }
    }

    @Test(arguments: [
        ("udiMount = /a \nloopMount=/b\nimagePath=/c", "udiMount", "/a"),
        ("  udiMount\t=\t/a//x/  # trailing comment\nloopMount=/b\nimagePath=/c", "udiMount", "/a/x"),
        ("udiMount=/a\r\nloopMount=/b\r\nimagePath=/c\r\n", "loopMount", "/b"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nimageGateway=http://gw:5000/#frag", "imageGateway", "http://gw:5000/#frag"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nsiteFs=/home:/home;\\\n/global:/global", "siteFs", "/home:/home,/global:/global"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nsiteEnv=A=1 \\\n   B=2 \\\n   C=3", "siteEnv", "A=1,B=2,C=3"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nsiteEnv=A=1\nsiteEnv=B=x=y", "siteEnv", "A=1,B=x=y"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nsiteEnv=EMPTY=", "siteEnv", "EMPTY="),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nperNodeCacheAllowedFsType=xfs ext4\nperNodeCacheAllowedFsType=btrfs", "perNodeCacheAllowedFsType", "xfs,ext4,btrfs"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nperNodeCacheSizeLimit=1024k", "perNodeCacheSizeLimit", "1048576"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nallowLocalChroot=yes", "allowLocalChroot", "true"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nallowLocalChroot=FALSE", "allowLocalChroot", "false"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nrootfsType=ramfs", "rootfsType", "ramfs"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\ndefaultImageType=custom", "defaultImageType", "custom"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nimageGateway=local", "imageGateway", "local"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nsitePreMountHook=", "sitePreMountHook", "nil"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nudiMount=/z", "udiMount", "/z"),
        ("# only comments\n\n   # indented\nudiMount=/a\nloopMount=/b\nimagePath=/c\n\n", "imagePath", "/c"),
        ("udiMount=/a\nloopMount=/b\nimagePath=\\\n/c", "imagePath", "/c"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nsiteEnv=A=1 \\\n B=2 \\", "siteEnv", "A=1,B=2"),
        ("udiMount=/a\nloopMount=/b\nimagePath=/c\nmaxGroupCount=65536", "maxGroupCount", "65536"),
    ])
    func parsesValue(text: String, key: String, expected: String) throws {
        let config = try SiteConfig.parse(text, source: "udiRoot.conf").config
        let actual: String
        switch key {
        case "udiMount": actual = config.udiMount
        case "loopMount": actual = config.loopMount
        case "imagePath": actual = config.imagePath
        case "imageGateway": actual = config.imageGateway.joined(separator: ",")
        case "siteFs": actual = config.siteFs.map(\.canonical).joined(separator: ",")
        case "siteEnv": actual = config.environment.assign.map(\.entry).joined(separator: ",")
        case "perNodeCacheAllowedFsType": actual = config.perNodeCacheAllowedFsType.joined(separator: ",")
        case "perNodeCacheSizeLimit": actual = config.perNodeCacheSizeLimit.map { String($0) } ?? "nil"
        case "allowLocalChroot": actual = String(config.allowLocalChroot)
        case "rootfsType": actual = config.rootfsType.rawValue
        case "defaultImageType": actual = config.defaultImageType.rawValue
        case "sitePreMountHook": actual = config.sitePreMountHook ?? "nil"
        case "maxGroupCount": actual = String(config.maxGroupCount)
        default: actual = "unexpected key \(key)"
        }
        #expect(actual == expected)
    }

    @Test(arguments: [
        ("fooBar=1\n" + minimalConfig, "udiRoot.conf line 1: unknown key \"fooBar\""),
        (minimalConfig + "\n# c\nfooBar=1", "udiRoot.conf line 6: unknown key \"fooBar\""),
        (minimalConfig + "UDIMOUNT=/x", "line 4: unknown key \"UDIMOUNT\""),
        (minimalConfig + "justtext", "line 4: expected key=value, found \"justtext\""),
        (minimalConfig + "=value", "line 4: no key before \"=\""),
        ("loopMount=/b\nimagePath=/c", "udiRoot.conf: required key \"udiMount\" is missing"),
        ("udiMount=/a\nimagePath=/c", "required key \"loopMount\" is missing"),
        ("udiMount=/a\nloopMount=/b", "required key \"imagePath\" is missing"),
        ("", "required key \"udiMount\" is missing"),
        ("udiMount=relative\nloopMount=/b\nimagePath=/c", "line 1: udiMount: path \"relative\" must be absolute"),
        ("udiMount=\nloopMount=/b\nimagePath=/c", "line 1: udiMount: path is empty"),
        ("udiMount=/a/../b\nloopMount=/b\nimagePath=/c", "may not contain \"..\""),
        ("udiMount=/\nloopMount=/b\nimagePath=/c", "line 1: udiMount may not be /"),
        ("udiMount=/a\nloopMount=/a/loop\nimagePath=/c", "line 2: udiMount and loopMount must be separate directories"),
        (minimalConfig + "allowLocalChroot=maybe", "line 4: allowLocalChroot: \"maybe\" is not a boolean"),
        (minimalConfig + "maxGroupCount=0", "maxGroupCount: \"0\" is not a whole number from 1 to 65536"),
        (minimalConfig + "maxGroupCount=-5", "is not a whole number"),
        (minimalConfig + "maxGroupCount=99999999999999999999999", "is not a whole number"),
        (minimalConfig + "gatewayTimeout=1.5", "gatewayTimeout: \"1.5\" is not a whole number"),
        (minimalConfig + "rootfsType=rootfs", "rootfsType: \"rootfs\" is not one of tmpfs, ramfs"),
        (minimalConfig + "defaultImageType=oci", "defaultImageType: \"oci\" is not one of docker, id, custom, local"),
        (minimalConfig + "mountPropagationStyle=shared", "is not one of private, slave"),
        (minimalConfig + "perNodeCacheSizeLimit=10GB", "perNodeCacheSizeLimit: size \"10GB\": unknown unit"),
        (minimalConfig + "perNodeCacheAllowedFsType=XFS", "\"XFS\" is not a filesystem type name"),
        (minimalConfig + "siteFs=/x:/etc", "line 4: siteFs: siteFs entry \"/x:/etc\": target may not be /etc"),
        (minimalConfig + "siteEnv=1BAD=x", "siteEnv: environment setting \"1BAD=x\": \"1BAD\" is not a valid variable name"),
        (minimalConfig + "siteEnv=NOVALUE", "expected NAME=VALUE"),
        (minimalConfig + "siteEnvUnset=A-B", "\"A-B\" is not a valid variable name"),
        (minimalConfig + "imageGateway=ftp://x", "\"ftp://x\" is neither an http:// or https:// URL nor \"local\""),
        (minimalConfig + "imageGateway=http://", "is neither"),
        (minimalConfig + "system=my cluster", "system: \"my cluster\" may only use"),
        (minimalConfig + "defaultModules=gpu", "defaultModules names undefined module \"gpu\""),
    ])
    func rejectsConfig(text: String, fragment: String) {
        #expect {
            try SiteConfig.parse(text, source: "udiRoot.conf")
        } throws: { error in
            guard let error = error as? SiteConfigError else { return false }
            return error.description.contains(fragment) && !error.description.contains("\n")
        }
    }

    @Test func warnsAboutRepeatedScalarKeys() throws {
        let (config, warnings) = try SiteConfig.parse(minimalConfig + "system=a\nsystem=b", source: "/etc/shifter/udiRoot.conf")
        #expect(config.system == "b")
        #expect(warnings == ["/etc/shifter/udiRoot.conf line 5: key \"system\" was already set on line 4; the later value wins"])
    }

    @Test(arguments: [
        (UInt32(0), UInt32(0o644), true),
        (0, 0o600, true),
        (0, 0o100644, true),
        (0, 0o4755, true),
        (0, 0o664, false),
        (0, 0o646, false),
        (0, 0o666, false),
        (1000, 0o644, false),
        (1000, 0o600, false),
    ])
    func checksOwnership(owner: UInt32, mode: UInt32, accepted: Bool) {
        do {
            try SiteConfig.checkOwnership(path: "/etc/shifter/udiRoot.conf", ownerUID: owner, mode: mode)
            #expect(accepted)
        } catch {
            #expect(!accepted)
            #expect(error.description.hasPrefix("/etc/shifter/udiRoot.conf: must "))
        }
    }

    @Test func ownershipErrorsSayWhy() {
        #expect(throws: SiteConfigError(source: "/c", reason: "must be owned by root, not uid 1000")) {
            try SiteConfig.checkOwnership(path: "/c", ownerUID: 1000, mode: 0o644)
        }
        #expect(throws: SiteConfigError(source: "/c", reason: "must not be writable by group or others (mode 0664)")) {
            try SiteConfig.checkOwnership(path: "/c", ownerUID: 0, mode: 0o100664)
        }
    }
}

let moduleConfig = minimalConfig + #"""
    module_mpich_siteFs=/opt/cray/mpich:/opt/mpich:ro
    module_mpich_siteEnv=MPICH_DIR=/opt/mpich
    module_mpich_siteEnvPrepend=LD_LIBRARY_PATH=/opt/mpich/lib
    module_mpich_siteEnvAppend=PATH=/opt/mpich/bin
    module_mpich_siteEnvUnset=MPICH_OLD
    module_mpich_userhook=/opt/mpich/bin/setup.sh
    module_mpich_roothook=/etc/shifter/mpich-root.sh
    module_mpich_copyPath=/opt/shifter/modules/mpich
    module_mpich_conflict=openmpi
    module_openmpi_siteEnv=OMPI=1
    module_cray_gpu_siteEnv=CUDA=1
    module_old-gpu_enabled=0
    defaultModules=mpich,cray_gpu old-gpu
    """#

struct SiteModuleTests {
    @Test func parsesModules() throws {
        let text = moduleConfig
        let (config, warnings) = try SiteConfig.parse(text, source: "udiRoot.conf")
        #expect(Set(config.modules.keys) == ["mpich", "openmpi", "cray_gpu", "old-gpu"])
        let mpich = try #require(config.modules["mpich"])
        #expect(mpich.siteFs.map(\.canonical) == ["/opt/cray/mpich:/opt/mpich:ro"])
        #expect(mpich.environment.assign.map(\.entry) == ["MPICH_DIR=/opt/mpich"])
        #expect(mpich.environment.prepend.map(\.entry) == ["LD_LIBRARY_PATH=/opt/mpich/lib"])
        #expect(mpich.environment.append.map(\.entry) == ["PATH=/opt/mpich/bin"])
        #expect(mpich.environment.unset == ["MPICH_OLD"])
        #expect(mpich.userhook == "/opt/mpich/bin/setup.sh")
        #expect(mpich.roothook == "/etc/shifter/mpich-root.sh")
        #expect(mpich.copyPath == "/opt/shifter/modules/mpich")
        #expect(mpich.conflicts == ["openmpi"])
        #expect(mpich.enabled)
        #expect(config.modules["cray_gpu"]?.environment.assign.map(\.entry) == ["CUDA=1"])
        #expect(config.modules["old-gpu"]?.enabled == false)
        #expect(config.defaultModules == ["mpich", "cray_gpu", "old-gpu"])
        #expect(warnings.count == 1 && warnings[0].contains("default module \"old-gpu\" is disabled"))
    }

    @Test(arguments: [
        ("module_x_bogus=1", "unknown key \"module_x_bogus\" (module settings: siteFs,"),
        ("module_siteFs=/a", "module_siteFs"),
        ("module__siteEnv=A=1", "module name \"\" may only use"),
        ("module_a.b_siteEnv=A=1", "module name \"a.b\" may only use"),
        ("module_x_enabled=perhaps", "module_x_enabled: \"perhaps\" is not a boolean"),
        ("module_x_userhook=hook.sh", "must be absolute"),
        ("module_x_siteFs=/x:/etc", "target may not be /etc"),
        ("module_x_conflict=a;b", "module name \"a;b\" may only use"),
        ("module_", "expected key=value"),
    ])
    func rejectsModuleKeys(line: String, fragment: String) {
        #expect {
            try SiteConfig.parse(minimalConfig + line, source: "udiRoot.conf")
        } throws: { error in
            (error as? SiteConfigError)?.description.contains(fragment) == true
        }
    }

    static func config() throws -> SiteConfig {
        try SiteConfig.parse(moduleConfig, source: "udiRoot.conf").config
    }

    @Test(arguments: [
        ("none", ""),
        ("mpich", "mpich"),
        ("cray_gpu,mpich", "cray_gpu,mpich"),
        ("mpich,mpich", "mpich"),
        ("openmpi,cray_gpu", "openmpi,cray_gpu"),
    ])
    func selectsNamedModules(request: String, expected: String) throws {
        let modules = try Self.config().selectModules(ModuleRequest.parse(request))
        #expect(modules.map(\.name).joined(separator: ",") == expected)
    }

    @Test func selectsDefaultModulesSkippingDisabled() throws {
        #expect(try Self.config().selectModules(.siteDefault).map(\.name) == ["mpich", "cray_gpu"])
    }

    @Test(arguments: [
        ("gpu", #"modules "gpu": module "gpu" is not defined at this site (defined: cray_gpu, mpich, old-gpu, openmpi)"#),
        ("old-gpu", #"modules "old-gpu": module "old-gpu" is disabled at this site"#),
        ("mpich,openmpi", #"modules "mpich,openmpi": modules "mpich" and "openmpi" cannot be used together"#),
        ("openmpi,mpich", "cannot be used together"),
    ])
    func refusesBadSelections(request: String, message: String) throws {
        let config = try Self.config()
        #expect {
            try config.selectModules(ModuleRequest.parse(request))
        } throws: { error in
            (error as? ModuleSelectionError)?.description.contains(message) == true
        }
    }

    @Test(arguments: [
        ("none", ModuleRequest.none),
        ("a", .named(["a"])),
        ("a,b-c,d_e", .named(["a", "b-c", "d_e"])),
        ("a,a", .named(["a"])),
        ("cray_gpu", .named(["cray_gpu"])),
        ("B,a", .named(["B", "a"])),
        ("x-1,y_2,z3", .named(["x-1", "y_2", "z3"])),
        ("a,b,a,b", .named(["a", "b"])),
        ("NONE", .named(["NONE"])),
    ])
    func parsesModuleRequest(text: String, request: ModuleRequest) throws {
        #expect(try ModuleRequest.parse(text) == request)
        if let canonical = request.canonical { #expect(try ModuleRequest.parse(canonical) == request) }
    }

    @Test(arguments: [
        ("", "no module named"),
        ("a,,b", "empty module name"),
        ("a,", "empty module name"),
        ("none,a", "\"none\" cannot be combined"),
        ("a b", "module name \"a b\" may only use"),
        (",a", "empty module name"),
        ("a;b", "module name \"a;b\" may only use"),
        ("a.b", "module name \"a.b\" may only use"),
        ("none,none", "\"none\" cannot be combined"),
        ("a,none", "\"none\" cannot be combined"),
    ])
    func rejectsModuleRequest(text: String, fragment: String) {
        #expect {
            try ModuleRequest.parse(text)
        } throws: { error in
            (error as? ModuleSelectionError)?.description.contains(fragment) == true
        }
    }
}
