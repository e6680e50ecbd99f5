import CCrypto
import CShifterSys
import ShifterCore
import ShifterGatewayClient
import ShifterImage
import ShifterSystem

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

extension GatewayService {
    /// `POST /api/doimport/SYSTEM/custom/NAME[:TAG]/`: copies a squashfs file on the gateway host,
    /// opened with the caller's own rights, into the system's store as a `custom` image, named by
    /// the sha256 of the file. Administrators and `importUsers` only.
    public func importImage(
        system: String, type: String, tag: String, request: GatewayImportRequest, caller: AuthenticatedCaller
    ) throws(GatewayError) -> GatewayImageRecord {
        let systemConfig = try systemConfig(named: system)
        let format = request.format ?? "squashfs"
        let isArchive = GatewayImportRequest.archiveFormats.contains(format)
        guard GatewayImportRequest.formats.contains(format) else {
            throw .badRequest("import \(type):\(tag): format \(quoted(format)) is not supported; squashfs, docker-archive, oci-archive or archive")
        }
        // A squashfs file is published as it is, so only those trusted with that may import one.
        // An archive goes through the importer, with every check and limit of a pull.
        guard isArchive || config.adminUIDs.contains(caller.uid) || config.importUIDs.contains(caller.uid) else {
            throw .forbidden("import \(type):\(tag): administrators and import users only (any user may import a docker-archive or oci-archive)")
        }
        guard type == ImageType.custom.rawValue else {
            throw .badRequest("import \(type):\(tag): imported images are of type custom")
        }
        let reference: ImageReference
        do {
            reference = try ImageReference.parse("custom:" + tag)
        } catch {
            throw .badRequest("image custom:\(tag): \(error.reason)")
        }
        let source = request.filepath
        guard source.hasPrefix("/") else { throw .badRequest("import custom:\(tag): filepath \(quoted(source)) is not absolute") }
        let canonical = Self.tagText(reference)
        var userACL = Array(Set(request.allowedUIDs ?? [])).sorted()
        let groupACL = Array(Set(request.allowedGIDs ?? [])).sorted()
        let isAdmin = config.adminUIDs.contains(caller.uid)
        if isArchive && !isAdmin {
            try checkArchiveImport(system: system, tag: canonical, groupACL: groupACL, caller: caller)
            // An archive a user brings is theirs alone unless they name others.
            if userACL.isEmpty && groupACL.isEmpty { userACL = [caller.uid] }
        }
        let isPrivate = !userACL.isEmpty || !groupACL.isEmpty
        if isPrivate && !userACL.contains(caller.uid) && caller.uid != 0 { userACL = (userACL + [caller.uid]).sorted() }

        let input = try SquashfsFileImport.openSource(source, reference: reference, caller: caller.uid)
        defer { close(input) }
        let store = ImageStore(directory: systemConfig.imagePath)
        let metadata: ImageMetadata
        if isArchive {
            // A conversion takes a core for minutes: no more at once than pulls may run.
            let admitted = archiveImports.withLock { running -> Bool in
                guard running < config.workers else { return false }
                running += 1
                return true
            }
            guard admitted else {
                throw .busy("import \(reference): the gateway is converting \(config.workers) images already; try again in a few minutes")
            }
            defer { archiveImports.withLock { $0 -= 1 } }
            metadata = try Self.importArchive(
                input, source: source, into: store, reference: reference, userACL: userACL, groupACL: groupACL)
        } else {
            metadata = try SquashfsFileImport.importFile(
                input, source: source, into: store, reference: reference, userACL: userACL, groupACL: groupACL)
        }
        let now = clock()
        var row = ImageRow(
            system: system, itype: "custom", tag: canonical, scope: isPrivate ? ImageRow.privateScope(caller.uid) : "", ownerUID: caller.uid,
            digest: metadata.digest, status: .ready)
        row.userACL = userACL
        row.groupACL = groupACL
        row.metadata = metadata
        row.lastPull = now
        row.statusMessage = "imported from \(source)"
        try state.save(row)
        logger.info("image imported", metadata: ["image": "\(system)/custom:\(canonical)", "id": "\(metadata.digest)", "uid": "\(caller.uid)"])
        return row.record
    }
}

