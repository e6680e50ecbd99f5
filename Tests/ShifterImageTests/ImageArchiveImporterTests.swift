import CArchive
import Foundation
import ShifterCore
import Synchronization
import Testing
@testable import ShifterImage

#if canImport(Glibc)
import Glibc
#endif

/// Image archives built here with libarchive, byte for byte known: an OCI layout packed as a tar
/// and a docker-archive, each holding one layer, and archives broken in one way each.
private struct ArchiveFixture {
    let scratch: ScratchDirectory
    let layer: Data
    let layerDigest: String
    let config: Data
    let configDigest: String

    init() throws {
        scratch = try ScratchDirectory()
        let layerPath = scratch.path + "/layer.tar.gz"
        try TarBuilder.write([.directory("etc"), .file("etc/os-release", "NAME=archived\n"), .file("bin/tool", "#!/bin/sh\n", mode: 0o755)],
                             to: layerPath)
        layer = try Data(contentsOf: URL(fileURLWithPath: layerPath))
        layerDigest = try SHA256Hasher.digest(of: [UInt8](layer))
        config = Data(#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","FROM=archive"],"WorkingDir":"/srv","Cmd":["/bin/tool"]}}"#.utf8)
        configDigest = try SHA256Hasher.digest(of: [UInt8](config))
    }

    func hex(_ digest: String) -> String { String(digest.dropFirst("sha256:".count)) }

    var manifest: Data { manifest(layerSize: layer.count) }

    /// The image's manifest, which gives the layer's size as `layerSize`.
    func manifest(layerSize: Int) -> Data {
        Data(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(configDigest)","size":\#(config.count)},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"\#(layerDigest)","size":\#(layerSize)}]}"#.utf8)
    }

    /// An OCI layout as a tar, compressed with `compression`, whose manifest gives the layer's size
    /// as `layerSize`; `mutate` may change its entries.
    func ociArchive(
        _ name: String, compression: TarBuilder.Compression = .none, layerSize: Int? = nil,
        mutate: (inout [TarEntry], String) -> Void = { _, _ in }
    ) throws -> (path: String, manifestDigest: String) {
        let manifest = self.manifest(layerSize: layerSize ?? layer.count)
        let manifestDigest = try SHA256Hasher.digest(of: [UInt8](manifest))
        let index = #"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(manifestDigest)","size":\#(manifest.count),"platform":{"architecture":"amd64","os":"linux"}}]}"#
        var entries: [TarEntry] = [
            .file("oci-layout", #"{"imageLayoutVersion":"1.0.0"}"#), .file("index.json", index),
            .file("blobs/sha256/" + hex(manifestDigest), data: manifest), .file("blobs/sha256/" + hex(configDigest), data: config),
            .file("blobs/sha256/" + hex(layerDigest), data: layer),
        ]
        mutate(&entries, manifestDigest)
        let path = scratch.path + "/" + name
        try TarBuilder.write(entries, to: path, compression: compression)
        return (path, manifestDigest)
    }

    /// A docker-archive as `docker save` writes it (its layer under a legacy path that is a link).
    func dockerArchive(_ name: String, images: Int = 1) throws -> String {
        let entry = #"{"Config":"\#(hex(configDigest)).json","RepoTags":["tool:1"],"Layers":["abc/layer.tar"]}"#
        let entries: [TarEntry] = [
            .file("manifest.json", "[" + Array(repeating: entry, count: images).joined(separator: ",") + "]"),
            .file(hex(configDigest) + ".json", data: config), .file("blobs/sha256/" + hex(layerDigest), data: layer),
            .symlink("abc/layer.tar", to: "../blobs/sha256/" + hex(layerDigest)),
        ]
        let path = scratch.path + "/" + name
        try TarBuilder.write(entries, to: path, compression: .gzip)
        return path
    }
}

private func importArchive(
    _ path: String, into store: ImageStore, as name: String, userACL: [UInt32] = [], limits: ImageArchiveImporter.Limits = .standard,
    events: (@Sendable (ImportEvent) -> Void)? = nil
) throws -> ImportResult {
    let input = open(path, O_RDONLY | O_CLOEXEC)
    guard input >= 0 else { throw ImageImportError(.io, "cannot open \(path)") }
    defer { close(input) }
    let importer = ImageArchiveImporter(store: store, options: ImportOptions(userACL: userACL), limits: limits)
    return try importer.importArchive(input, name: "archive", as: try ImageReference.parse("custom:" + name), events: events)
}

private func failure(_ path: String, into store: ImageStore, limits: ImageArchiveImporter.Limits = .standard) -> ImageImportError? {
    do {
        _ = try importArchive(path, into: store, as: "bad:1", limits: limits)
        return nil
    } catch let error as ImageImportError {
        return error
    } catch {
        return ImageImportError(.io, "\(error)")
    }
}

/// The files in the store's staging directories, and their bytes, all together.
private func stagingUsage(_ store: ImageStore) -> (files: Int, bytes: Int64) {
    let directories = (try? FileOperations.directoryEntries(store.directory).filter { $0.hasPrefix(ImageStore.stagingPrefix) }) ?? []
    var usage: (files: Int, bytes: Int64) = (0, 0)
    for directory in directories {
        let top = store.directory + "/" + directory
        guard let walker = FileManager.default.enumerator(atPath: top) else { continue }
        for case let path as String in walker {
            var status = stat()
            guard lstat(top + "/" + path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { continue }
            usage.files += 1
            usage.bytes += Int64(status.st_size)
        }
    }
    return usage
}

/// Writes a pax tar holding one sparse file of `size` bytes whose only data is its last 4 KiB, as
/// `tar --sparse` writes a disk image: a few kilobytes of archive.
private func writeSparseTar(_ path: String, entry name: String, size: Int64) throws {
    guard let archive = archive_write_new() else { throw TarBuilder.Failure(description: "archive_write_new failed") }
    defer { archive_write_free(archive) }
    archive_write_set_format_pax(archive)
    guard archive_write_open_filename(archive, path) == ARCHIVE_OK, let entry = archive_entry_new() else {
        throw TarBuilder.Failure(description: "cannot open \(path)")
    }
    defer { archive_entry_free(entry) }
    archive_entry_copy_pathname(entry, name)
    archive_entry_set_filetype(entry, 0o100000)
    archive_entry_set_perm(entry, 0o644)
    archive_entry_set_size(entry, size)
    archive_entry_sparse_add_entry(entry, size - 4096, 4096)
    guard archive_write_header(archive, entry) == ARCHIVE_OK else {
        throw TarBuilder.Failure(description: "writing header \(name): " + String(cString: archive_error_string(archive)))
    }
    // The writer takes the whole file and keeps only the data the sparse map names.
    let chunk = [UInt8](repeating: 0, count: 1 << 20)
    var left = size
    while left > 0 {
        let count = Int(min(left, Int64(chunk.count)))
        guard archive_write_data(archive, chunk, count) == count else { throw TarBuilder.Failure(description: "writing data of \(name)") }
        left -= Int64(count)
    }
    guard archive_write_close(archive) == ARCHIVE_OK else { throw TarBuilder.Failure(description: "closing \(path)") }
}

/// Archives that would have an import write far more than they hold, or that are mostly what
/// their index does not name.
enum OversizedArchive: String, CaseIterable, Sendable {
    /// A sparse file of 64 MiB in about 10 KB, no index.
    case sparse
    /// 10,000 empty files and 32 MiB of zeros, zstd-compressed, no index.
    case floodWithoutIndex
    /// An image and 200 more entries, with a limit of 100 entries.
    case tooManyEntries
    /// An image whose manifest gives its layer one byte more than the archive holds.
    case layerLargerThanTheArchiveHolds
    /// An image whose configuration and layer take more than the limit of 100 bytes.
    case overTheByteLimit
}

@Suite("Image archives")
struct ImageArchiveImporterTests {
    @Test("an OCI layout tar is imported under its manifest digest, with the configuration's settings")
    func ociLayout() throws {
        let fixture = try ArchiveFixture()
        let (path, manifestDigest) = try fixture.ociArchive("oci.tar")
        let storeDirectory = try ScratchDirectory()
        let store = ImageStore(directory: storeDirectory.path)
        let result = try importArchive(path, into: store, as: "mine:1", userACL: [1001])
        #expect(result.metadata.digest == manifestDigest)
        #expect(result.metadata.layers == [fixture.layerDigest])
        #expect(result.metadata.env == ["PATH=/bin", "FROM=archive"])
        #expect(result.metadata.workdir == "/srv")
        #expect(result.metadata.cmd == ["/bin/tool"])
        #expect(result.metadata.userACL == [1001])
        #expect(result.metadata.source == "custom:mine:1")
        let id = try #require(ImageID(manifestDigest))
        #expect(store.contains(id))
        // The same archive again: already there, tagged anew.
        let again = try importArchive(path, into: store, as: "again:1")
        #expect(again.alreadyPresent)
        #expect(try FileOperations.directoryEntries(store.directory).filter { $0.hasPrefix(ImageStore.stagingPrefix) }.isEmpty)
    }

    @Test("a docker-archive is imported under its configuration's digest; its layer link is followed")
    func dockerArchive() throws {
        let fixture = try ArchiveFixture()
        let storeDirectory = try ScratchDirectory()
        let store = ImageStore(directory: storeDirectory.path)
        let result = try importArchive(try fixture.dockerArchive("docker.tar.gz"), into: store, as: "tool:1")
        let manifest = ArchiveContents.synthesisedManifest(config: fixture.configDigest, layers: [fixture.layerDigest])
        #expect(result.metadata.digest == (try SHA256Hasher.digest(of: Array(manifest.utf8))))
        #expect(result.metadata.digest != fixture.configDigest)
        #expect(result.metadata.layers == [fixture.layerDigest])
        #expect(result.summary?.entryCount ?? 0 >= 3)
    }

    @Test("a docker-archive whose configuration is another image's manifest does not take that image's id")
    func noImpersonation() throws {
        let fixture = try ArchiveFixture()
        // The configuration file holds the bytes of the OCI image's manifest, whose digest is that
        // image's id in the store; the layer beside it is whatever the archive brings.
        let manifestDigest = try SHA256Hasher.digest(of: [UInt8](fixture.manifest))
        let path = fixture.scratch.path + "/impostor.tar"
        try TarBuilder.write([
            .file("manifest.json", #"[{"Config":"config.json","Layers":["evil.tar"]}]"#),
            .file("config.json", data: fixture.manifest), .file("evil.tar", data: fixture.layer),
        ], to: path, compression: .none)
        let storeDirectory = try ScratchDirectory()
        let store = ImageStore(directory: storeDirectory.path)
        let result = try importArchive(path, into: store, as: "impostor:1")
        #expect(result.metadata.digest != manifestDigest)
        #expect(!store.contains(try #require(ImageID(manifestDigest))))
    }

    @Test("an image obtained again is let in: a public request makes it public, a private one adds its users")
    func admitted() throws {
        let fixture = try ArchiveFixture()
        let (path, manifestDigest) = try fixture.ociArchive("oci.tar")
        let storeDirectory = try ScratchDirectory()
        let store = ImageStore(directory: storeDirectory.path)
        let id = try #require(ImageID(manifestDigest))
        _ = try importArchive(path, into: store, as: "first:1", userACL: [1001])
        #expect(try store.metadata(for: id).userACL == [1001])
        let second = try importArchive(path, into: store, as: "second:1", userACL: [1002])
        #expect(second.alreadyPresent)
        #expect(try store.metadata(for: id).userACL == [1001, 1002])
        var status = stat()
        #expect(stat(store.imagePath(for: id), &status) == 0 && status.st_mode & 0o777 == 0o600)
        _ = try importArchive(path, into: store, as: "public:1")
        #expect(try store.metadata(for: id).userACL == [])
        #expect(stat(store.imagePath(for: id), &status) == 0 && status.st_mode & 0o777 == 0o644)
        // Public stays public.
        _ = try importArchive(path, into: store, as: "again:1", userACL: [1003])
        #expect(try store.metadata(for: id).userACL == [])
    }

    @Test("broken archives are refused with the reason, and nothing is stored")
    func broken() throws {
        let fixture = try ArchiveFixture()
        let scratch = try ScratchDirectory()
        let store = ImageStore(directory: scratch.path)
        let layerName = "blobs/sha256/" + fixture.hex(fixture.layerDigest)
        // A layer whose bytes are not what its digest says.
        let tampered = try fixture.ociArchive("tampered.tar") { entries, _ in
            entries.removeAll { $0.path == layerName }
            entries.append(.file(layerName, "not the layer"))
        }.path
        #expect(failure(tampered, into: store)?.code == .digestMismatch)
        // A blob the manifest names but the archive lacks.
        let missing = try fixture.ociArchive("missing.tar") { entries, _ in entries.removeAll { $0.path == layerName } }.path
        #expect(failure(missing, into: store)?.message.contains("which the archive does not hold") == true)
        // An entry that leaves the archive, and a link that points out of it.
        let escaping = try fixture.ociArchive("escape.tar") { entries, _ in entries.append(.file("../x", "x")) }.path
        #expect(failure(escaping, into: store)?.message == "archive: entry \"../x\" leaves the archive")
        let linked = try fixture.ociArchive("link.tar") { entries, _ in entries.append(.symlink("blobs/l", to: "../../../etc/passwd")) }.path
        #expect(failure(linked, into: store)?.message == "archive: link \"blobs/l\" points outside the archive")
        // Two images in one docker-archive.
        let two = try fixture.dockerArchive("two.tar", images: 2)
        #expect(failure(two, into: store)?.message == "archive: holds 2 images (tool:1, tool:1); save one image per archive")
        // Not an image archive at all.
        let plain = scratch.path + "/plain.tar"
        try TarBuilder.write([.file("README", "hello")], to: plain, compression: .none)
        #expect(failure(plain, into: store)?.message.hasSuffix("is it an image archive?") == true)
        #expect(try store.images().isEmpty)
        #expect(try FileOperations.directoryEntries(store.directory).filter { $0.hasPrefix(ImageStore.stagingPrefix) }.isEmpty)
    }

    @Test("only the files the index names reach staging: a huge entry and a flood of small ones beside the image are never written")
    func onlyNamedFilesAreStaged() throws {
        let fixture = try ArchiveFixture()
        let (path, manifestDigest) = try fixture.ociArchive("padded.tar.zst", compression: .zstd) { entries, _ in
            entries.append(.file("junk/zeros", data: Data(count: 64 << 20)))
            entries += (0..<10_000).map { .file("flood/\($0)", "") }
        }
        let storeDirectory = try ScratchDirectory()
        let store = ImageStore(directory: storeDirectory.path)
        // Staging as it is when the image has been found, before the conversion.
        let staged = Mutex<(files: Int, bytes: Int64)?>(nil)
        let result = try importArchive(path, into: store, as: "padded:1") { event in
            if case .resolved = event { staged.withLock { $0 = stagingUsage(store) } }
        }
        #expect(result.metadata.digest == manifestDigest)
        let usage = try #require(staged.withLock { $0 })
        #expect(usage.files == 2)
        #expect(usage.bytes == Int64(fixture.config.count + fixture.layer.count))
    }

    /// Each refused with its reason before anything is written. The store's directory does not
    /// exist: an import that made its staging directory, or wrote anything, would fail on the
    /// store instead.
    @Test(arguments: OversizedArchive.allCases)
    func refusedBeforeAnythingIsWritten(_ archive: OversizedArchive) throws {
        let fixture = try ArchiveFixture()
        let layerEntry = "blobs/sha256/" + fixture.hex(fixture.layerDigest)
        var limits = ImageArchiveImporter.Limits.standard
        let path: String
        let reason: String
        switch archive {
        case .sparse:
            path = fixture.scratch.path + "/sparse.tar"
            try writeSparseTar(path, entry: "disk.img", size: 64 << 20)
            reason = "archive: entry \"disk.img\" is a sparse file, which no image archive holds"
        case .floodWithoutIndex:
            path = fixture.scratch.path + "/flood.tar.zst"
            try TarBuilder.write((0..<10_000).map { .file("f/\($0)", "") } + [.file("zeros", data: Data(count: 32 << 20))], to: path, compression: .zstd)
            reason = "archive: has neither index.json (an OCI image layout) nor manifest.json (docker save); is it an image archive?"
        case .tooManyEntries:
            path = try fixture.ociArchive("entries.tar", compression: .gzip) { entries, _ in entries += (0..<200).map { .file("f/\($0)", "") } }.path
            limits.maximumEntries = 100
            reason = "archive: more than 100 entries, the limit for an image archive (archiveImportEntryLimit)"
        case .layerLargerThanTheArchiveHolds:
            let built = try fixture.ociArchive("size.tar", layerSize: fixture.layer.count + 1)
            path = built.path
            reason = "archive: entry \"\(layerEntry)\" is \(fixture.layer.count) bytes, but manifest \(built.manifestDigest) says \(fixture.layer.count + 1) for blob \(fixture.layerDigest)"
        case .overTheByteLimit:
            path = try fixture.ociArchive("bytes.tar").path
            limits.maximumBlobBytes = 100
            reason = ", more than 100, the limit for an import (archiveImportSizeLimit)"
        }
        let store = ImageStore(directory: fixture.scratch.path + "/no-store")
        let error = try #require(failure(path, into: store, limits: limits))
        #expect(error.message.hasPrefix("archive: "))
        #expect(error.message.contains(reason), "\(error.message)")
        #expect(!FileManager.default.fileExists(atPath: store.directory))
    }
}
