import Testing

@testable import ShifterCore

private func spec(_ json: String, source: String = "test.json") throws -> CDISpec {
    try CDISpec.decode(try JSONValue.parse(Array(json.utf8)), source: source)
}

/// `body` fails with a CDI error whose message holds each of `parts`.
private func expectRefusal(_ parts: String..., sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("accepted; expected: \(parts)", sourceLocation: sourceLocation)
    } catch let error as CDIError {
        for part in parts { #expect(error.reason.contains(part), "\(error.reason)", sourceLocation: sourceLocation) }
    } catch {
        Issue.record("not a CDI error: \(error)", sourceLocation: sourceLocation)
    }
}

/// Two GPUs with a control node for both, the form of NVIDIA's spec.
private let twoGPUs = """
    {"cdiVersion": "0.6.0", "kind": "example.com/gpu",
     "containerEdits": {"env": ["EXAMPLE_DRIVER=1"], "deviceNodes": [{"path": "/dev/example-ctl"}],
                        "hooks": [{"hookName": "createContainer", "path": "/usr/bin/nvidia-cdi-hook",
                                   "args": ["nvidia-cdi-hook", "update-ldcache", "--folder", "/usr/lib/example"]}]},
     "devices": [
       {"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/example0"}], "env": ["EXAMPLE_GPU=0"]}},
       {"name": "1", "containerEdits": {"deviceNodes": [{"path": "/dev/example1"}], "env": ["EXAMPLE_GPU=1"]}},
       {"name": "10", "containerEdits": {"deviceNodes": [{"path": "/dev/example10"}]}}
     ]}
    """

@Suite("CDI device names")
struct CDIDeviceNameTests {
    @Test("valid names", arguments: [
        ("nvidia.com/gpu=0", "nvidia.com", "gpu", "0"),
        ("nvidia.com/gpu=all", "nvidia.com", "gpu", "all"),
        ("nvidia.com/gpu=GPU-4cf8db2d-06c0-7d70", "nvidia.com", "gpu", "GPU-4cf8db2d-06c0-7d70"),
        ("nvidia.com/gpu=0:1", "nvidia.com", "gpu", "0:1"),
        ("hpe.com/cxi=cxi0", "hpe.com", "cxi", "cxi0"),
        ("v/c=x", "v", "c", "x"),
    ])
    func valid(text: String, vendor: String, deviceClass: String, name: String) throws {
        let parsed = try CDIDeviceName.parse(text)
        #expect(parsed == CDIDeviceName(vendor: vendor, deviceClass: deviceClass, name: name))
        #expect(parsed.description == text)
    }

    @Test("invalid names say what is wrong", arguments: [
        ("nvidia.com/gpu", "expected VENDOR/CLASS=NAME"),
        ("gpu=0", "must be VENDOR/CLASS"),
        ("nvidia.com/gpu/x=0", "must be VENDOR/CLASS"),
        ("1vendor/gpu=0", "must be VENDOR/CLASS"),
        ("nvidia.com/gpu=", "the name after"),
        ("nvidia.com/gpu=-0", "the name after"),
        ("nvidia.com/gpu=a b", "the name after"),
        ("nvidia.com/gpu=../x", "the name after"),
    ])
    func invalid(text: String, expected: String) {
        expectRefusal(expected, text) { _ = try CDIDeviceName.parse(text) }
    }

    @Test("a list keeps the first of repeats and refuses empty items")
    func list() throws {
        #expect(try CDIDeviceName.parseList("a.com/g=0,a.com/g=1,a.com/g=0").map(\.name) == ["0", "1"])
        #expect(throws: CDIError.self) { try CDIDeviceName.parseList("a.com/g=0,") }
    }

