import Foundation
import Testing
@testable import ShifterImage

/// The flattening rules, checked on generated layers and read back with squashfs-tools.
@Suite(.enabled(if: unsquashfsPath != nil, "squashfs-tools (unsquashfs) is not installed; images cannot be read back"))
struct LayerFlattenerTests {
    @Test func keepsTypesModesOwnersTimesAndXattrs() throws {
        let scratch = try ScratchDirectory()
        let (image, summary) = try flatten([[
            .directory("etc", mode: 0o750, uid: 10, gid: 20),
            .file("etc/hosts", "127.0.0.1 localhost\n", mode: 0o640, uid: 1000, gid: 100,
                  xattrs: [("user.origin", Array("layer".utf8)), ("security.capability", [1, 2, 3]), ("system.posix_acl_access", [2, 0, 0, 0])]),
            .file("bin/tool", "#!/bin/sh\n", mode: 0o4755),
            .directory("tmp", mode: 0o1777),
            .symlink("etc/localtime", to: "/usr/share/zoneinfo/UTC"),
            .fifo("run/fifo"),
            .device("dev/null"),
            .file("empty", ""),
        ]], scratch: scratch)
        let tree = try inspect(image, scratch: scratch)
        #expect(tree["/etc"]?.permissions == "rwxr-x---")
        #expect(tree["/etc"]?.owner == "10/20")
        #expect(tree["/etc/hosts"]?.text == "127.0.0.1 localhost\n")
        #expect(tree["/etc/hosts"]?.permissions == "rw-r-----")
        #expect(tree["/etc/hosts"]?.owner == "1000/100")
        #expect(tree["/etc/hosts"]?.xattrs == ["user.origin": Array("layer".utf8), "security.capability": [1, 2, 3]])
        #expect(tree["/bin/tool"]?.permissions == "rwsr-xr-x")
        #expect(tree["/tmp"]?.permissions == "rwxrwxrwt")
        #expect(tree["/etc/localtime"]?.type == "l")
        #expect(tree["/etc/localtime"]?.linkTarget == "/usr/share/zoneinfo/UTC")
        #expect(tree["/run/fifo"]?.type == "p")
        #expect(tree["/dev/null"] == nil)
        #expect(tree["/dev"]?.type == "d")
        #expect(tree["/empty"]?.content == Data())
        #expect(summary.droppedDeviceCount == 1)
        #expect(summary.droppedAttributeCount == 1)
    }

    @Test(arguments: [TarBuilder.Compression.none, .gzip, .zstd])
    func readsEveryLayerCompression(compression: TarBuilder.Compression) throws {
        let scratch = try ScratchDirectory()
        let (image, _) = try flatten([[.file("a", "plain")], [.file("b", "upper")]], scratch: scratch, compression: compression)
        let tree = try inspect(image, scratch: scratch)
        #expect(tree["/a"]?.text == "plain")
        #expect(tree["/b"]?.text == "upper")
    }

