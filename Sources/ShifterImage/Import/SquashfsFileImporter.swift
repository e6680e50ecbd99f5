import ShifterCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// Imports a squashfs file into an image store as a `custom` image, as `shifterimg import` does in
/// local mode. The image id is the sha256 of the file, so importing the same file twice stores it
/// once. The file is copied into a staging directory, hashed on the way, and committed like a pull.
public struct SquashfsFileImporter: Sendable {
    /// The squashfs superblock magic, `hsqs`.
    public static let magic: [UInt8] = [0x68, 0x73, 0x71, 0x73]

    /// The store the image goes into.
    public let store: ImageStore

    /// An importer into `store`.
    public init(store: ImageStore) {
        self.store = store
    }

    /// Copies the squashfs file at `path` into the store and tags it as `reference` (a `custom:`
    /// reference). A private image (with ACLs) is made readable by root only; the runtime enforces
    /// its ACL from `.meta.json`.
    public func importFile(
        _ path: String, as reference: ImageReference, userACL: [UInt32] = [], groupACL: [UInt32] = []
    ) throws(ImageImportError) -> ImageMetadata {
        let input = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard input >= 0 else { throw ImageImportError(.io, "\(displayQuoted(path)): \(FileOperations.lastErrorText)") }
        defer { close(input) }
        return try importFile(descriptor: input, name: displayQuoted(path), as: reference, userACL: userACL, groupACL: groupACL)
    }

    /// Copies the squashfs file open at `input` (called `name` in messages) into the store and tags
    /// it as `reference`, the way every import goes: a staging directory the store cleans after a
    /// crash, the image's conversion lock, `admit` when the image is there already, one tag writer.
    public func importFile(
        descriptor input: Int32, name: String, as reference: ImageReference, userACL: [UInt32] = [], groupACL: [UInt32] = []
    ) throws(ImageImportError) -> ImageMetadata {
        guard reference.type == .custom else {
            throw ImageImportError(.store, "image \(reference): imported images are of type custom")
        }
        var status = stat()
        guard fstat(input, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            throw ImageImportError(.invalidLayer, "\(name): not a regular file")
        }
        let staging = try store.makeStagingDirectory()
        defer { FileOperations.removeTree(staging) }
        let staged = staging + "/image.squashfs"
        let digest = try copyHashing(input, from: name, to: staged)
        guard let id = ImageID(digest) else {
            throw ImageImportError(.io, "\(name): the file digest \(digest) is malformed")
        }
        let metadata = ImageMetadata(
            format: "squashfs", digest: id.digest, manifestDigest: id.digest, userACL: Array(Set(userACL)).sorted(),
            groupACL: Array(Set(groupACL)).sorted(), source: reference.canonical, created: ImageTimestamp.string(from: Date()))
        let stored = try store.withConversionLock(id) { () throws(ImageImportError) -> Bool in
            if store.contains(id) { return false }
            try store.commit(imageFile: staged, metadata: metadata, id: id, reference: reference, stagingDirectory: staging)
            return true
        }
        if stored { return try store.metadata(for: id) }
        let admitted = try store.admit(id, as: reference, userACL: metadata.userACL, groupACL: metadata.groupACL)
        try store.tag(reference, as: id)
        return admitted
    }

    /// Copies `input` into a new file at `destination` and returns the sha256 of the bytes. The
    /// copy is refused unless it starts with the squashfs magic.
    private func copyHashing(_ input: Int32, from name: String, to destination: String) throws(ImageImportError) -> String {
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw ImageImportError(.io, "\(displayQuoted(destination)): cannot create: \(FileOperations.lastErrorText)") }
        defer { close(output) }
        let hasher = try SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw ImageImportError(.io, "\(name): cannot be read: \(FileOperations.lastErrorText)") }
            if count == 0 { break }
            if total == 0 && (count < Self.magic.count || Array(buffer[0..<Self.magic.count]) != Self.magic) {
                throw ImageImportError(.invalidLayer, "\(name): not a squashfs file")
            }
            if let failure = buffer.withUnsafeBytes({ FileOperations.writeAll(output, UnsafeRawBufferPointer(rebasing: $0[0..<count])) }) {
                throw ImageImportError(.io, "\(displayQuoted(destination)): write failed: \(failure)")
            }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            total += count
        }
        guard total > 0 else { throw ImageImportError(.invalidLayer, "\(name): the file is empty") }
        return hasher.finish()
    }
}
