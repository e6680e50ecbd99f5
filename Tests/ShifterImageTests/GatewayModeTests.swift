import Foundation
import ShifterCore
import Testing

@testable import ShifterImage

#if canImport(Glibc)
import Glibc
#endif

/// The pure parts of `shifterimg`'s gateway mode: picking the mode from udiRoot.conf, and the
/// progress a pull at the gateway prints.
struct ImageServiceModeTests {
    private func config(_ extra: String) throws -> SiteConfig {
        try SiteConfig.parse("udiMount=/u\nloopMount=/l\nimagePath=/images\n" + extra, source: "udiRoot.conf").config
    }

    @Test func localAnywhereInTheListSelectsLocalMode() throws {
        guard case .local(let service) = try ImageServiceMode.select(config("imageGateway=local\n"), source: "udiRoot.conf") else {
            Issue.record("imageGateway=local did not select local mode")
            return
        }
        #expect(service.store.directory == "/images")
    }

    @Test func gatewayURLsNeedTheSystemName() throws {
        let mode = try ImageServiceMode.select(
            config("imageGateway=http://a:7777 https://b\nsystem=cluster\ngatewayTimeout=7\ndefaultImageType=custom\n"), source: "udiRoot.conf")
        guard case .gateway(let settings) = mode else {
            Issue.record("URLs did not select gateway mode")
            return
        }
        #expect(settings == ImageServiceMode.GatewaySettings(urls: ["http://a:7777", "https://b"], system: "cluster", timeout: 7, defaultImageType: .custom))
        #expect(throws: ImageImportError.self) { try ImageServiceMode.select(config("imageGateway=http://a\n"), source: "udiRoot.conf") }
    }

    @Test func noImageGatewayIsAnErrorThatSaysWhatToSet() throws {
        do {
            _ = try ImageServiceMode.select(config(""), source: "udiRoot.conf")
            Issue.record("a configuration without imageGateway selected a mode")
        } catch {
            #expect("\(error)".contains("imageGateway is not set"))
        }
    }
}

struct GatewayPullProgressTests {
    typealias Snapshot = GatewayPullProgress.Snapshot

    @Test(arguments: [
        (Snapshot(status: "PENDING", message: "queued"), "progress status=PENDING received=- total=- message=queued"),
        (Snapshot(status: "PULLING", received: 10, total: 200), "progress status=PULLING received=10 total=200"),
        (Snapshot(status: "FAILURE", message: "registry says:\nno\u{1B}[2J"), "progress status=FAILURE received=- total=- message=registry says: no [2J"),
    ])
    func plainLines(snapshot: Snapshot, line: String) {
        var progress = GatewayPullProgress(name: "docker:r/a:1")
        #expect(progress.record(snapshot).plainLines == [line])
    }

    @Test func onlyChangesMakeLinesAndKnownCountsAreKept() {
        var progress = GatewayPullProgress(name: "docker:r/a:1")
        let first = progress.record(Snapshot(status: "PULLING", received: 5, total: 100))
        #expect(first.statusChanged && first.changed)
        #expect(!progress.record(Snapshot(status: "PULLING", received: 5, total: 100)).changed)
        // The same status without counts keeps them: nothing changed.
        #expect(!progress.record(Snapshot(status: "PULLING")).changed)
        let more = progress.record(Snapshot(status: "PULLING", received: 50, total: 100))
        #expect(more.changed && !more.statusChanged)
        #expect(more.plainLines == ["progress status=PULLING received=50 total=100"])
        // A new status starts its own count but keeps the total.
        let ready = progress.record(Snapshot(status: "READY"))
        #expect(ready.statusChanged)
        #expect(ready.plainLines == ["progress status=READY received=- total=100"])
        #expect(progress.terminalLine() == "docker:r/a:1  READY  100 B")
    }

    @Test func terminalLineShowsBytesPercentageAndMessageWithinTheWidth() {
        var progress = GatewayPullProgress(name: "docker:r/a:1")
        #expect(progress.terminalLine() == "docker:r/a:1")
        _ = progress.record(Snapshot(status: "PULLING", received: 1536, total: 4 << 20, message: "downloading 3 layers"))
        #expect(progress.terminalLine() == "docker:r/a:1  PULLING  1.5 KiB / 4.0 MiB (0%)  downloading 3 layers")
        _ = progress.record(Snapshot(status: "PULLING", received: 4 << 20, total: 4 << 20, message: "downloading 3 layers"))
        #expect(progress.terminalLine().contains("4.0 MiB / 4.0 MiB (100%)"))
        #expect(progress.terminalLine(width: 30).count == 29)
    }
}

