import Foundation
import ShifterCore
import ShifterSystem
import Testing
@testable import ShifterRuntime

/// The epilog removes the backing files that a prolog killed during mkfs.xfs left under their names,
/// and nothing else in the shared cache directory.
@Suite(.enabled(if: geteuid() == 0, "the files must belong to root, as the prolog's do; run as root"))
struct AbandonedCacheFileTests {
    @Test func removesOnlyThisJobsRegularCacheFiles() throws {
        let directory = NSTemporaryDirectory() + "/shifter-cache-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let names = ["shifter-job-7-1a2b.xfs", "shifter-job-7-ffff.xfs", "shifter-job-70-1a2b.xfs",
                     "shifter-job-7-1a2b.txt", "other-job-7-1a2b.xfs"]
        for name in names { FileManager.default.createFile(atPath: directory + "/" + name, contents: Data("x".utf8)) }
        // A prolog charges the file to the job's user.
        FileManager.default.createFile(atPath: directory + "/shifter-job-7-0b0b.xfs", contents: Data("x".utf8))
        chown(directory + "/shifter-job-7-0b0b.xfs", 1000, 100)
        try FileManager.default.createSymbolicLink(atPath: directory + "/shifter-job-7-link.xfs", withDestinationPath: "/etc/hostname")
        let layout = RootLayout(name: "job-7", udiMount: "/var/udiMount", loopMount: "/var/loopMount")

        let left = PerNodeCache.removeAbandonedFiles(of: layout, in: directory)

        #expect(left.isEmpty)
        let remaining = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(remaining == ["other-job-7-1a2b.xfs", "shifter-job-7-1a2b.txt", "shifter-job-7-link.xfs", "shifter-job-70-1a2b.xfs"])
    }

    @Test func theEpilogReadsTheCacheDirectoryOnlyWhereThePrologLeftItsMarker() throws {
        let top = NSTemporaryDirectory() + "/shifter-epilog-test-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: top) }
        for directory in ["udi", "loop", "cache"] {
            try FileManager.default.createDirectory(atPath: top + "/" + directory, withIntermediateDirectories: true)
        }
        var config = SiteConfig(udiMount: top + "/udi", loopMount: top + "/loop", imagePath: top + "/images")
        config.perNodeCachePath = top + "/cache"
        let abandoned = top + "/cache/shifter-job-9-0a0a.xfs"
        FileManager.default.createFile(atPath: abandoned, contents: Data("x".utf8))

        // No marker: this node's prolog never began a cache, and the shared directory is left alone.
        #expect(JobRoot.remove(config: config, jobID: 9).isEmpty)
        #expect(FileManager.default.fileExists(atPath: abandoned))

        let marker = RootLayout.job(9, config: config).cacheMarkerFile
        #expect(marker == top + "/udi/job-9.caches")
        FileManager.default.createFile(atPath: marker, contents: Data())
        #expect(JobRoot.remove(config: config, jobID: 9).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: abandoned))
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func aMissingDirectoryIsNothingToRemove() {
        let layout = RootLayout(name: "job-7", udiMount: "/var/udiMount", loopMount: "/var/loopMount")
        #expect(PerNodeCache.removeAbandonedFiles(of: layout, in: "/nonexistent/shifter-cache").isEmpty)
    }
}