    @Test("with the site's Slurm GPU kind, a job gets its own GPUs only", arguments: [
        ("nvidia.com/gpu=1", "1,2", ["nvidia.com/gpu=1", "nvidia.com/gpu=2"]),
        ("nvidia.com/gpu=all", "1,2", ["nvidia.com/gpu=1", "nvidia.com/gpu=2"]),
        ("hpe.com/cxi=cxi0", "1", ["hpe.com/cxi=cxi0", "nvidia.com/gpu=1"]),
        ("nvidia.com/gpu=0", "1,2", ["error", "Slurm gave this job other GPUs (1,2)"]),
        ("nvidia.com/gpu=all,nvidia.com/gpu=0", "", ["error", "Slurm gave this job other GPUs (none)"]),
    ])
    func restricted(requested: String, slurm: String, expected: [String]) throws {
        let gpus = CDIDeviceName.slurmGPUs(kind: "nvidia.com/gpu", environment: ["SLURM_JOB_GPUS": slurm])
        let restrict = { try CDIDeviceName.restricted(try CDIDeviceName.parseList(requested), slurmGPUs: gpus, kind: "nvidia.com/gpu") }
        if expected.first == "error" {
            expectRefusal(expected[1]) { _ = try restrict() }
        } else {
            #expect(try restrict().map(\.description) == expected)
        }
    }

    @Test("the GPUs Slurm gave a job, by index or UUID", arguments: [
        (["SLURM_JOB_GPUS": "0,2"], ["nvidia.com/gpu=0", "nvidia.com/gpu=2"] as [String]?),
        (["SLURM_JOB_GPUS": "GPU-aa-bb"], ["nvidia.com/gpu=GPU-aa-bb"]),
        (["SLURM_STEP_GPUS": "1"], ["nvidia.com/gpu=1"]),
        (["SLURM_JOB_GPUS": ""], nil),
        ([:], nil),
    ])
    func slurmGPUs(environment: [String: String], expected: [String]?) {
        #expect(CDIDeviceName.slurmGPUs(kind: "nvidia.com/gpu", environment: environment)?.map(\.description) == expected)
    }
}

