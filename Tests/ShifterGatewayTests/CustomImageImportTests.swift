import Foundation
import ShifterCore
import ShifterGatewayClient
import ShifterImage
import Testing

@testable import ShifterGateway

/// The caller of the import tests: `nobody`, whose primary group is `nogroup` (65534).
private let nobody: UInt32 = 65534
private let nobodyHasPasswdEntry = getpwuid(nobody) != nil

/// A directory in /tmp, which every user may search (TMPDIR may not be), holding files to import.
private struct ImportSources {
    let directory = "/tmp/gw-import-\(UUID().uuidString)"

    init() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
    }

    /// Writes a file that starts with the squashfs magic, with `mode`, owned by root and `group`.
    @discardableResult
    func squashfs(_ name: String, mode: Int, group: UInt32 = 0) throws -> String {
        let path = directory + "/" + name
        let bytes = SquashfsFileImporter.magic + (0..<60).map { _ in UInt8.random(in: 0...255) }
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: mode]) else {
            throw CocoaError(.fileWriteUnknown)
        }
        guard chown(path, 0, group) == 0 else { throw CocoaError(.fileWriteNoPermission) }
        return path
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

private func importError(_ gateway: TestGateway, _ path: String, tag: String, uid: UInt32, format: String? = nil) -> GatewayError? {
    do {
        _ = try gateway.service.importImage(
            system: "cluster", type: "custom", tag: tag, request: GatewayImportRequest(filepath: path, format: format),
            caller: AuthenticatedCaller(uid: uid, groups: [uid]))
        return nil
    } catch {
        return error
    }
}

/// The gateway opens an imported file with the caller's rights, in a child that takes the caller's
/// ids: the tests need a gateway that runs as root and a caller that is not.
@Suite(.enabled(if: geteuid() == 0 && nobodyHasPasswdEntry, "the gateway must run as root and uid 65534 must have a passwd entry"))
struct CustomImageImportAsCallerTests {
    /// Neither an import user nor an administrator other than root may publish a file only root
    /// may read; both may import one they can read.
    @Test(arguments: ["importUsers", "admins"])
    func aNonRootCallerImportsOnlyWhatItMayRead(role: String) throws {
        let gateway = try TestGateway(adminUIDs: role == "admins" ? [0, nobody] : [0], importUIDs: role == "importUsers" ? [nobody] : [])
        let sources = try ImportSources()
        defer {
            sources.remove()
            try? FileManager.default.removeItem(atPath: gateway.directory)
        }
        let path = try sources.squashfs("private.sqfs", mode: 0o600)

        let refused = importError(gateway, path, tag: "stolen:1", uid: nobody)
        #expect(refused?.status == 403)
        #expect(refused?.message == "import custom:stolen:1: \"\(path)\": cannot be opened as uid 65534: Permission denied")
        #expect(throws: GatewayError.self) {
            try gateway.service.lookup(system: "cluster", type: "custom", tag: "stolen:1", caller: TestGateway.root)
        }

