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
        guard reference.type == .custom else {
            throw ImageImportError(.store, "image \(reference): imported images are of type custom")
        }
        let input = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard input >= 0 else { throw ImageImportError(.io, "\(displayQuoted(path)): \(FileOperations.lastErrorText)") }
        defer { close(input) }
        var status = stat()
        guard fstat(input, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            throw ImageImportError(.io, "\(displayQuoted(path)): not a regular file")
        }
        let staging = try store.makeStagingDirectory()
        defer { FileOperations.removeTree(staging) }
        let staged = staging + "/image.squashfs"
        let digest = try copyHashing(input, from: path, to: staged)
        guard let id = ImageID(digest) else {
            throw ImageImportError(.io, "\(displayQuoted(path)): the file digest \(digest) is malformed")
        }
        let metadata = ImageMetadata(
            format: "squashfs", digest: id.digest, manifestDigest: id.digest, userACL: userACL.sorted(), groupACL: groupACL.sorted(),
            source: reference.canonical, created: ImageTimestamp.string(from: Date()))
        let wasPresent = store.contains(id)
        try store.commit(imageFile: staged, metadata: metadata, id: id, reference: reference, stagingDirectory: staging)
        // A private image's file is root's alone; its record stays readable, because job
        // submission checks the access list in it as the user.
        if !wasPresent && (!userACL.isEmpty || !groupACL.isEmpty) {
            try FileOperations.setMode(store.imagePath(for: id), 0o600)
        }
        return try store.metadata(for: id)
    }

    /// Copies `input` into a new file at `destination` and returns the sha256 of the bytes. The
    /// copy is refused unless it starts with the squashfs magic.
    private func copyHashing(_ input: Int32, from source: String, to destination: String) throws(ImageImportError) -> String {
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw ImageImportError(.io, "\(displayQuoted(destination)): cannot create: \(FileOperations.lastErrorText)") }
        defer { close(output) }
        let hasher = try SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw ImageImportError(.io, "\(displayQuoted(source)): cannot be read: \(FileOperations.lastErrorText)") }
            if count == 0 { break }
            if total == 0 && (count < Self.magic.count || Array(buffer[0..<Self.magic.count]) != Self.magic) {
                throw ImageImportError(.io, "\(displayQuoted(source)): not a squashfs file")
            }
            var written = 0
            while written < count {
                let result = buffer.withUnsafeBytes { write(output, $0.baseAddress.map { $0 + written }, count - written) }
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else {
                    throw ImageImportError(.io, "\(displayQuoted(destination)): write failed: \(FileOperations.lastErrorText)")
                }
                written += result
            }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            total += count
        }
        guard total > 0 else { throw ImageImportError(.io, "\(displayQuoted(source)): the file is empty") }
        return hasher.finish()
    }
}