extension GatewayService {
    /// What a user who is not an administrator may not do with an archive import: take a name
    /// that another user's image has (the store's tag of `custom:NAME` is one for every user, and
    /// the runtime finds images by it), or open the image to a group they are not in.
    func checkArchiveImport(system: String, tag: String, groupACL: [UInt32], caller: AuthenticatedCaller) throws(GatewayError) {
        if try state.rows(system: system, itype: ImageType.custom.rawValue, tag: tag).contains(where: { $0.ownerUID != caller.uid }) {
            throw .forbidden("import custom:\(tag): the name is taken by another user's image; choose another")
        }
        guard !groupACL.isEmpty else { return }
        let groups: Set<UInt32>
        do {
            let user = try Credentials.passwdEntry(uid: caller.uid)
            groups = Set(try Credentials.groupList(user: user.name, gid: user.gid, limit: 65536))
        } catch {
            throw .forbidden("import custom:\(tag): the groups of uid \(caller.uid) cannot be read on the gateway host: \(error.description)")
        }
        if let foreign = groupACL.first(where: { !groups.contains($0) }) {
            throw .forbidden("import custom:\(tag): group \(foreign) is not one of uid \(caller.uid)'s; an image is opened only to the importer's own groups")
        }
    }

    /// Converts the image archive open at `input` into `store`, as a pull would; a private image's
    /// squashfs file is root's only, as a pulled one is.
    static func importArchive(
        _ input: Int32, source: String, into store: ImageStore, reference: ImageReference, userACL: [UInt32], groupACL: [UInt32]
    ) throws(GatewayError) -> ImageMetadata {
        try SquashfsFileImport.requireRegularFile(
            input, what: "import \(reference): \(quoted(source))", hint: " (an OCI layout directory must be packed: tar -C DIR -cf FILE.tar .)")
        let importer = ImageArchiveImporter(store: store, options: ImportOptions(userACL: userACL, groupACL: groupACL))
        do throws(ImageImportError) {
            let result = try importer.importArchive(input, name: "import \(reference): \(quoted(source))", as: reference)
            if !userACL.isEmpty || !groupACL.isEmpty, !result.alreadyPresent, let id = ImageID(result.metadata.digest),
                chmod(store.imagePath(for: id), 0o600) != 0
            {
                throw ImageImportError(.store, "import \(reference): cannot make the image private: \(String(cString: strerror(errno)))")
            }
            return result.metadata
        } catch {
            switch error.code {
            case .io, .store, .squashfs: throw .internal(error.message)
            default: throw .badRequest(error.message)
            }
        }
    }
}

/// Copies a squashfs file into an image store: into a hidden staging directory first, synced, then
/// renamed into place (image first, record last), so a reader never sees a partial image.
enum SquashfsFileImport {

    /// How long opening the file with the caller's rights may take before the opening process is
    /// killed: a path on a filesystem that never answers (a user's FUSE mount, a hung NFS server)
    /// must not hold the request forever.
    static let openTimeLimit: Duration = .seconds(30)

