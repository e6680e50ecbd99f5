import Foundation
import ShifterCore
import ShifterSystem
import Testing
@testable import ShifterRuntime

/// With `mountUdiRootWritable=0` the container's `/` cannot be written, and what is mounted below
/// it can, as before.
@Suite(.enabled(if: geteuid() == 0, "mounts a tmpfs, an overlay and a bind; run as root"))
struct ReadOnlyRootTests {
    @Test func theRootIsReadOnlyAndTheMountsBelowItAreNot() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("shifter-ro-test-\(UUID().uuidString)").path
        let image = scratch + "/image", data = scratch + "/data"
        for directory in [image + "/etc", image + "/data", data] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let layout = RootLayout(name: "job-7", udiMount: scratch + "/udi", loopMount: scratch + "/loop")
        let user = ContainerUser(uid: 1000, gid: 100, groups: [100], name: "alice", home: "/home/alice", shell: "/bin/sh")
        let steps: [PlannedStep] = [
            .hostDirectories([layout.base, layout.imageMount]),
            .scratch(type: .tmpfs, sizeLimit: 1 << 20),
            .hostDirectories([layout.upper, layout.work, layout.root]),
            .image(.directory(image)),
            .overlay,
            .file(containerPath: "/etc/written-while-building", contents: Array("yes\n".utf8), mode: 0o644),
            .hostBind(source: data, containerPath: "/data", recursive: false, readOnly: false,
                      propagation: .private, allowDevices: false),
            .readOnlyRoot,
        ]
        try RootBuilder(plan: ContainerPlan(layout: layout, user: user, steps: steps)).build()
        defer { #expect(RootTeardown.teardown(layout).isEmpty) }

        #expect(FileManager.default.fileExists(atPath: layout.root + "/etc/written-while-building"))
        #expect(open(layout.root + "/etc/new", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644) == -1 && errno == EROFS)
        #expect(mkdir(layout.root + "/new", 0o755) == -1 && errno == EROFS)
        #expect(FileManager.default.createFile(atPath: layout.root + "/data/new", contents: Data("ok".utf8)))
        let entries = try MountTable.current()
        let rootOptions = try #require(entries.last { $0.mountPoint == layout.root }?.options)
        #expect(rootOptions.split(separator: ",").contains("ro"))
        // Only the read-only flag was added: the others stay.
        #expect(rootOptions.split(separator: ",").contains("nosuid"))
        #expect(rootOptions.split(separator: ",").contains("nodev"))
        let dataOptions = try #require(entries.last { $0.mountPoint == layout.root + "/data" }?.options)
        #expect(dataOptions.split(separator: ",").contains("rw"))
    }
}