    @Test(arguments: SquashfsCompression.Algorithm.allCases)
    func writesEveryImageCompression(algorithm: SquashfsCompression.Algorithm) throws {
        let scratch = try ScratchDirectory()
        let big = Data((0..<600_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) })
        let options = SquashfsOptions(compression: SquashfsCompression(algorithm: algorithm), workerCount: 2)
        let (image, _) = try flatten([[.file("big", data: big), .file("small", "tail")]], scratch: scratch, options: options)
        // Read back with libsquashfs' reader: unsquashfs 4.5 rejects the lz4 metadata blocks that
        // libsquashfs 1.2 writes (its own tar2sqfs output too), which the kernel mounts fine.
        let tree = try readThroughSqfs2tar(image, scratch: scratch)
        #expect(tree["/big"]?.content == big)
        #expect(tree["/small"]?.content == Data("tail".utf8))
        let superblock = try run(unsquashfsPath ?? "", ["-s", image])
        #expect(superblock.contains("Compression \(algorithm.rawValue)"))
    }

    @Test func upperLayerWinsAndLowerDataIsNotWritten() throws {
        let scratch = try ScratchDirectory()
        let lower = Data(repeating: 0x41, count: 3_000_000)
        let (image, summary) = try flatten([
            [.directory("d", mode: 0o700), .file("d/f", data: lower), .file("keep", "lower")],
            [.directory("d", mode: 0o755), .file("d/f", "upper")],
        ], scratch: scratch)
        let tree = try inspect(image, scratch: scratch)
        #expect(tree["/d/f"]?.text == "upper")
        #expect(tree["/d"]?.permissions == "rwxr-xr-x")
        #expect(tree["/keep"]?.text == "lower")
        // The shadowed 3 MB were skipped in the stream, not stored.
        #expect(summary.dataBytes == UInt64("upper".utf8.count + "lower".utf8.count))
    }

    @Test func whiteoutRemovesLowerEntries() throws {
        let scratch = try ScratchDirectory()
        let (image, _) = try flatten([
            [.file("a/x", "x"), .file("a/y", "y"), .file("gone/deep/file", "z")],
            [.whiteout("a/x"), .whiteout("gone")],
        ], scratch: scratch)
        let tree = try inspect(image, scratch: scratch)
        #expect(tree["/a/x"] == nil)
        #expect(tree["/a/y"]?.text == "y")
        #expect(tree["/gone"] == nil)
        #expect(tree["/gone/deep/file"] == nil)
        #expect(tree.keys.allSatisfy { !$0.contains(".wh.") })
    }

    @Test func whiteoutDoesNotHideItsOwnLayer() throws {
        let scratch = try ScratchDirectory()
        let (image, _) = try flatten([
            [.file("a/x", "old")],
            [.file("a/x", "new"), .whiteout("a/x")],
        ], scratch: scratch)
        #expect(try inspect(image, scratch: scratch)["/a/x"]?.text == "new")
    }

    @Test func opaqueDirectoryHidesLowerContents() throws {
        let scratch = try ScratchDirectory()
        let (image, _) = try flatten([
            [.directory("d", mode: 0o700), .file("d/old", "o"), .file("d/sub/old", "o"), .file("other", "kept")],
            [.directory("d", mode: 0o750), .opaque("d"), .file("d/new", "n")],
        ], scratch: scratch)
        let tree = try inspect(image, scratch: scratch)
        #expect(tree["/d"]?.permissions == "rwxr-x---")
        #expect(tree["/d/new"]?.text == "n")
        #expect(tree["/d/old"] == nil)
        #expect(tree["/d/sub"] == nil)
        #expect(tree["/other"]?.text == "kept")
    }

    @Test func directoryReplacedByFileAndFileByDirectory() throws {
        let scratch = try ScratchDirectory()
        let (image, _) = try flatten([
            [.file("p/child", "c"), .file("q", "file")],
            [.file("p", "now a file"), .file("q/inside", "i")],
        ], scratch: scratch)
        let tree = try inspect(image, scratch: scratch)
        #expect(tree["/p"]?.type == "-")
        #expect(tree["/p"]?.text == "now a file")
        #expect(tree["/p/child"] == nil)
        #expect(tree["/q"]?.type == "d")
        #expect(tree["/q/inside"]?.text == "i")
    }

    @Test func impliedDirectoriesTakeMetadataFromLowerLayers() throws {
        let scratch = try ScratchDirectory()
        let (image, _) = try flatten([
            [.directory("usr", mode: 0o711, uid: 5, gid: 6)],
            [.file("usr/bin/x", "x")],
        ], scratch: scratch)
        let tree = try inspect(image, scratch: scratch)
        #expect(tree["/usr"]?.permissions == "rwx--x--x")
        #expect(tree["/usr"]?.owner == "5/6")
        #expect(tree["/usr/bin"]?.permissions == "rwxr-xr-x")
    }

    @Test func deviceInUpperLayerHidesLowerFile() throws {
        let scratch = try ScratchDirectory()
        let (image, _) = try flatten([[.file("dev/x", "file")], [.device("dev/x")]], scratch: scratch)
        #expect(try inspect(image, scratch: scratch)["/dev/x"] == nil)
    }

    @Test func hardLinksWithinALayerShareAnInode() throws {
        let scratch = try ScratchDirectory()
        let (image, _) = try flatten([[
            .file("bin/busybox", "BB", mode: 0o755), .hardlink("bin/sh", to: "bin/busybox"), .hardlink("sbin/init", to: "./bin/busybox"),
        ]], scratch: scratch)
        let tree = try inspect(image, scratch: scratch)
        let inodes = Set(["/bin/busybox", "/bin/sh", "/sbin/init"].compactMap { tree[$0]?.inode })
        #expect(inodes.count == 1)
        #expect(tree["/sbin/init"]?.text == "BB")
        #expect(tree["/sbin/init"]?.permissions == "rwxr-xr-x")
    }

    @Test func hardLinkToALowerLayer() throws {
        let scratch = try ScratchDirectory()
        let (image, _) = try flatten([
            [.file("lib/real", "data")],
            [.hardlink("lib/alias", to: "lib/real")],
        ], scratch: scratch)
        let tree = try inspect(image, scratch: scratch)
        #expect(tree["/lib/alias"]?.text == "data")
        #expect(tree["/lib/alias"]?.inode == tree["/lib/real"]?.inode)
    }

    @Test func hardLinkKeepsTheContentItsLayerSaw() throws {
        let scratch = try ScratchDirectory()
        // Layer 0 links x to y; layer 1 replaces y. x must keep layer 0's data, although top-down
        // reading skips layer 0's y when it first passes it.
        let (image, _) = try flatten([
            [.file("y", "old y"), .hardlink("x", to: "y")],
            [.file("y", "new y")],
        ], scratch: scratch)
        let tree = try inspect(image, scratch: scratch)
        #expect(tree["/y"]?.text == "new y")
        #expect(tree["/x"]?.text == "old y")
        #expect(tree["/x"]?.inode != tree["/y"]?.inode)
    }

    @Test func hardLinkTargetHiddenButLinkedFromAbove() throws {
        let scratch = try ScratchDirectory()
        // Layer 2 links a to b; layer 1 removed b with a whiteout ... of a different name, so b of
        // layer 0 is what the link meant; layer 2 also replaces b itself.
        let (image, _) = try flatten([
            [.file("b", "base b")],
            [.file("c", "c")],
            [.hardlink("a", to: "b"), .file("b2", "x")],
        ], scratch: scratch)
        let tree = try inspect(image, scratch: scratch)
        #expect(tree["/a"]?.text == "base b")
        #expect(tree["/a"]?.inode == tree["/b"]?.inode)
    }

    @Test func hardLinkToMissingFileFails() throws {
        let scratch = try ScratchDirectory()
        let error = #expect(throws: ImageImportError.self) {
            try flatten([[.file("a", "a")], [.hardlink("link", to: "nowhere")]], scratch: scratch)
        }
        #expect(error?.code == .missingLinkTarget)
        #expect(error?.message.contains("\"nowhere\"") == true)
    }

    @Test(arguments: [
        ("../evil", "contains \"..\""),
        ("a/../../evil", "contains \"..\""),
        ("/etc/passwd", "path is absolute"),
    ])
    func refusesPathsThatLeaveTheRoot(path: String, reason: String) throws {
        let scratch = try ScratchDirectory()
        let error = #expect(throws: ImageImportError.self) {
            try flatten([[.file("ok", "ok"), .file(path, "evil")]], scratch: scratch)
        }
        #expect(error?.code == .unsafePath)
        #expect(error?.message.contains(reason) == true)
        #expect(error?.message.contains("L0") == true)
    }

    @Test func refusesHardLinkTargetsThatLeaveTheRoot() throws {
        let scratch = try ScratchDirectory()
        let error = #expect(throws: ImageImportError.self) {
            try flatten([[.hardlink("shadow", to: "../../etc/shadow")]], scratch: scratch)
        }
        #expect(error?.code == .unsafePath)
    }

    @Test func refusesWritingThroughASymlinkOfTheSameLayer() throws {
        let scratch = try ScratchDirectory()
        let error = #expect(throws: ImageImportError.self) {
            try flatten([[.symlink("etc", to: "/host/etc"), .file("etc/passwd", "root::0:0")]], scratch: scratch)
        }
        #expect(error?.code == .unsafePath)
        #expect(error?.message.contains("beneath \"etc\", which is a symbolic link") == true)
    }

    @Test func symbolicLinksAreStoredAs0777WhateverTheirTarEntrySays() throws {
        let scratch = try ScratchDirectory()
        let (image, _) = try flatten([[.symlink("a", to: "b", mode: 0o644), .symlink("c", to: "/d", mode: 0o777)]], scratch: scratch)
        let tree = try inspect(image, scratch: scratch)
        #expect(tree["/a"]?.type == "l")
        #expect(tree["/a"]?.permissions == "rwxrwxrwx")
        #expect(tree["/c"]?.permissions == "rwxrwxrwx")
    }

    @Test func symlinkFromALowerLayerIsNotFollowed() throws {
        let scratch = try ScratchDirectory()
        let (image, _) = try flatten([
            [.symlink("data", to: "/etc")],
            [.file("data/passwd", "mine")],
        ], scratch: scratch)
        let tree = try inspect(image, scratch: scratch)
        #expect(tree["/data"]?.type == "d")
        #expect(tree["/data/passwd"]?.text == "mine")
        #expect(tree["/etc"] == nil)
    }

    @Test func laterEntryOfTheSameLayerWins() throws {
        let scratch = try ScratchDirectory()
        let (image, _) = try flatten([[.file("f", "first"), .file("f", "second")]], scratch: scratch)
        #expect(try inspect(image, scratch: scratch)["/f"]?.text == "second")
    }

    @Test func notATarFails() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("junk")
        try Data(String(repeating: "this is not a tar archive\n", count: 100).utf8).write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: ImageImportError.self) {
            try LayerFlattener.flatten(layers: [LayerBlob(path: path, name: "sha256:junk")], into: scratch.file("out"))
        }
        #expect(error?.code == .invalidLayer)
        #expect(error?.message.contains("sha256:junk") == true)
    }

    @Test func truncatedLayerFails() throws {
        let scratch = try ScratchDirectory()
        let whole = scratch.file("whole.tar.gz")
        let noise = Data((0..<400_000).map { UInt8(truncatingIfNeeded: ($0 &* 7919) >> 3) })
        try TarBuilder.write([.file("big", data: noise), .file("after", "x")], to: whole)
        let data = try Data(contentsOf: URL(fileURLWithPath: whole))
        let cut = scratch.file("cut.tar.gz")
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: cut))
        let error = #expect(throws: ImageImportError.self) {
            try LayerFlattener.flatten(layers: [LayerBlob(path: cut, name: "sha256:cut")], into: scratch.file("out"))
        }
        #expect(error?.code == .invalidLayer)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"), "python3 is not installed"))
    func namesAreSortedByBytesAndKeptAsUTF8() throws {
        // libarchive cannot write non-ASCII names in the C locale tests run in, so Python writes this
        // pax tar; reading it must still work in the C locale.
        let scratch = try ScratchDirectory()
        let names = ["b", "B", "a", "é", "_x", "a.b", "a-b", "Z", "日本"]
        let layer = scratch.file("utf8.tar")
        try run("/usr/bin/python3", ["-c", """
            import io, sys, tarfile
            with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
                for name in sys.argv[2:]:
                    data = name.encode()
                    info = tarfile.TarInfo("d/" + name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            """, layer] + names)
        let image = scratch.file("utf8.squashfs")
        try LayerFlattener.flatten(layers: [LayerBlob(path: layer, name: "utf8")], into: image)
        let tree = try inspect(image, scratch: scratch)
        for name in names { #expect(tree["/d/\(name)"]?.text == name) }
    }

    @Test func manyEntriesInOneDirectory() throws {
        let scratch = try ScratchDirectory()
        // Enough entries to need several directory headers and metadata blocks.
        let entries: [TarEntry] = (0..<3000).map { .file("many/file-\($0)-" + String(repeating: "n", count: $0 % 40), "\($0)") }
        let (image, _) = try flatten([entries], scratch: scratch)
        let tree = try inspect(image, scratch: scratch)
        #expect(tree.count == 3002)
        #expect(tree["/many/file-2999-" + String(repeating: "n", count: 2999 % 40)]?.text == "2999")
    }
}