@Suite("CDI specs")
struct CDISpecTests {
    @Test("a spec with every kind of edit is read")
    func decode() throws {
        let decoded = try spec("""
            {"cdiVersion": "0.7.0", "kind": "example.com/gpu",
             "devices": [{"name": "g0", "containerEdits": {
                "deviceNodes": [{"path": "/dev/g0", "hostPath": "/dev/real-g0", "type": "c", "major": 1, "minor": 3,
                                 "fileMode": 438, "permissions": "rw", "uid": 0, "gid": 44}],
                "mounts": [{"hostPath": "/opt/lib", "containerPath": "/usr/lib/g", "options": ["ro", "nosuid", "rbind"]}],
                "hooks": [{"hookName": "createContainer", "path": "/bin/true", "args": ["true"], "env": ["A=1"], "timeout": 5}],
                "additionalGids": [44, 0]}}]}
            """)
        let edits = decoded.devices[0].edits
        #expect(edits.deviceNodes == [CDIDeviceNode(path: "/dev/g0", hostPath: "/dev/real-g0", type: "c", major: 1, minor: 3,
                                                    fileMode: 0o666, permissions: "rw", uid: 0, gid: 44)])
        #expect(edits.mounts == [CDIMount(hostPath: "/opt/lib", containerPath: "/usr/lib/g", options: ["ro", "nosuid", "rbind"])])
        #expect(edits.hooks == [CDIHook(hookName: "createContainer", path: "/bin/true", arguments: ["true"], environment: ["A=1"], timeout: 5)])
        #expect(edits.additionalGroups == [44, 0])
    }

    @Test("a node's file in the container: the spec's mode, owner, group and device, its cgroup permissions taking bits away", arguments: [
        (CDIDeviceNode(path: "/dev/g"), CDINodeFile(permissions: 0o666, uid: 0, gid: 0, major: 1, minor: 3)),
        (CDIDeviceNode(path: "/dev/g", fileMode: 0o640, uid: 0, gid: 44), CDINodeFile(permissions: 0o640, uid: 0, gid: 44, major: 1, minor: 3)),
        (CDIDeviceNode(path: "/dev/g", fileMode: 0o4777), CDINodeFile(permissions: 0o777, uid: 0, gid: 0, major: 1, minor: 3)),
        (CDIDeviceNode(path: "/dev/g", permissions: "r"), CDINodeFile(permissions: 0o444, uid: 0, gid: 0, major: 1, minor: 3)),
        (CDIDeviceNode(path: "/dev/g", permissions: "wm"), CDINodeFile(permissions: 0o222, uid: 0, gid: 0, major: 1, minor: 3)),
        (CDIDeviceNode(path: "/dev/g", permissions: "rwm"), CDINodeFile(permissions: 0o666, uid: 0, gid: 0, major: 1, minor: 3)),
        (CDIDeviceNode(path: "/dev/g", fileMode: 0o660, permissions: "r"), CDINodeFile(permissions: 0o440, uid: 0, gid: 0, major: 1, minor: 3)),
        (CDIDeviceNode(path: "/dev/g", major: 195, minor: 255), CDINodeFile(permissions: 0o666, uid: 0, gid: 0, major: 195, minor: 255)),
        (CDIDeviceNode(path: "/dev/g", major: -1), CDINodeFile(permissions: 0o666, uid: 0, gid: 0, major: 1, minor: 3)),
    ])
    func containerFile(node: CDIDeviceNode, expected: CDINodeFile) {
        #expect(node.containerFile(host: CDINodeFile(permissions: 0o666, uid: 0, gid: 0, major: 1, minor: 3)) == expected)
    }

    @Test("a hook's stage, its OCI status, whether its failure only warns", arguments: [
        ("prestart", CDIHook.Stage.create, "creating", false), ("createRuntime", .create, "creating", false),
        ("createContainer", .create, "creating", false), ("startContainer", .start, "running", false),
        ("poststart", .start, "running", true), ("poststop", .stop, "stopped", true),
    ])
    func hookStage(name: String, stage: CDIHook.Stage, status: String, onlyWarns: Bool) {
        let hook = CDIHook(hookName: name, path: "/bin/true")
        #expect(hook.stage == stage)
        #expect(hook.ociStatus == status)
        #expect(hook.failureOnlyWarns == onlyWarns)
    }

    @Test("a hook kept in a job's record reads back the same")
    func hookRecord() throws {
        for hook in [CDIHook(hookName: "poststop", path: "/opt/v/stop", arguments: ["stop", "--all"], environment: ["A=1"], timeout: 7),
                     CDIHook(hookName: "poststop", path: "/opt/v/stop")] {
            #expect(try CDIHook.decode(JSONValue.parse(hook.jsonValue.encoded()), source: "test") == hook)
        }
        #expect(throws: CDIError.self) { try CDIHook.decode(JSONValue.parse(Array(#"{"hookName": "later", "path": "/x"}"#.utf8)), source: "test") }
    }

    @Test("malformed specs are refused with the file and the reason", arguments: [
        (#"{"kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {}}]}"#, "cdiVersion is missing"),
        (#"{"cdiVersion": "9.9.9", "kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {}}]}"#, "is not one this Shifter reads"),
        (#"{"cdiVersion": "0.3.0", "kind": "a.com/b", "devices": [{"name": "0", "containerEdits": {}}]}"#, "older than what the spec uses needs (0.5.0)"),
        (#"{"cdiVersion": "0.5.0", "kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {"additionalGids": [5]}}]}"#, "needs (0.7.0)"),
        (#"{"cdiVersion": "0.6.0", "kind": "b", "devices": [{"name": "x", "containerEdits": {}}]}"#, "must be VENDOR/CLASS"),
        (#"{"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": []}"#, "no devices"),
        (#"{"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "x"}]}"#, "has no containerEdits"),
        (#"{"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {}}, {"name": "x", "containerEdits": {}}]}"#, "defined twice"),
        (#"{"cdiVersion": "0.6.0", "kind": "a.com/b", "extra": 1, "devices": [{"name": "x", "containerEdits": {}}]}"#, "unknown field \"extra\""),
        (#"{"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {"env": ["1A=b"]}}]}"#, "env \"1A=b\""),
        (#"{"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {"deviceNodes": [{"path": "dev/x"}]}}]}"#, "absolute path"),
        (#"{"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {"deviceNodes": [{"path": "/dev/../etc/x"}]}}]}"#, "without \"..\""),
        (#"{"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {"deviceNodes": [{"path": "/dev/x", "type": "z"}]}}]}"#, "not c, b, u or p"),
        (#"{"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {"mounts": [{"hostPath": "/a", "containerPath": "/b", "options": ["suid"]}]}}]}"#, "option \"suid\" is not supported"),
        (#"{"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {"mounts": [{"hostPath": "/a", "containerPath": "/b", "type": "tmpfs"}]}}]}"#, "binds host paths only"),
        (#"{"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {"hooks": [{"hookName": "later", "path": "/bin/true"}]}}]}"#, "hookName \"later\""),
        (#"{"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {"hooks": [{"hookName": "createContainer", "path": "/bin/true", "timeout": 0}]}}]}"#, "more than 0"),
        (#"{"cdiVersion": "1.1.0", "kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {"netDevices": [{"hostInterfaceName": "e", "name": "f"}]}}]}"#, "netDevices is not supported"),
        (#"[1]"#, "should be a mapping"),
    ])
    func malformed(json: String, expected: String) {
        expectRefusal(expected, "/etc/cdi/bad.json") { _ = try spec(json, source: "/etc/cdi/bad.json") }
    }
}

@Suite("CDI requests resolved against a node's specs")
struct CDIRegistryTests {
    private func registry(_ entries: [(String, String, Int)]) throws -> CDIRegistry {
        CDIRegistry(entries: try entries.map { CDIRegistry.Entry(spec: try spec($0.0, source: $0.1), source: $0.1, priority: $0.2) },
                    directories: ["/etc/cdi", "/var/run/cdi"])
    }

    @Test("the spec's edits come once, before its first device's; the other devices' nodes are hidden")
    func order() throws {
        let resolved = try registry([(twoGPUs, "/etc/cdi/example.json", 0)])
            .resolve(try CDIDeviceName.parseList("example.com/gpu=1,example.com/gpu=0"))
        #expect(resolved.devices.map(\.name) == ["1", "0"])
        #expect(resolved.edits.environment.map { "\($0.name)=\($0.value)" } == ["EXAMPLE_DRIVER=1", "EXAMPLE_GPU=1", "EXAMPLE_GPU=0"])
        #expect(resolved.edits.deviceNodes.map(\.path) == ["/dev/example-ctl", "/dev/example1", "/dev/example0"])
        #expect(resolved.edits.hooks.count == 1)
        #expect(resolved.hiddenNodes == ["/dev/example10"])
    }

    @Test("all, where the spec has no device of that name, is every device, numbers in order")
    func all() throws {
        let resolved = try registry([(twoGPUs, "/etc/cdi/example.json", 0)]).resolve([try CDIDeviceName.parse("example.com/gpu=all")])
        #expect(resolved.devices.map(\.name) == ["0", "1", "10"])
        #expect(resolved.hiddenNodes.isEmpty)
    }

    @Test("a later directory's device wins; two files of one directory make the name unusable")
    func conflicts() throws {
        let other = twoGPUs.replacing("EXAMPLE_GPU=0", with: "EXAMPLE_GPU=zero")
        let later = try registry([(twoGPUs, "/etc/cdi/a.json", 0), (other, "/var/run/cdi/b.json", 1)])
        #expect(try later.resolve([CDIDeviceName.parse("example.com/gpu=0")]).edits.environment.last?.value == "zero")
        let same = try registry([(twoGPUs, "/etc/cdi/a.json", 0), (other, "/etc/cdi/b.json", 0)])
        expectRefusal("defined in both /etc/cdi/a.json and /etc/cdi/b.json") {
            _ = try same.resolve([CDIDeviceName.parse("example.com/gpu=0")])
        }
    }

    @Test("the kind's devices not asked for are hidden whatever file defines them, a name in conflict included")
    func hiddenAcrossFiles() throws {
        let more = """
            {"cdiVersion": "0.6.0", "kind": "example.com/gpu", "devices": [
              {"name": "1", "containerEdits": {"deviceNodes": [{"path": "/dev/example1-again"}]}},
              {"name": "20", "containerEdits": {"deviceNodes": [{"path": "/dev/example20"}]}}]}
            """
        let registry = try registry([(twoGPUs, "/etc/cdi/a.json", 0), (more, "/etc/cdi/b.json", 0)])
        let resolved = try registry.resolve([CDIDeviceName.parse("example.com/gpu=0")])
        #expect(resolved.hiddenNodes == ["/dev/example1", "/dev/example1-again", "/dev/example10", "/dev/example20"])
    }

    @Test("unknown devices and kinds are named with what there is", arguments: [
        ("example.com/gpu=7", "example.com/gpu has no device \"7\" (it has 0, 1, 10, and all)"),
        ("other.com/gpu=0", "no CDI spec for other.com/gpu in /etc/cdi, /var/run/cdi"),
    ])
    func unknown(name: String, expected: String) throws {
        let registry = try registry([(twoGPUs, "/etc/cdi/example.json", 0)])
        expectRefusal(expected) { _ = try registry.resolve([CDIDeviceName.parse(name)]) }
    }
}
