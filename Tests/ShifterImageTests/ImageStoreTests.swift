import Foundation
import ShifterCore
import Testing
@testable import ShifterImage

#if canImport(Glibc)
import Glibc
#endif

struct ImageStoreTests {
    private let hex = String(repeating: "ab", count: 32)

    private func stage(_ store: ImageStore, content: String = "image") throws -> (staging: String, file: String) {
        let staging = try store.makeStagingDirectory()
        let file = staging + "/image.squashfs"
        try Data(content.utf8).write(to: URL(fileURLWithPath: file))
        return (staging, file)
    }

    @Test func commitPutsImageRecordAndTagInPlace() throws {
        let scratch = try ScratchDirectory()
        let store = ImageStore(directory: scratch.path)
        let id = try #require(ImageID(hex))
        let reference = try ImageReference.parse("registry.example.org/team/tool:1.0")
        let (staging, file) = try stage(store)
        let record = ImageMetadata(digest: id.digest, layers: ["sha256:" + hex], source: reference.canonical, created: "2024-01-01T00:00:00Z")
        try store.commit(imageFile: file, metadata: record, id: id, reference: reference, stagingDirectory: staging)
        FileOperations.removeTree(staging)

        #expect(store.contains(id))
        #expect(FileManager.default.fileExists(atPath: scratch.path + "/\(hex).squashfs"))
        #expect(try store.metadata(for: id) == record)
        #expect(try store.find(reference)?.digest == id.digest)
        #expect(try store.find(ImageReference.parse("id:" + hex))?.digest == id.digest)
        #expect(try store.images().map(\.digest) == [id.digest])
        var status = stat()
        #expect(stat(scratch.path + "/\(hex).squashfs", &status) == 0 && status.st_mode & 0o777 == 0o644)
        let names = try FileOperations.directoryEntries(scratch.path).sorted()
        #expect(names == ["\(hex).meta.json", "\(hex).squashfs", "tags"])

        try store.remove(id)
        #expect(!store.contains(id))
        #expect(try store.find(reference) == nil)
        #expect(try FileOperations.directoryEntries(scratch.path + "/tags").isEmpty)
    }

    @Test func aPrivateImageFileAndRecordAreRootsItsAccessListReadableByAll() throws {
        let scratch = try ScratchDirectory()
        let store = ImageStore(directory: scratch.path)
        let id = try #require(ImageID(hex))
        let reference = try ImageReference.parse("registry.example.org/team/private:1.0")
        let (staging, file) = try stage(store)
        let record = ImageMetadata(digest: id.digest, layers: ["sha256:" + hex], userACL: [1001],
                                   source: reference.canonical, created: "2024-01-01T00:00:00Z")
        try store.commit(imageFile: file, metadata: record, id: id, reference: reference, stagingDirectory: staging)
        FileOperations.removeTree(staging)

        var status = stat()
        #expect(stat(scratch.path + "/\(hex).squashfs", &status) == 0 && status.st_mode & 0o777 == 0o600)
        #expect(stat(scratch.path + "/\(hex).meta.json", &status) == 0 && status.st_mode & 0o777 == 0o600)
        #expect(stat(scratch.path + "/\(hex).access.json", &status) == 0 && status.st_mode & 0o777 == 0o644)
    }

    /// An import that waited for the conversion lock while its holder removed the lock file holds,
    /// once it has it, the lock on the file the name gives: nobody else can take that one meanwhile.
    @Test func aWaiterWhoseLockFileWasRemovedLocksTheNewOne() throws {
        let scratch = try ScratchDirectory()
        let store = ImageStore(directory: scratch.path)
        let id = try #require(ImageID(hex))
        let path = scratch.path + "/" + ImageStore.lockPrefix + hex + ".lock"
        let waiterHolds = DispatchSemaphore(value: 0)
        let checked = DispatchSemaphore(value: 0)
        let othersCouldLock = LockedFlag()
        try store.withConversionLock(id) { () throws(ImageImportError) in
            var status = stat()
            guard stat(path, &status) == 0 else { throw ImageImportError(.store, "no lock file") }
            let inode = status.st_ino
            Thread.detachNewThread {
                try? store.withConversionLock(id) { () throws(ImageImportError) in
                    // Another process (a fresh descriptor) tries the lock of the file now named.
                    let probe = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
                    othersCouldLock.set(probe >= 0 && flock(probe, LOCK_EX | LOCK_NB) == 0)
                    if probe >= 0 { close(probe) }
                    waiterHolds.signal()
                    checked.wait()
                }
            }
            // Return (and remove the file) only once the other import waits for this lock: a flock
            // that waits shows in /proc/locks with "->" before it.
            for _ in 0..<500 {
                let locks = (try? String(contentsOfFile: "/proc/locks", encoding: .utf8)) ?? ""
                if locks.split(separator: "\n").contains(where: { $0.contains("->") && $0.hasSuffix(":\(inode) 0 EOF") }) { return }
                usleep(10_000)
            }
            throw ImageImportError(.store, "the second import never waited for the lock")
        }
        waiterHolds.wait()
        #expect(!othersCouldLock.value)
        checked.signal()
    }

