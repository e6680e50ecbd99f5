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
        try #require(RootTeardown.processes(rootedAt: root) == [inside.processIdentifier])

        RootTeardown.killProcessesInside(root)
        for _ in 0..<100 where inside.isRunning { usleep(50_000) }

        try #require(!inside.isRunning, "the process in the root was not killed")
        #expect(inside.terminationReason == .uncaughtSignal)
        #expect(inside.terminationStatus == SIGKILL)
        #expect(outside.isRunning)
        #expect(RootTeardown.processes(rootedAt: root).isEmpty)
    }

    @Test func aProcessOutsideTheRootIsNotSignalled() throws {
        let outside = try Process.run(URL(fileURLWithPath: "/bin/sleep"), arguments: ["600"])
        defer { kill(outside.processIdentifier, SIGKILL) }

        RootTeardown.killIfInside(outside.processIdentifier, root: "/nonexistent/shifter-root")

        usleep(100_000)
        #expect(outside.isRunning)
    }
}
