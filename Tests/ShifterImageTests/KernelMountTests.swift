import Foundation
import Testing
@testable import ShifterImage

#if canImport(Glibc)
import Glibc
#endif

private let canLoopMount = geteuid() == 0 && FileManager.default.fileExists(atPath: "/dev/loop-control")

/// The image must be one the kernel mounts, not only one squashfs-tools reads.
@Suite(.enabled(if: canLoopMount, "needs root and /dev/loop-control to loop-mount an image"))
struct KernelMountTests {
    @Test(arguments: SquashfsCompression.Algorithm.allCases)
    func kernelMountsTheImage(algorithm: SquashfsCompression.Algorithm) throws {
        let scratch = try ScratchDirectory()
        let big = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 13) })
        let options = SquashfsOptions(compression: SquashfsCompression(algorithm: algorithm), workerCount: 2)
        let (image, _) = try flatten([
            [.file("usr/bin/real", "binary", mode: 0o755), .file("usr/lib/big", data: big), .file("gone", "x")],
            [.hardlink("usr/bin/alias", to: "usr/bin/real"), .symlink("lib", to: "usr/lib"), .fifo("run/pipe"),
             .whiteout("gone"), .directory("tmp", mode: 0o1777)],
        ], scratch: scratch, options: options)
        let mountPoint = scratch.file("mnt")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try run("/bin/mount", ["-t", "squashfs", "-o", "loop,ro", image, mountPoint])
        defer { _ = try? run("/bin/umount", [mountPoint]) }

        #expect(FileManager.default.contents(atPath: mountPoint + "/usr/bin/alias") == Data("binary".utf8))
        #expect(FileManager.default.contents(atPath: mountPoint + "/usr/lib/big") == big)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: mountPoint + "/lib") == "usr/lib")
        #expect(!FileManager.default.fileExists(atPath: mountPoint + "/gone"))
        var real = stat()
        var alias = stat()
        var pipe = stat()
        var tmp = stat()
        #expect(lstat(mountPoint + "/usr/bin/real", &real) == 0)
        #expect(lstat(mountPoint + "/usr/bin/alias", &alias) == 0)
        #expect(lstat(mountPoint + "/run/pipe", &pipe) == 0)
        #expect(lstat(mountPoint + "/tmp", &tmp) == 0)
        #expect(real.st_ino == alias.st_ino)
        #expect(real.st_nlink == 2)
        #expect(pipe.st_mode & S_IFMT == S_IFIFO)
        #expect(tmp.st_mode & 0o7777 == 0o1777)
        let listing = try FileManager.default.contentsOfDirectory(atPath: mountPoint).sorted()
        #expect(listing == ["lib", "run", "tmp", "usr"])
    }
}
