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

    @Test func refusesANonCustomName() throws {
        let scratch = try ScratchDirectory()
        let file = try fakeImage(scratch, name: "a.sqfs", content: Array("hsqs".utf8))
        #expect(throws: ImageImportError.self) {
            try SquashfsFileImporter(store: ImageStore(directory: scratch.path)).importFile(file, as: try ImageReference.parse("docker:a"))
        }
    }
}