struct SquashfsFileImporterTests {
    /// A file that starts like a squashfs image; the importer checks only the magic.
    private func fakeImage(_ scratch: ScratchDirectory, name: String, content: [UInt8]) throws -> String {
        let path = scratch.path + "/" + name
        try Data(content).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func importsUnderTheFileDigestAndTagsTheName() throws {
        let scratch = try ScratchDirectory()
        let storeDirectory = scratch.path + "/store"
        try FileManager.default.createDirectory(atPath: storeDirectory, withIntermediateDirectories: true)
        let store = ImageStore(directory: storeDirectory)
        let content = Array("hsqs".utf8) + [UInt8](repeating: 7, count: 3 << 20)
        let file = try fakeImage(scratch, name: "tool.sqfs", content: content)
        let reference = try ImageReference.parse("custom:tool:1")
        let imported = try SquashfsFileImporter(store: store).importFile(file, as: reference)
        #expect(imported.digest == (try SHA256Hasher.digest(of: content)))
        #expect(imported.source == "custom:tool:1")
        #expect(try store.find(reference)?.digest == imported.digest)
        let id = try #require(ImageID(imported.digest))
        #expect(FileManager.default.contents(atPath: store.imagePath(for: id)) == Data(content))
        // Private: only root may read the files; the ACL is in the record.
        let shared = try SquashfsFileImporter(store: store).importFile(
            try fakeImage(scratch, name: "private.sqfs", content: Array("hsqs-private".utf8)), as: try ImageReference.parse("custom:mine"),
            userACL: [1002, 1001])
        let sharedID = try #require(ImageID(shared.digest))
        var status = stat()
        #expect(stat(store.imagePath(for: sharedID), &status) == 0 && status.st_mode & 0o777 == 0o600)
        #expect(shared.userACL == [1001, 1002])
        #expect(try FileOperations.directoryEntries(storeDirectory).filter { $0.hasPrefix(".") }.isEmpty)
    }

    @Test(arguments: [("not-squashfs", Array("PK\u{3}\u{4}zip".utf8), "not a squashfs file"), ("empty", [], "empty")])
    func refusesOtherFilesAndLeavesTheStoreAsItWas(name: String, content: [UInt8], reason: String) throws {
        let scratch = try ScratchDirectory()
        let storeDirectory = scratch.path + "/store"
        try FileManager.default.createDirectory(atPath: storeDirectory, withIntermediateDirectories: true)
        let file = try fakeImage(scratch, name: name, content: content)
        do {
            _ = try SquashfsFileImporter(store: ImageStore(directory: storeDirectory)).importFile(file, as: try ImageReference.parse("custom:x"))
            Issue.record("imported \(name)")
        } catch {
            #expect("\(error)".contains(reason))
        }
        #expect(try FileOperations.directoryEntries(storeDirectory).isEmpty)
    }

    /// A private image's full record (environment, labels, source) is root's alone; its access
    /// list, all that job submission reads as the user, is in a readable file of its own. Made
    /// public again, the record is readable and the access list gone.
    @Test func aPrivateImagesRecordIsRootsAndItsAccessListReadable() throws {
        let scratch = try ScratchDirectory()
        let storeDirectory = scratch.path + "/store"
        try FileManager.default.createDirectory(atPath: storeDirectory, withIntermediateDirectories: true)
        let store = ImageStore(directory: storeDirectory)
        let file = try fakeImage(scratch, name: "private.sqfs", content: Array("hsqs-secret".utf8))
        let imported = try SquashfsFileImporter(store: store).importFile(
            file, as: try ImageReference.parse("custom:secret"), userACL: [1001], groupACL: [2001])
        let id = try #require(ImageID(imported.digest))
        func mode(_ path: String) -> mode_t? {
            var status = stat()
            return stat(path, &status) == 0 ? status.st_mode & 0o777 : nil
        }
        #expect(mode(store.metadataPath(for: id)) == 0o600)
        #expect(mode(store.imagePath(for: id)) == 0o600)
        #expect(mode(store.accessPath(for: id)) == 0o644)
        #expect(mode(store.layout.tagDirectory) == 0o711)
        let access = try ImageMetadata.decode(Array(try #require(FileManager.default.contents(atPath: store.accessPath(for: id)))))
        #expect(access.userACL == [1001] && access.groupACL == [2001] && access.digest == id.digest)
        #expect(access.source.isEmpty && access.env.isEmpty && access.labels.isEmpty)
        // The same file imported publicly (by someone who could read it) makes the image public.
        let opened = try SquashfsFileImporter(store: store).importFile(file, as: try ImageReference.parse("custom:open"))
        // The readable record names the image by the public name, never the private one.
        #expect(opened.source == (try ImageReference.parse("custom:open")).canonical)
        #expect(try store.metadata(for: id).source == opened.source)
        #expect(mode(store.metadataPath(for: id)) == 0o644)
        #expect(mode(store.imagePath(for: id)) == 0o644)
        #expect(mode(store.accessPath(for: id)) == nil)
    }

    /// A store written before access lists had files of their own: its private records are closed
    /// and given one, its public ones left alone.
    @Test func closesThePrivateRecordsOfAnOlderStore() throws {
        let scratch = try ScratchDirectory()
        let store = ImageStore(directory: scratch.path)
        let hidden = ImageMetadata(format: "squashfs", digest: "sha256:" + String(repeating: "a", count: 64),
                                   manifestDigest: "sha256:" + String(repeating: "a", count: 64), userACL: [1001], source: "custom:x")
        let open = ImageMetadata(format: "squashfs", digest: "sha256:" + String(repeating: "b", count: 64),
                                 manifestDigest: "sha256:" + String(repeating: "b", count: 64), source: "custom:y")
        for record in [hidden, open] {
            let id = try #require(ImageID(record.digest))
            #expect(FileManager.default.createFile(atPath: store.imagePath(for: id), contents: Data("hsqs".utf8)))
            #expect(FileManager.default.createFile(atPath: store.metadataPath(for: id), contents: Data(try record.encoded()),
                                                   attributes: [.posixPermissions: 0o644]))
        }
        let closed = try store.closePrivateRecords()
        #expect(closed.map(\.digest) == [hidden.digest])
        var status = stat()
        #expect(stat(store.metadataPath(for: try #require(ImageID(hidden.digest))), &status) == 0 && status.st_mode & 0o777 == 0o600)
        #expect(stat(store.metadataPath(for: try #require(ImageID(open.digest))), &status) == 0 && status.st_mode & 0o777 == 0o644)
        #expect(FileManager.default.fileExists(atPath: store.accessPath(for: try #require(ImageID(hidden.digest)))))
        #expect(try store.closePrivateRecords().isEmpty)
    }

    /// The store's name guard is asked under the image's lock before anything is stored or tagged:
    /// a refusal leaves the store as it was.
    @Test func aNameTheGuardRefusesLeavesNothing() throws {
        let scratch = try ScratchDirectory()
        let storeDirectory = scratch.path + "/store"
        try FileManager.default.createDirectory(atPath: storeDirectory, withIntermediateDirectories: true)
        var store = ImageStore(directory: storeDirectory)
        store.nameGuard = { (reference: ImageReference, _: ImageID) throws(ImageImportError) in
            throw ImageImportError(.nameTaken, "\(reference): taken")
        }
        let file = try fakeImage(scratch, name: "a.sqfs", content: Array("hsqs-a".utf8))
        do {
            _ = try SquashfsFileImporter(store: store).importFile(file, as: try ImageReference.parse("custom:a"))
            Issue.record("imported under a name the guard refused")
        } catch let error as ImageImportError {
            #expect(error.code == .nameTaken)
        }
        #expect(try FileOperations.directoryEntries(storeDirectory).isEmpty)
    }

    @Test func refusesANonCustomName() throws {
        let scratch = try ScratchDirectory()
        let file = try fakeImage(scratch, name: "a.sqfs", content: Array("hsqs".utf8))
        #expect(throws: ImageImportError.self) {
            try SquashfsFileImporter(store: ImageStore(directory: scratch.path)).importFile(file, as: try ImageReference.parse("docker:a"))
        }
    }
}