    /// Opens the file an import names, read-only, with the rights of the caller `uid`, so that an
    /// import user publishes only what they could read themselves, never a file only root may read
    /// (another user's private image in a store, mode 0600).
    ///
    /// uid 0 keeps root's rights: it could read the file anyway. Every other caller, administrators
    /// in `admins` included, gets their own rights: `admins` is a role at the gateway, not root on
    /// its host, and root's rights would make an import a way to read any squashfs file there.
    ///
    /// The gateway is a multi-threaded server and must keep its ids (glibc changes them for every
    /// thread at once), so a child process takes the caller's groups, gid and uid from the system
    /// databases, opens the file and passes the descriptor back (`cshifter_open_as_user`).
    /// Per-thread filesystem ids on the request's own thread would avoid the fork, but a failed
    /// restore would leave a server thread with a user's rights for later requests, and that thread
    /// would keep its other capabilities (`CAP_SYS_PTRACE` opens another user's `/proc/PID/fd`
    /// links); a child that holds only the user's rights and then exits leaves neither behind.
    ///
    /// A failed open reports the caller's own `open(2)` errno and nothing else, so a path that does
    /// not exist and one in a directory the caller cannot search answer as the caller would find.
    /// A file on a FUSE filesystem is refused: the open is bounded, the copy's reads are not, and a
    /// user's FUSE daemon could hold a gateway worker for ever.
    static func openSource(_ source: String, reference: ImageReference, caller uid: UInt32) throws(GatewayError) -> Int32 {
        let what = "import \(reference): \(quoted(source))"
        if uid == 0 || uid == geteuid() {
            // Root's own import (root's rights include the gateway's, whatever user it runs as), or
            // a gateway that runs as the caller. O_NOFOLLOW as before: a link at the end of the
            // path, which another user may own, must not redirect root's open.
            let input = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard input >= 0 else { throw .badRequest("\(what): \(errnoText())") }
            return input
        }
        guard geteuid() == 0 else {
            // Its own rights are not the caller's (the image store is its own), and it cannot take theirs.
            throw .forbidden("\(what): the gateway does not run as root, so it cannot open the file with uid \(uid)'s rights")
        }
        let user: (name: String, gid: UInt32, home: String, shell: String)
        let groups: [UInt32]
        do {
            user = try Credentials.passwdEntry(uid: uid)
            groups = try Credentials.groupList(user: user.name, gid: user.gid, limit: 65536)
        } catch {
            let reason = error.errno == ENOENT ? "uid \(uid) has no passwd entry on the gateway host" : error.description
            throw .forbidden("\(what): cannot be opened with the caller's rights: \(reason)")
        }
        let parts = openTimeLimit.components
        let milliseconds = Int32(clamping: parts.seconds * 1000 + parts.attoseconds / 1_000_000_000_000_000)
        var userError: Int32 = 0
        let result = groups.map { gid_t($0) }.withUnsafeBufferPointer { buffer in
            cshifter_open_as_user(uid, user.gid, buffer.count, buffer.baseAddress, source, milliseconds, &userError)
        }
        if result >= 0 { return result }
        let reason = String(cString: strerror(-result))
        if userError == CSHIFTER_OPEN_ON_FUSE {
            throw .badRequest(
                "\(what): it is on a FUSE filesystem, which the gateway does not read: its daemon could hold the import for ever; copy the file to a local or parallel filesystem and import that")
        }
        if userError != 0 {
            let message = "\(what): cannot be opened as uid \(uid): \(reason)"
            throw -result == EACCES || -result == EPERM ? .forbidden(message) : .badRequest(message)
        }
        if -result == ETIMEDOUT {
            throw .badRequest("\(what): opening it as uid \(uid) had no answer from the filesystem within \(parts.seconds) s")
        }
        throw .internal("\(what): cannot take uid \(uid)'s rights to open it: \(reason)")
    }

    /// Refuses what is open at `input` unless it is a regular file: "WHAT: not a regular fileHINT".
    static func requireRegularFile(_ input: Int32, what: String, hint: String = "") throws(GatewayError) {
        var status = stat()
        guard fstat(input, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            throw .badRequest("\(what): not a regular file\(hint)")
        }
    }

