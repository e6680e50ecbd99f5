import Foundation
import Testing
@testable import ShifterSystem

/// A directory becomes a mount that binds do not copy, once, however often it is asked; one with
/// mounts below it is left alone, since a bind over it would hide them.
@Suite(.enabled(if: geteuid() == 0, "mounts tmpfs and binds; run as root"))
struct MountPointTests {
    @Test func aDirectoryBecomesOneUnbindableMountAndStaysOne() throws {
        let top = FileManager.default.temporaryDirectory.appendingPathComponent("shifter-mountpoint-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: top + "/jobs/job-1", withIntermediateDirectories: true)
        defer {
            try? Mounts.unmount(top + "/jobs/job-1", detach: true)
            for _ in 0..<3 { try? Mounts.unmount(top + "/jobs", detach: true) }
            try? FileManager.default.removeItem(atPath: top)
        }
        let jobs = top + "/jobs"
        #expect(!Mounts.isMountPoint(jobs))
        #expect(try Mounts.makeUnbindableMountPoint(jobs))
        #expect(try Mounts.makeUnbindableMountPoint(jobs))
        #expect(Mounts.isMountPoint(jobs))
        // A job's mount below it stays; a recursive bind of the directory above leaves it out.
        try Mounts.mount(source: "job", target: jobs + "/job-1", type: "tmpfs", flags: [])
        #expect(Mounts.isMountPoint(jobs + "/job-1"))
        #expect(try Mounts.makeUnbindableMountPoint(jobs))
        let copy = top + "-copy"
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        try Mounts.bind(from: ContainedPath(hostPath: top), onto: ContainedPath(hostPath: copy), recursive: true, attributes: [])
        defer {
            try? Mounts.unmount(copy, detach: true)
            try? FileManager.default.removeItem(atPath: copy)
        }
        #expect(Mounts.isMountPoint(copy))
        #expect(!Mounts.isMountPoint(copy + "/jobs"))
        #expect(!Mounts.isMountPoint(copy + "/jobs/job-1"))
        // Three calls made one bind, not a stack: one unmount leaves a plain directory. (Asked of
        // the kernel, not of /proc/self/mountinfo, which a read may skip lines of while other
        // tests mount at the same time.)
        try Mounts.unmount(jobs + "/job-1")
        try Mounts.unmount(jobs)
        #expect(!Mounts.isMountPoint(jobs))
    }

    @Test func aDirectoryWithMountsBelowIsLeftAlone() throws {
        let top = FileManager.default.temporaryDirectory.appendingPathComponent("shifter-mountpoint-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: top + "/job-1", withIntermediateDirectories: true)
        try Mounts.mount(source: "job", target: top + "/job-1", type: "tmpfs", flags: [])
        defer {
            try? Mounts.unmount(top + "/job-1", detach: true)
            try? FileManager.default.removeItem(atPath: top)
        }
        #expect(try !Mounts.makeUnbindableMountPoint(top))
        #expect(!Mounts.isMountPoint(top))
        #expect(Mounts.isMountPoint(top + "/job-1"))
    }
}
