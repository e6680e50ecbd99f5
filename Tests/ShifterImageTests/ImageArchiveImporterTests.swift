import Foundation
import ShifterCore
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

    var manifest: Data {
        Data(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(configDigest)","size":\#(config.count)},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"\#(layerDigest)","size":\#(layer.count)}]}"#.utf8)
    }

    /// An OCI layout as a tar; `mutate` may change its entries.
    func ociArchive(_ name: String, mutate: (inout [TarEntry], String) -> Void = { _, _ in }) throws -> (path: String, manifestDigest: String) {
        let manifestDigest = try SHA256Hasher.digest(of: [UInt8](manifest))
        let index = #"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(manifestDigest)","size":\#(manifest.count),"platform":{"architecture":"amd64","os":"linux"}}]}"#
        var entries: [TarEntry] = [
            .file("oci-layout", #"{"imageLayoutVersion":"1.0.0"}"#), .file("index.json", index),
            .file("blobs/sha256/" + hex(manifestDigest), data: manifest), .file("blobs/sha256/" + hex(configDigest), data: config),
            .file("blobs/sha256/" + hex(layerDigest), data: layer),
        ]
        mutate(&entries, manifestDigest)
        let path = scratch.path + "/" + name
        try TarBuilder.write(entries, to: path, compression: .none)
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

private func importArchive(_ path: String, into store: ImageStore, as name: String, userACL: [UInt32] = []) throws -> ImportResult {
    let input = open(path, O_RDONLY | O_CLOEXEC)
    guard input >= 0 else { throw ImageImportError(.io, "cannot open \(path)") }
    defer { close(input) }
    let importer = ImageArchiveImporter(store: store, options: ImportOptions(userACL: userACL))
    return try importer.importArchive(input, name: "archive", as: try ImageReference.parse("custom:" + name))
}

private func failure(_ path: String, into store: ImageStore) -> ImageImportError? {
    do {
        _ = try importArchive(path, into: store, as: "bad:1")
        return nil
    } catch let error as ImageImportError {
        return error
    } catch {
        return ImageImportError(.io, "\(error)")
    }
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
}
