import Foundation
import ShifterSystem
import Testing
@testable import ShifterRuntime

/// Teardown kills the processes whose root lies in the container root, and nothing else.
@Suite(.enabled(if: geteuid() == 0, "chroot and a bind mount of / need root; run as root"))
struct RootTeardownTests {
    @Test func killsProcessesRootedInsideAndSparesTheRest() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("shifter-teardown-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        // The host's / seen again at `root`, so that a process chrooted there finds its programs.
        try #require(mount("/", root, nil, UInt(MS_BIND), nil) == 0, "bind / on \(root): \(String(cString: strerror(errno)))")
        defer { umount2(root, Int32(MNT_DETACH)) }

        let inside = try Process.run(URL(fileURLWithPath: "/usr/sbin/chroot"), arguments: [root, "/bin/sleep", "600"])
        let outside = try Process.run(URL(fileURLWithPath: "/bin/sleep"), arguments: ["600"])
        defer {
            if inside.isRunning { kill(inside.processIdentifier, SIGKILL) }
            if outside.isRunning { kill(outside.processIdentifier, SIGKILL) }
        }
        // chroot(8) changes its root before it execs sleep.
        for _ in 0..<100 where !RootTeardown.isRooted(inside.processIdentifier, at: root) { usleep(50_000) }
        try #require(RootTeardown.processes(where: { RootTeardown.isRooted($0, at: root) }) == [inside.processIdentifier])

        RootTeardown.killProcessesInside(root)
        for _ in 0..<100 where inside.isRunning { usleep(50_000) }

        try #require(!inside.isRunning, "the process in the root was not killed")
        #expect(inside.terminationReason == .uncaughtSignal)
        #expect(inside.terminationStatus == SIGKILL)
        #expect(outside.isRunning)
        #expect(RootTeardown.processes(where: { RootTeardown.isRooted($0, at: root) }).isEmpty)
    }

    @Test func aProcessOutsideTheRootIsNotSignalled() throws {
        let outside = try Process.run(URL(fileURLWithPath: "/bin/sleep"), arguments: ["600"])
        defer { kill(outside.processIdentifier, SIGKILL) }

        RootTeardown.killIfStill(outside.processIdentifier) { RootTeardown.isRooted($0, at: "/nonexistent/shifter-root") }

        usleep(100_000)
        #expect(outside.isRunning)
    }
}

/// The epilog counts a root clean only once the loop device of its image has let go: one still
/// bound means a mount of the job's image is still held somewhere.
@Suite(.enabled(if: geteuid() == 0 && FileManager.default.fileExists(atPath: "/dev/loop-control")
                    && FileManager.default.isExecutableFile(atPath: "/usr/bin/mksquashfs"),
                "loop-mounts a squashfs image: needs root, /dev/loop-control and mksquashfs"))
struct LoopReleaseTests {
    /// A root with only its image mounted, from a one-file squashfs image.
    private func mountedImage() throws -> (layout: RootLayout, scratch: String) {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("shifter-loop-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch + "/tree", withIntermediateDirectories: true)
        try Data("x\n".utf8).write(to: URL(fileURLWithPath: scratch + "/tree/file"))
        let mksquashfs = try Process.run(URL(fileURLWithPath: "/usr/bin/mksquashfs"),
                                         arguments: [scratch + "/tree", scratch + "/image.squashfs", "-quiet", "-noappend"])
        mksquashfs.waitUntilExit()
        try #require(mksquashfs.terminationStatus == 0)
        let layout = RootLayout(name: "job-3", udiMount: scratch + "/udi", loopMount: scratch + "/loop")
        let user = ContainerUser(uid: 1000, gid: 100, groups: [], name: "alice", home: "/home/alice", shell: "/bin/sh")
        try RootBuilder(plan: ContainerPlan(layout: layout, user: user, steps: [
            .hostDirectories([layout.base, layout.imageMount]),
            .image(.squashfs(scratch + "/image.squashfs")),
        ])).build()
        return (layout, scratch)
    }

    @Test func anImageNobodyHoldsLetsGoOfItsLoopDeviceAtOnce() throws {
        let (layout, scratch) = try mountedImage()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let device = try #require(try RootTeardown.loopBindings(under: [layout.imageMount]).first?.device)

        #expect(RootTeardown.teardown(layout, killProcesses: true).isEmpty)
        #expect(LoopBinding.current(device) == nil)
    }

    @Test func anImageStillHeldAfterTheTeardownIsReported() throws {
        let (layout, scratch) = try mountedImage()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let binding = try #require(try RootTeardown.loopBindings(under: [layout.imageMount]).first)
        // A descriptor open in the image holds its mount after the detach, as a process outside
        // the root would.
        let held = open(layout.imageMount + "/file", O_RDONLY | O_CLOEXEC)
        try #require(held >= 0)

        let problems = RootTeardown.teardown(layout, killProcesses: true)

        #expect(problems.count == 1)
        #expect(problems.first?.hasPrefix("loop device \(binding.device) is still bound to \(scratch)/image.squashfs") == true)
        close(held)
        #expect(LoopBinding.current(binding.device) == nil)
    }

    /// A host filesystem on a loop device, bound into the root by a site mount, stays the host's.
    @Test func aLoopDeviceAlsoMountedOutsideTheRootIsNotTheRootsToRelease() throws {
        let (layout, scratch) = try mountedImage()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let binding = try #require(try RootTeardown.loopBindings(under: [layout.imageMount]).first)
        let host = scratch + "/host"
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        try #require(mount(binding.device, host, "squashfs", UInt(MS_RDONLY), nil) == 0)
        defer { umount2(host, Int32(MNT_DETACH)) }

        #expect(try RootTeardown.loopBindings(under: [layout.imageMount]).isEmpty)
        #expect(RootTeardown.teardown(layout, killProcesses: true).isEmpty)
        #expect(LoopBinding.current(binding.device) == binding)
    }
}