    /// Copies the squashfs file open at `input` (named `source` in messages) into `store` as the
    /// image of `reference`.
    static func importFile(
        _ input: Int32, source: String, into store: ImageStore, reference: ImageReference, userACL: [UInt32], groupACL: [UInt32]
    ) throws(GatewayError) -> ImageMetadata {
        try requireRegularFile(input, what: "import \(reference): \(quoted(source))")
        let directory = store.directory
        let staging = directory + "/.gateway-import-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        guard mkdir(staging, 0o700) == 0 else { throw .internal("import \(reference): cannot create \(quoted(staging)): \(errnoText())") }
        defer { try? FileManager.default.removeItem(atPath: staging) }
        let staged = staging + "/image.squashfs"
        let hex = try copyHashing(input, to: staged, what: "import \(reference): \(quoted(source))")
        guard let id = ImageID(hex) else { throw .internal("import \(reference): the file digest is malformed") }
        let mode: mode_t = userACL.isEmpty && groupACL.isEmpty ? 0o644 : 0o600
        let metadata = ImageMetadata(
            format: "squashfs", digest: id.digest, manifestDigest: id.digest, userACL: userACL, groupACL: groupACL,
            source: reference.canonical, created: ImageTimestamp.string(from: Date()))
        if !store.contains(id) {
            let record: [UInt8]
            do {
                record = try metadata.encoded() + [UInt8(ascii: "\n")]
            } catch {
                throw .internal("import \(reference): \(error)")
            }
            let stagedRecord = staging + "/image.meta.json"
            guard FileManager.default.createFile(atPath: stagedRecord, contents: Data(record)) else {
                throw .internal("import \(reference): cannot write \(quoted(stagedRecord))")
            }
            try syncFile(stagedRecord)
            // The record stays readable: submission checks the ACL in it as the user.
            guard chmod(staged, mode) == 0, chmod(stagedRecord, 0o644) == 0 else {
                throw .internal("import \(reference): cannot set the mode of the staged image: \(errnoText())")
            }
            guard rename(staged, store.imagePath(for: id)) == 0, rename(stagedRecord, store.metadataPath(for: id)) == 0 else {
                throw .internal("import \(reference): cannot move the image into \(quoted(directory)): \(errnoText())")
            }
            try syncFile(directory)
        }
        try writeTag(reference, id: id, store: store)
        return (try? store.metadata(for: id)) ?? metadata
    }

    /// Copies `input` to a new file at `path`, synced, and returns the sha256 of the bytes in hex.
    /// The copy is refused if it does not start with the squashfs magic.
    private static func copyHashing(_ input: Int32, to path: String, what: String) throws(GatewayError) -> String {
        let output = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw .internal("\(what): cannot create \(quoted(path)): \(errnoText())") }
        defer { close(output) }
        guard let context = EVP_MD_CTX_new() else { throw .internal("\(what): libcrypto cannot create a digest context") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else { throw .internal("\(what): libcrypto cannot start sha256") }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var first = true
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw .badRequest("\(what): cannot be read: \(errnoText())") }
            if count == 0 { break }
            if first {
                guard count >= 4, Array(buffer[0..<4]) == SquashfsFileImporter.magic else { throw .badRequest("\(what): not a squashfs file") }
                first = false
            }
            var written = 0
            while written < count {
                let result = buffer.withUnsafeBytes { write(output, $0.baseAddress.map { $0 + written }, count - written) }
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { throw .internal("\(what): cannot write \(quoted(path)): \(errnoText())") }
                written += result
            }
            _ = buffer.withUnsafeBytes { EVP_DigestUpdate(context, $0.baseAddress, count) }
        }
        guard !first else { throw .badRequest("\(what): the file is empty") }
        guard fsync(output) == 0 else { throw .internal("\(what): cannot sync \(quoted(path)): \(errnoText())") }
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        guard EVP_DigestFinal_ex(context, &digest, &length) == 1, length == 32 else {
            throw .internal("\(what): libcrypto cannot finish sha256")
        }
        return digest.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// Points the tag index entry of `reference` at `id`, replacing it atomically.
    private static func writeTag(_ reference: ImageReference, id: ImageID, store: ImageStore) throws(GatewayError) {
        guard let tagFile = store.layout.tagFile(for: reference) else { return }
        let tags = store.layout.tagDirectory
        if mkdir(tags, 0o755) != 0 && errno != EEXIST {
            throw .internal("import \(reference): cannot create \(quoted(tags)): \(errnoText())")
        }
        let temporary = tags + "/.tag-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        guard FileManager.default.createFile(atPath: temporary, contents: Data((id.digest + "\n").utf8), attributes: [.posixPermissions: 0o644])
        else {
            throw .internal("import \(reference): cannot write \(quoted(temporary))")
        }
        try syncFile(temporary)
        guard rename(temporary, tagFile) == 0 else {
            unlink(temporary)
            throw .internal("import \(reference): cannot write the tag \(quoted(tagFile)): \(errnoText())")
        }
        try syncFile(tags)
    }

    private static func syncFile(_ path: String) throws(GatewayError) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .internal("cannot open \(quoted(path)) to sync it: \(errnoText())") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw .internal("cannot sync \(quoted(path)): \(errnoText())") }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
