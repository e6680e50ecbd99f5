import ShifterCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// The id of an image: the sha256 digest of its platform manifest.
public struct ImageID: Hashable, Sendable, CustomStringConvertible {
    /// The 64 lowercase hex digits, which also name the image's files.
    public let hex: String

    /// Parses `sha256:<hex>` or a bare `<hex>`.
    public init?(_ text: some StringProtocol) {
        let whole = String(text)
        let hex = whole.hasPrefix("sha256:") ? whole.dropFirst("sha256:".count) : Substring(whole)
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            return nil
        }
        self.hex = String(hex)
    }

    /// `sha256:<hex>`.
    public var digest: String { "sha256:" + hex }

    /// `sha256:<hex>`.
    public var description: String { digest }
}

/// The image store in `imagePath`: for each image, `<hex>.squashfs` and `<hex>.meta.json`, where
/// `<hex>` is the image id without its `sha256:` prefix.
///
/// An image is present when its `.meta.json` is: the squashfs file is renamed into place first and
/// the record last, so a reader that finds the record finds a complete image. Work in progress lives
/// in a hidden staging directory in the same directory (same filesystem, so the final rename is
/// atomic), named after the host and process, and staging directories of dead processes on this
/// host are removed when the next import starts.
public struct ImageStore: Sendable {
    /// The file names the runtime reads.
    public let layout: ImageStoreLayout

    /// The store directory.
    public var directory: String { layout.root }

    /// How far the layers of an image imported into this store may expand.
    public var importLimits = ImportLimits.standard

    /// Called under the image's conversion lock just before a tag is written: throws to keep the
    /// tag from being written. The gateway checks here that the name still belongs to the importer,
    /// so no import can move another user's `custom:` name, whatever ran meanwhile.
    public var nameGuard: (@Sendable (ImageReference, ImageID) throws(ImageImportError) -> Void)?

    /// The mode of the tag directory: searchable, not listable, so a user who knows a name resolves
    /// it and nobody lists the names of others' private images.
    static let tagDirectoryMode: mode_t = 0o711

    static let stagingPrefix = ".import-"
    /// The start of the name of a conversion lock file (`withConversionLock`).
    static let lockPrefix = ".convert-"

    /// A store in `directory`, which must exist.
    public init(directory: String) {
        self.layout = ImageStoreLayout(root: directory)
    }

    /// The image file of `id`.
    public func imagePath(for id: ImageID) -> String {
        layout.imageFile(digest: id.digest) ?? directory + "/" + id.hex + ".squashfs"
    }

    /// The record of `id`.
    public func metadataPath(for id: ImageID) -> String {
        layout.metadataFile(digest: id.digest) ?? directory + "/" + id.hex + ".meta.json"
    }

    /// The access list of private image `id`, readable by every user (see `ImageStoreLayout.accessFile`).
    public func accessPath(for id: ImageID) -> String {
        layout.accessFile(digest: id.digest) ?? directory + "/" + id.hex + ".access.json"
    }

    /// Whether `id` is complete in the store.
    public func contains(_ id: ImageID) -> Bool {
        FileOperations.exists(metadataPath(for: id)) && FileOperations.exists(imagePath(for: id))
    }

