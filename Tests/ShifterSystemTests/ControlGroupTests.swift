import Foundation
import Testing
@testable import ShifterSystem

/// The cgroup2 hierarchy is found where the host mounts it, whatever the layout.
@Suite struct UnifiedMountPointTests {
    static let hybrid = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """
    static let unified = """
        25 23 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
        26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate
        """
    static let versionOne = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        """
    /// A job's root with the host's /sys bound into it shows the hierarchy again, further down.
    static let withJobRoot = unified + "\n" + """
        90 80 0:23 / /var/udiMount/job-5/root/sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw,nsdelegate
        """

    @Test(arguments: [(hybrid, "/sys/fs/cgroup/unified"), (unified, "/sys/fs/cgroup"), (versionOne, nil),
                      (withJobRoot, "/sys/fs/cgroup"), ("", nil)] as [(String, String?)])
    func findsTheHostsCgroup2Mount(mountinfo: String, expected: String?) {
        #expect(ControlGroup.unifiedMountPoint(in: MountTable.parse(mountinfo)) == expected)
    }
}

/// A group's processes end all at once, whatever they fork, and the wait for them ends on the
/// kernel's word that the group is empty.
@Suite(.enabled(if: geteuid() == 0 && ControlGroup.unifiedMountPoint() != nil,
                "makes a cgroup2 group: needs root and a mounted cgroup2 hierarchy"))
struct ControlGroupTests {
    /// Starts, in a fresh group, a shell loop in which each generation starts the next in the
    /// background and exits: the pid changes all the time, and a scan of /proc chases it.
    private func forkingChain() throws -> (ControlGroup, Process) {
        let mount = try #require(ControlGroup.unifiedMountPoint())
        let group = ControlGroup(path: mount + "/shifter-test/group-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try group.create()
        let script = """
            echo 0 > '\(group.path)/cgroup.procs' || exit 1
            hop() { sleep 0.01; hop & }
            hop &
            sleep 600
            """
        let shell = try Process.run(URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", script])
        // The shell has joined once the group is populated.
        for _ in 0..<500 where (try? group.members())?.isEmpty ?? true { usleep(10_000) }
        return (group, shell)
    }

    /// Ends what is left in `group` and removes it with its parent, whatever the test did.
    private func discard(_ group: ControlGroup) {
        _ = try? group.killAll()
        _ = try? group.waitUntilEmpty(timeLimit: .seconds(5))
        try? group.remove()
        try? FileSystem.removeDirectory((group.path as NSString).deletingLastPathComponent)
    }

    @Test(arguments: [true, false])
    func everyProcessEndsAtOnceAndTheGroupGoes(useKillFile: Bool) throws {
        let (group, shell) = try forkingChain()
        defer { discard(group) }
        try #require(!(try group.members()).isEmpty, "the shell did not join the group")

        try group.killAll(useKillFile: useKillFile)

        #expect(try group.waitUntilEmpty(timeLimit: .seconds(10)))
        #expect(try group.members().isEmpty)
        shell.waitUntilExit()
        #expect(shell.terminationReason == .uncaughtSignal)
        try group.remove()
        #expect(!group.exists)
    }

    @Test func aWaitForAGroupThatStaysPopulatedEndsAtItsTimeLimit() throws {
        let (group, shell) = try forkingChain()
        defer {
            discard(group)
            shell.waitUntilExit()
        }
        let start = MonotonicClock.seconds
        #expect(try !group.waitUntilEmpty(timeLimit: .milliseconds(300)))
        #expect(MonotonicClock.seconds - start >= 0.3)
    }
}

/// A loop device's binding is told apart from a later one by its disk sequence number.
@Suite(.enabled(if: geteuid() == 0 && FileManager.default.fileExists(atPath: "/dev/loop-control"),
                "binds a loop device: needs root and /dev/loop-control"))
struct LoopBindingTests {
    @Test func aBoundDeviceShowsItsFileUntilItIsDetached() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("shifter-loop-\(UUID().uuidString)").path
        try FileSystem.writeFile(file, [UInt8](repeating: 0, count: 1 << 20), mode: 0o600)
        defer { try? FileSystem.removeFile(file) }
        let device = try LoopDevice.attach(file: file)
        let binding = try #require(LoopBinding.current(device.path))
        #expect(binding.backingFile == file)
        #expect(binding.sequence != nil)
        let index = device.path.dropFirst("/dev/loop".count)
        device.detach()
        // Detaching marks the device to be cleared at its last close, at once. A process that
        // another test forks while the device is open holds a copy of its descriptor until that
        // process execs, so the last close, and the binding's end, may come a moment later.
        // (The kernel removes the `loop` directory with the binding.)
        let autoclear = (try? FileSystem.readFile("/sys/block/loop\(index)/loop/autoclear", limit: 16)).map {
            String(decoding: $0, as: UTF8.self)
        }
        #expect(autoclear?.hasPrefix("1") ?? true || LoopBinding.current(device.path) != binding)
        let deadline = MonotonicClock.seconds + 10
        while LoopBinding.current(device.path) == binding, MonotonicClock.seconds < deadline { usleep(10_000) }
        #expect(LoopBinding.current(device.path) != binding)
        #expect(LoopBinding.current("/dev/sda") == nil)
    }
}
