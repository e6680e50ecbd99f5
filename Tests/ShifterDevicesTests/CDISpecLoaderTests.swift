import Glibc
import Testing

@testable import ShifterCore
@testable import ShifterDevices
import ShifterSystem

/// The spec `nvidia-ctk cdi generate` writes, in `Fixtures/`.
func nvidiaGenerated() throws -> [UInt8] {
    let directory = #filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    return try FileSystem.readFile(directory + "/Fixtures/nvidia-ctk-generate.yaml")
}

@Suite("CDI specs read from YAML and JSON files")
struct CDISpecLoaderTests {
    @Test("the spec nvidia-ctk generates is read whole")
    func nvidiaSpec() throws {
        let spec = try CDISpec.decode(try YAMLDocument.parse(try nvidiaGenerated()), source: "nvidia.yaml")
        #expect(spec.kind == "nvidia.com/gpu")
        #expect(spec.devices.map(\.name) == ["0", "GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c", "all"])
        #expect(spec.edits.environment.map(\.name) == ["NVIDIA_CTK_LIBCUDA_DIR", "NVIDIA_VISIBLE_DEVICES"])
        #expect(spec.edits.deviceNodes.map(\.path) == ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"])
        #expect(spec.edits.mounts.map(\.readOnly) == [true, false])
        #expect(spec.edits.mounts.map(\.recursive) == [true, true])
        #expect(spec.edits.hooks.count == 4)
        #expect(CDIHookArguments.subcommands(spec.edits.hooks) == [
            "create-symlinks", "enable-cuda-compat", "update-ldcache", "disable-device-node-modification",
        ])

        let registry = CDIRegistry(entries: [CDIRegistry.Entry(spec: spec, source: "nvidia.yaml", priority: 0)],
                                   directories: ["/etc/cdi"])
        let zero = try registry.resolve([CDIDeviceName.parse("nvidia.com/gpu=0")])
        #expect(zero.edits.deviceNodes.map(\.path) == ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia0"])
    }

    @Test("YAML scalars: plain numbers and booleans are typed, quoted ones are text", arguments: [
        ("a: 0", JSONValue.object(["a": .number("0")])),
        ("a: \"0\"", .object(["a": .string("0")])),
        ("a: true", .object(["a": .bool(true)])),
        ("a: ~", .object(["a": .null])),
        ("a: [x, 2]", .object(["a": .array([.string("x"), .number("2")])])),
        ("- 0x1f\n- 0o17", .array([.number("31"), .number("15")])),
    ])
    func scalars(text: String, expected: JSONValue) throws {
        #expect(try YAMLDocument.parse(Array(text.utf8)) == expected)
    }

    @Test("YAML that a spec has no use for is refused with its line", arguments: [
        ("a: &x 1\nb: *x", "aliases"),
        ("a: 1\na: 2", "given twice"),
        ("a: [1, 2", "line"),
        ("a: 1\n---\nb: 2", "more than one document"),
        ("", "empty"),
        ("a: !!binary aGk=", "tag"),
    ])
    func refusals(text: String, expected: String) {
        #expect(throws: YAMLError.self) { try YAMLDocument.parse(Array(text.utf8)) }
        do { _ = try YAMLDocument.parse(Array(text.utf8)) } catch { #expect(error.reason.contains(expected)) }
    }

    @Test("a spec others could write, or not root's, is refused, named, and the others still load")
    func unsafeSpecs() throws {
        try #require(geteuid() == 0, "needs root to make root-owned files")
        var template = Array("/tmp/cdi-specs-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        defer { _ = system("rm -rf '\(directory)'") }
        let good = """
            {"cdiVersion": "0.6.0", "kind": "example.com/gpu", "devices": [{"name": "g0", "containerEdits": {"env": ["A=1"]}}]}
            """
        func writeSpec(_ name: String, _ text: String, mode: mode_t, owner: uid_t = 0) throws {
            let path = directory + "/" + name
            let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
            try #require(fd >= 0)
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
            try #require(chown(path, owner, 0) == 0 && chmod(path, mode) == 0)
        }
        try writeSpec("good.json", good, mode: 0o644)
        try writeSpec("open.yaml", "cdiVersion: 0.6.0\nkind: example.com/nic\ndevices: [{name: n0, containerEdits: {env: [B=1]}}]\n",
                  mode: 0o666)
        try writeSpec("users.json", good.replacing("example.com/gpu", with: "example.com/fpga"), mode: 0o644, owner: 1000)
        try writeSpec("notes.txt", "not a spec", mode: 0o644)

        let (registry, problems) = CDISpecLoader.registry(directories: [directory, directory + "/missing"])
        #expect(registry.kinds == ["example.com/gpu"])
        #expect(problems.count == 2)
        #expect(problems.contains { $0.contains("open.yaml") && $0.contains("writable by everyone") })
        #expect(problems.contains { $0.contains("users.json") && $0.contains("owned by uid 1000") })
        do {
            _ = try CDISpecLoader.resolve([try CDIDeviceName.parse("example.com/nic=n0")], directories: [directory])
            Issue.record("a device of a refused spec resolved")
        } catch {
            #expect(error.reason.contains("no CDI spec for example.com/nic"))
            #expect(error.reason.contains("open.yaml: refused"))
        }
        #expect(try CDISpecLoader.resolve([try CDIDeviceName.parse("example.com/gpu=g0")], directories: [directory])
            .edits.environment.map(\.name) == ["A"])

        // A directory others can write to is left out whole: a spec there could be swapped.
        try #require(chmod(directory, 0o1777) == 0)
        let (exposed, exposedProblems) = CDISpecLoader.registry(directories: [directory])
        #expect(exposed.kinds.isEmpty)
        #expect(exposedProblems == ["CDI spec directory \(directory): refused: writable by everyone (mode 1777); make it root's alone (chmod go-w)"])
    }
}

/// The NVIDIA subcommands of hooks, for the fixture's check.
enum CDIHookArguments {
    static func subcommands(_ hooks: [CDIHook]) -> [String] {
        hooks.compactMap { $0.arguments.count > 1 ? $0.arguments[1] : nil }
    }
}