        #expect(chmod(path, 0o644) == 0)
        let record = try gateway.service.importImage(
            system: "cluster", type: "custom", tag: "mine:1", request: GatewayImportRequest(filepath: path),
            caller: AuthenticatedCaller(uid: nobody, groups: [nobody]))
        #expect(record.status == .ready)
        #expect(record.id?.hasPrefix("sha256:") == true)
    }

    /// The child has the caller's groups from the group database, and none of root's.
    @Test func theCallerHasItsOwnGroupsOnly() throws {
        let gateway = try TestGateway(importUIDs: [nobody])
        let sources = try ImportSources()
        defer {
            sources.remove()
            try? FileManager.default.removeItem(atPath: gateway.directory)
        }
        let ours = try sources.squashfs("nogroup.sqfs", mode: 0o640, group: nobody)
        let roots = try sources.squashfs("rootgroup.sqfs", mode: 0o640, group: 0)
        #expect(importError(gateway, ours, tag: "group:1", uid: nobody) == nil)
        #expect(importError(gateway, roots, tag: "group:2", uid: nobody)?.status == 403)
    }

    /// A path in a directory the caller cannot search answers alike whether the file is there or
    /// not: the caller's own errno, which the caller would get with their own rights.
    @Test func aDirectoryTheCallerCannotSearchHidesWhetherTheFileExists() throws {
        let gateway = try TestGateway(importUIDs: [nobody])
        let sources = try ImportSources()
        defer {
            sources.remove()
            try? FileManager.default.removeItem(atPath: gateway.directory)
        }
        let hidden = sources.directory + "/hidden"
        try FileManager.default.createDirectory(atPath: hidden, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try sources.squashfs("hidden/present.sqfs", mode: 0o644)
        let present = importError(gateway, hidden + "/present.sqfs", tag: "probe:1", uid: nobody)
        let absent = importError(gateway, hidden + "/absent.sqfs", tag: "probe:1", uid: nobody)
        #expect(present?.status == 403)
        #expect(absent?.status == 403)
        #expect(present?.message.replacingOccurrences(of: "present", with: "NAME") == absent?.message.replacingOccurrences(of: "absent", with: "NAME"))
        #expect(present?.message.hasSuffix(": Permission denied") == true)
        // Where the caller may search, a missing file is reported as the caller would see it.
        let missing = importError(gateway, sources.directory + "/missing.sqfs", tag: "probe:1", uid: nobody)
        #expect(missing?.message == "import custom:probe:1: \"\(sources.directory)/missing.sqfs\": cannot be opened as uid 65534: No such file or directory")
    }

    /// root keeps root's rights: it could read the file anyway.
    @Test func rootImportsAFileOnlyRootMayRead() throws {
        let gateway = try TestGateway()
        let sources = try ImportSources()
        defer {
            sources.remove()
            try? FileManager.default.removeItem(atPath: gateway.directory)
        }
        let path = try sources.squashfs("root.sqfs", mode: 0o600)
        #expect(importError(gateway, path, tag: "roots:1", uid: 0) == nil)
    }

    /// A name is its first importer's: nobody else replaces it, root and squashfs imports included,
    /// and the store's tag and the gateway's record keep naming one image.
    @Test func nobodyImportsUnderAnotherImportersName() throws {
        let gateway = try TestGateway(importUIDs: [nobody])
        let sources = try ImportSources()
        defer {
            sources.remove()
            try? FileManager.default.removeItem(atPath: gateway.directory)
        }
        let first = try sources.squashfs("first.sqfs", mode: 0o644)
        let second = try sources.squashfs("second.sqfs", mode: 0o644)
        let owned = try gateway.service.importImage(
            system: "cluster", type: "custom", tag: "owned:1", request: GatewayImportRequest(filepath: first, allowedUIDs: [nobody]),
            caller: AuthenticatedCaller(uid: nobody, groups: [nobody]))
        for format in ["squashfs", "docker-archive"] {
            let refused = importError(gateway, second, tag: "owned:1", uid: 0, format: format)
            #expect(refused?.status == 403, "\(format)")
            #expect(refused?.message == "import custom:owned:1: the name is taken by another user's image; choose another")
        }
        let store = ImageStore(directory: gateway.directory + "/images")
        let tagged = try store.find(try ImageReference.parse("custom:owned:1"))
        #expect(tagged?.digest == owned.id)
        let looked = try gateway.service.lookup(system: "cluster", type: "custom", tag: "owned:1", caller: AuthenticatedCaller(uid: nobody, groups: [nobody]))
        #expect(looked.id == owned.id)
        // Its owner replaces it; the refused imports left nothing in the store.
        #expect(importError(gateway, second, tag: "owned:1", uid: nobody) == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory).filter { $0.hasPrefix(".") }.isEmpty)
    }

    /// A FIFO does not hold the open (O_NONBLOCK), and is refused as not a regular file.
    @Test func aFifoIsRefusedWithoutWaiting() throws {
        let gateway = try TestGateway(importUIDs: [nobody])
        let sources = try ImportSources()
        defer {
            sources.remove()
            try? FileManager.default.removeItem(atPath: gateway.directory)
        }
        let path = sources.directory + "/fifo"
        #expect(mkfifo(path, 0o666) == 0)
        let started = Date()
        let error = importError(gateway, path, tag: "fifo:1", uid: nobody)
        #expect(error?.status == 400)
        #expect(error?.message.contains("not a regular file") == true)
        #expect(Date().timeIntervalSince(started) < 10)
    }
}

/// A gateway that does not run as root cannot take another caller's ids, and its own rights are
/// not the caller's: it refuses rather than open the file with them.
@Suite(.enabled(if: geteuid() != 0, "a root gateway opens the file as the caller; the refusal is for a gateway without root"))
struct CustomImageImportWithoutRootTests {
    @Test func anotherCallerIsRefused() throws {
        let other: UInt32 = geteuid() == nobody ? 65533 : nobody
        let gateway = try TestGateway(importUIDs: [other])
        defer { try? FileManager.default.removeItem(atPath: gateway.directory) }
        let path = gateway.directory + "/image.sqfs"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(SquashfsFileImporter.magic + [0, 0, 0, 0])))
        let error = importError(gateway, path, tag: "mine:1", uid: other)
        #expect(error?.status == 403)
        #expect(error?.message.contains("the gateway does not run as root") == true)
    }
}