    @Test func aSecondCommitOfTheSameDigestKeepsTheFirstImage() throws {
        let scratch = try ScratchDirectory()
        let store = ImageStore(directory: scratch.path)
        let id = try #require(ImageID(hex))
        let reference = try ImageReference.parse("example.org/a:1")
        for content in ["first", "second"] {
            let (staging, file) = try stage(store, content: content)
            try store.commit(imageFile: file, metadata: ImageMetadata(digest: id.digest), id: id, reference: reference, stagingDirectory: staging)
            FileOperations.removeTree(staging)
        }
        #expect(FileManager.default.contents(atPath: store.imagePath(for: id)) == Data("first".utf8))
    }

    @Test func stagingOfDeadImportsIsRemoved() throws {
        let scratch = try ScratchDirectory()
        let store = ImageStore(directory: scratch.path)
        // No process has pid 2^22 + 1 on Linux (pid_max is at most 2^22).
        let abandoned = scratch.path + "/" + ImageStore.stagingPrefix + ImageStore.hostName + "-4194305-x"
        try FileManager.default.createDirectory(atPath: abandoned + "/sub", withIntermediateDirectories: true)
        let live = try store.makeStagingDirectory()
        #expect(!FileOperations.exists(abandoned))
        #expect(FileOperations.exists(live))
        store.removeAbandonedStaging()
        #expect(FileOperations.exists(live))
    }

    @Test func aMissingStoreIsAnError() {
        let store = ImageStore(directory: "/nonexistent/store")
        let error = #expect(throws: ImageImportError.self) { try store.images() }
        #expect(error?.message == "image store \"/nonexistent/store\": No such file or directory")
    }

    @Test func imageIDsAreSha256Hex() {
        #expect(ImageID("sha256:" + hex)?.hex == hex)
        #expect(ImageID(hex)?.digest == "sha256:" + hex)
        #expect(ImageID("sha256:" + hex.uppercased()) == nil)
        #expect(ImageID("sha512:" + hex) == nil)
        #expect(ImageID("../" + hex.dropFirst(3)) == nil)
    }

    @Test func credentialsAreSavedPrivately() throws {
        let scratch = try ScratchDirectory()
        let store = CredentialStore.forCurrentUser(environment: ["XDG_CONFIG_HOME": scratch.path + "/config", "HOME": "/nonexistent"])
        #expect(store.path == scratch.path + "/config/shifter/auth.json")
        #expect(try store.credentials(for: "r.example.org") == nil)
        try store.save(RegistryCredentials(username: "alice", password: "p:ss"), for: "R.example.org")
        #expect(try store.credentials(for: "r.example.org") == RegistryCredentials(username: "alice", password: "p:ss"))
        var status = stat()
        #expect(stat(store.path, &status) == 0 && status.st_mode & 0o777 == 0o600)
        #expect(stat(scratch.path + "/config/shifter", &status) == 0 && status.st_mode & 0o777 == 0o700)
        #expect(try store.remove(for: "r.example.org"))
        #expect(try store.credentials(for: "r.example.org") == nil)
    }

    @Test func credentialsReadableByOthersAreRefused() throws {
        let scratch = try ScratchDirectory()
        let store = CredentialStore(path: scratch.path + "/auth.json")
        try Data(#"{"auths":{}}"#.utf8).write(to: URL(fileURLWithPath: store.path))
        chmod(store.path, 0o644)
        #expect(throws: ImageImportError.self) { try store.credentials(for: "x") }
    }
}

/// A flag one thread sets and another reads.
private final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = false
    func set(_ value: Bool) { lock.lock(); stored = value; lock.unlock() }
    var value: Bool { lock.lock(); defer { lock.unlock() }; return stored }
}