    /// The record of `id`.
    public func metadata(for id: ImageID) throws(ImageImportError) -> ImageMetadata {
        let path = metadataPath(for: id)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageImportError(.store, "image \(id): not in the store \(displayQuoted(directory))")
        }
        do {
            return try ImageMetadata.decode(Array(data))
        } catch {
            throw ImageImportError(.store, "\(displayQuoted(path)): \(error)")
        }
    }

    /// Every complete image, newest first. Records that cannot be read are skipped.
    public func images() throws(ImageImportError) -> [ImageMetadata] {
        try checkDirectory()
        var records: [ImageMetadata] = []
        for name in try FileOperations.directoryEntries(directory) where name.hasSuffix(".meta.json") {
            guard let id = ImageID(name.dropLast(".meta.json".count)), contains(id),
                let record = try? metadata(for: id)
            else { continue }
            records.append(record)
        }
        return records.sorted { ($0.created, $0.digest) > ($1.created, $1.digest) }
    }

    /// The image a reference names: an `id:` reference directly, a Docker reference through the tag
    /// index, else by the digest it pins or the newest image pulled under that name.
    public func find(_ reference: ImageReference) throws(ImageImportError) -> ImageMetadata? {
        if reference.type == .id {
            guard let digest = reference.digest, let id = ImageID(digest), contains(id) else { return nil }
            return try metadata(for: id)
        }
        if let tagFile = layout.tagFile(for: reference), let data = FileManager.default.contents(atPath: tagFile),
            let digest = ImageStoreLayout.digest(fromTagFile: String(decoding: data, as: UTF8.self)),
            let id = ImageID(digest), contains(id)
        {
            return try metadata(for: id)
        }
        let all = try images()
        if let digest = reference.digest {
            return all.first { $0.digest == digest || $0.manifestDigest == digest }
        }
        let source = reference.canonical
        return all.first { $0.source == source }
    }

    /// Removes an image: its tags and record first, so readers stop finding it, then its file.
    public func remove(_ id: ImageID) throws(ImageImportError) {
        guard contains(id) else {
            throw ImageImportError(.store, "image \(id): not in the store \(displayQuoted(directory))")
        }
        for name in (try? FileOperations.directoryEntries(layout.tagDirectory)) ?? [] where !name.hasPrefix(".") {
            let path = layout.tagDirectory + "/" + name
            if let data = FileManager.default.contents(atPath: path),
                ImageStoreLayout.digest(fromTagFile: String(decoding: data, as: UTF8.self)) == id.digest
            {
                try FileOperations.removeFile(path)
            }
        }
        try FileOperations.removeFile(metadataPath(for: id))
        try FileOperations.removeFile(accessPath(for: id))
        try FileOperations.removeFile(imagePath(for: id))
        try FileOperations.sync(directory, directory: true)
    }

    /// The record of image `id`, already in the store, once a request that obtained it again with
    /// access lists `userACL` and `groupACL` has been let in: a public request makes a private
    /// image public (its content came from a public source too), a private one adds its users and
    /// groups. Without this, whoever obtained an image privately first would shut out everyone who
    /// pulls it later.
    ///
    /// The name it is asked for (`reference`) must pass `nameGuard` first: a request refused its
    /// name changes nothing. A private image made public takes that name as its `source`, so the
    /// now readable record never shows the name its first, private, importer gave it.
    ///
    /// A `signer` the gateway's policy found is recorded where the record has none (the image was
    /// pulled before the policy asked for signatures), so the nodes' `requireSignedImages` lets it run.
    func admit(_ id: ImageID, as reference: ImageReference, userACL: [UInt32], groupACL: [UInt32],
               signer: ImageSigner? = nil) throws(ImageImportError) -> ImageMetadata {
        try withConversionLock(id) { () throws(ImageImportError) -> ImageMetadata in
            try nameGuard?(reference, id)
            var metadata = try metadata(for: id)
            if let signer, metadata.signedBy == nil {
                metadata.signedBy = signer.keyFingerprint
                metadata.signedIdentity = signer.identity
                try replaceRecord(metadata, of: id)
            }
            guard !metadata.isPublic else { return metadata }
            let isPublic = userACL.isEmpty && groupACL.isEmpty
            let users = isPublic ? [] : Array(Set(metadata.userACL + userACL)).sorted()
            let groups = isPublic ? [] : Array(Set(metadata.groupACL + groupACL)).sorted()
            guard users != metadata.userACL.sorted() || groups != metadata.groupACL.sorted() else { return metadata }
            metadata.userACL = users
            metadata.groupACL = groups
            if isPublic { metadata.source = reference.canonical }
            try replaceRecord(metadata, of: id)
            return metadata
        }
    }

    /// Records `signer` in the record of `id`, already in the store, where it names none or
    /// another; returns the record.
    public func recordSigner(_ signer: ImageSigner, of id: ImageID) throws(ImageImportError) -> ImageMetadata {
        try withConversionLock(id) { () throws(ImageImportError) -> ImageMetadata in
            var metadata = try metadata(for: id)
            guard metadata.signedBy != signer.keyFingerprint || metadata.signedIdentity != signer.identity else { return metadata }
            metadata.signedBy = signer.keyFingerprint
            metadata.signedIdentity = signer.identity
            try replaceRecord(metadata, of: id)
            return metadata
        }
    }

    /// Replaces the record of `id`, already in the store, with `metadata`, and sets the modes that
    /// go with its access list: a private image's file and full record are root's alone and its
    /// access list is readable; a public one's are readable and it has no access list. Each file
    /// is replaced by a rename, so a reader sees the old or the new one.
    private func replaceRecord(_ metadata: ImageMetadata, of id: ImageID) throws(ImageImportError) {
        let isPrivate = !metadata.isPublic
        if isPrivate {
            // The access list first, so a user let in by this change finds themselves on it by
            // the time the record says so.
            try replaceFile(accessPath(for: id), with: Self.accessRecord(metadata, id: id), mode: 0o644)
        }
        try replaceFile(metadataPath(for: id), with: Self.record(metadata, id: id), mode: isPrivate ? 0o600 : 0o644)
        try FileOperations.setMode(imagePath(for: id), isPrivate ? 0o600 : 0o644)
        if !isPrivate { try FileOperations.removeFile(accessPath(for: id)) }
        try FileOperations.sync(directory, directory: true)
    }

    /// Writes `bytes` to a new file in the store with `mode`, synced, and renames it to `path`.
    private func replaceFile(_ path: String, with bytes: [UInt8], mode: mode_t) throws(ImageImportError) {
        let temporary = directory + "/" + Self.stagingPrefix + "record-" + String(getpid()) + "-"
            + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        do throws(ImageImportError) {
            try FileOperations.writeSynced(bytes, to: temporary, mode: mode)
            // The creation mode passed the umask; the mode the file must have does not depend on it.
            try FileOperations.setMode(temporary, mode)
            try FileOperations.rename(temporary, to: path)
        } catch {
            try? FileOperations.removeFile(temporary)
            throw error
        }
    }

    /// The bytes of the record of `id`.
    static func record(_ metadata: ImageMetadata, id: ImageID) throws(ImageImportError) -> [UInt8] {
        do {
            return try metadata.encoded() + [UInt8(ascii: "\n")]
        } catch {
            throw ImageImportError(.store, "image \(id): record \(error)")
        }
    }

    /// The bytes of the access list of private image `id`: its id and access lists, nothing else.
    static func accessRecord(_ metadata: ImageMetadata, id: ImageID) throws(ImageImportError) -> [UInt8] {
        let access = ImageMetadata(
            format: metadata.format, digest: metadata.digest, manifestDigest: metadata.manifestDigest, userACL: metadata.userACL,
            groupACL: metadata.groupACL, source: "", created: "")
        return try record(access, id: id)
    }

    /// Gives every private image of a store written before access lists had files of their own
    /// an access list, and makes its full record root's. Returns the ids it changed.
    public func closePrivateRecords() throws(ImageImportError) -> [ImageID] {
        try checkDirectory()
        var changed: [ImageID] = []
        // Whether `id` is a private image whose record is still open or lacks its access list.
        func isOpen(_ id: ImageID) throws(ImageImportError) -> ImageMetadata? {
            var status = stat()
            let record = try metadata(for: id)
            guard !record.isPublic, stat(metadataPath(for: id), &status) == 0,
                status.st_mode & 0o077 != 0 || !FileOperations.exists(accessPath(for: id))
            else { return nil }
            return record
        }
        for name in try FileOperations.directoryEntries(directory) where name.hasSuffix(".meta.json") {
            // Looked at first without the lock: on a store of thousands of images on a parallel
            // filesystem, a start must not make and remove a lock file for each.
            guard let id = ImageID(name.dropLast(".meta.json".count)), contains(id), (try? isOpen(id)) != nil else { continue }
            try withConversionLock(id) { () throws(ImageImportError) in
                guard let record = try isOpen(id) else { return }
                try replaceRecord(record, of: id)
                changed.append(id)
            }
        }
        if FileOperations.exists(layout.tagDirectory) { try FileOperations.setMode(layout.tagDirectory, Self.tagDirectoryMode) }
        return changed
    }

    // MARK: - Staging

    /// Runs `body` holding the store's lock for converting image `id` (`flock` on a file in the
    /// store), so that imports of one digest at once, under two tags or by two gateways sharing the
    /// store, convert it once: the later ones find it in the store when they get the lock.
    func withConversionLock<T>(_ id: ImageID, _ body: () throws(ImageImportError) -> T) throws(ImageImportError) -> T {
        try checkDirectory()
        let path = directory + "/" + Self.lockPrefix + id.hex + ".lock"
        var descriptor: Int32 = -1
        // The holder removes the file when it is done (so the store keeps no trace of it), and a
        // waiter that opened it before then gets a lock on a file that no longer has the name: it
        // must not count, or two imports would hold "the" lock at once. So the lock held is the one
        // on the file the name still gives, or it is taken again on the new one.
        while true {
            descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard descriptor >= 0 else {
                throw ImageImportError(.store, "image \(id): cannot open the lock \(displayQuoted(path)): \(String(cString: strerror(errno)))")
            }
            var locked = true
            while flock(descriptor, LOCK_EX) != 0 {
                if errno == EINTR { continue }
                // A filesystem without flock (Lustre mounted without -o flock): imports of one digest
                // at once may both convert it; the commit is atomic and the second finds it there.
                if errno == ENOSYS || errno == EOPNOTSUPP || errno == ENOLCK {
                    locked = false
                    break
                }
                let reason = String(cString: strerror(errno))
                close(descriptor)
                throw ImageImportError(.store, "image \(id): cannot lock \(displayQuoted(path)): \(reason)")
            }
            var held = stat(), named = stat()
            if !locked || (fstat(descriptor, &held) == 0 && lstat(path, &named) == 0 && held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
                break
            }
            close(descriptor)
        }
        defer { close(descriptor) }
        defer { unlink(path) }
        return try body()
    }

    /// Creates a private staging directory for one import, after removing those of dead imports.
    func makeStagingDirectory() throws(ImageImportError) -> String {
        try checkDirectory()
        removeAbandonedStaging()
        let host = Self.hostName
        let random = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let path = directory + "/" + Self.stagingPrefix + host + "-" + String(getpid()) + "-" + random
        try FileOperations.makeDirectory(path)
        return path
    }

    /// Moves a finished image and its record from staging into the store.
    ///
    /// Both files are synced before they are renamed, and the directory after, so a crash leaves
    /// either the old state or the new one. If the image is already present (another import of the
    /// same digest finished first), the store is left as it is.
    func commit(
        imageFile: String, metadata: ImageMetadata, id: ImageID, reference: ImageReference, stagingDirectory: String
    ) throws(ImageImportError) {
        if contains(id) {
            try writeTag(reference, as: id)
            return
        }
        // Asked before anything is stored as well, so a refused name leaves no untagged image.
        try nameGuard?(reference, id)
        let stagedRecord = stagingDirectory + "/" + id.hex + ".meta.json"
        let record = try Self.record(metadata, id: id)
        // A private image is for the users and groups on its access list, which the runtime (as
        // root) checks: nobody else may read its file or its full record (environment, labels and
        // source may hold what its owner keeps to themselves). Its access list alone stays
        // readable, in a file of its own, for the check at submission, which runs as the user.
        let isPrivate = !metadata.isPublic
        try FileOperations.setMode(imageFile, isPrivate ? 0o600 : 0o644)
        try FileOperations.sync(imageFile)
        try FileOperations.writeSynced(record, to: stagedRecord, mode: 0o600)
        try FileOperations.setMode(stagedRecord, isPrivate ? 0o600 : 0o644)
        if isPrivate {
            let stagedAccess = stagingDirectory + "/" + id.hex + ".access.json"
            try FileOperations.writeSynced(try Self.accessRecord(metadata, id: id), to: stagedAccess, mode: 0o644)
            try FileOperations.setMode(stagedAccess, 0o644)
            try FileOperations.rename(stagedAccess, to: accessPath(for: id))
        }
        try FileOperations.rename(imageFile, to: imagePath(for: id))
        try FileOperations.rename(stagedRecord, to: metadataPath(for: id))
        try FileOperations.sync(directory, directory: true)
        try writeTag(reference, as: id)
    }

    /// Points the tag index entry of `reference` at `id`, replacing it atomically, under the
    /// image's conversion lock and after `nameGuard` let it.
    func tag(_ reference: ImageReference, as id: ImageID) throws(ImageImportError) {
        try withConversionLock(id) { () throws(ImageImportError) in try writeTag(reference, as: id) }
    }

    /// `tag`, for a caller that holds the conversion lock of `id`: the one writer of the tag index.
    private func writeTag(_ reference: ImageReference, as id: ImageID) throws(ImageImportError) {
        guard let tagFile = layout.tagFile(for: reference) else { return }
        try nameGuard?(reference, id)
        let tags = layout.tagDirectory
        if !FileOperations.exists(tags) {
            do throws(ImageImportError) {
                try FileOperations.makeDirectory(tags, mode: Self.tagDirectoryMode)
            } catch {
                // Another import may have created it in the meantime.
                if !FileOperations.exists(tags) { throw error }
            }
        }
        try FileOperations.setMode(tags, Self.tagDirectoryMode)
        let temporary = tags + "/.tag-" + String(getpid()) + "-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        do throws(ImageImportError) {
            try FileOperations.writeSynced(Array((id.digest + "\n").utf8), to: temporary)
            try FileOperations.rename(temporary, to: tagFile)
            try FileOperations.sync(tags, directory: true)
        } catch {
            try? FileOperations.removeFile(temporary)
            throw error
        }
    }

    /// Removes staging directories left by imports of this host whose process is gone.
    /// Lock files that no import holds go too (an import killed while it held one leaves it).
    /// `atStart`: the caller is a process that has just started and runs no import yet, so staging
    /// directories named with its own process id are abandoned too (a gateway restarted in a
    /// container gets the process id its killed predecessor had).
    public func removeAbandonedStaging(atStart: Bool = false) {
        let prefix = Self.stagingPrefix + Self.hostName + "-"
        let names = (try? FileOperations.directoryEntries(directory)) ?? []
        for name in names where name.hasPrefix(Self.lockPrefix) && name.hasSuffix(".lock") {
            let path = directory + "/" + name
            let descriptor = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
            guard descriptor >= 0 else { continue }
            // Removed while held, as `withConversionLock` itself does: an import that opened it
            // meanwhile finds its name gone once it has the lock, and locks a new file instead.
            if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { unlink(path) }
            close(descriptor)
        }
        for name in names where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            guard let pidText = rest.split(separator: "-").first, let pid = pid_t(pidText) else { continue }
            if (atStart && pid == getpid()) || (kill(pid, 0) != 0 && errno == ESRCH) {
                FileOperations.removeTree(directory + "/" + name)
            }
        }
    }

    private func checkDirectory() throws(ImageImportError) {
        var status = stat()
        guard stat(directory, &status) == 0 else {
            throw ImageImportError(.store, "image store \(displayQuoted(directory)): \(FileOperations.lastErrorText)")
        }
        guard status.st_mode & S_IFMT == S_IFDIR else {
            throw ImageImportError(.store, "image store \(displayQuoted(directory)): not a directory")
        }
    }

    /// The host name, without dots or dashes, as staging directory names carry it.
    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let cleaned = name.prefix { $0 != "." }.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
        return cleaned.isEmpty ? "localhost" : cleaned
    }
}
