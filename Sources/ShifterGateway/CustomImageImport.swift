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
    /// `POST /api/doimport/SYSTEM/custom/NAME[:TAG]/`: imports a file on the gateway host, opened
    /// with the caller's own rights, into the system's store as a `custom` image: a squashfs file
    /// as it is, named by its sha256 (administrators and `importUsers` only), or an image archive
    /// converted as a pull would be (any user). The name is its first importer's
    /// (`CustomImageNames`): reserved before the file is read, checked again before it is tagged.
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
        // An archive or squashfs file carries no registry signature: the policy's rule for them.
        if let policy = signaturePolicy, policy.archives != .accept {
            metrics.countSignatureRefusal(.rejected)
            throw .forbidden("import \(type):\(tag): refused by the site's signature policy (archives): an imported file carries no registry signature, and the policy rejects imports; push the image to a registry the policy accepts and pull it")
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
        if !config.adminUIDs.contains(caller.uid) {
            try checkSharing(tag: canonical, groupACL: groupACL, caller: caller)
            // An archive a user brings is theirs alone unless they name others.
            if isArchive && userACL.isEmpty && groupACL.isEmpty { userACL = [caller.uid] }
        }
        let isPrivate = !userACL.isEmpty || !groupACL.isEmpty
        if isPrivate && !userACL.contains(caller.uid) && caller.uid != 0 { userACL = (userACL + [caller.uid]).sorted() }

        let input = try SquashfsFileImport.openSource(source, reference: reference, caller: caller.uid)
        defer { close(input) }
        // The name is the caller's from here until the import ends (CustomImageNames).
        let previous = try reserveCustomName(
            system: system, tag: canonical, caller: caller.uid, source: source, userACL: userACL, groupACL: groupACL)
        var store = ImageStore(directory: systemConfig.imagePath)
        store.nameGuard = { [self] (_: ImageReference, _: ImageID) throws(ImageImportError) in
            try confirmCustomName(system: system, tag: canonical, caller: caller.uid)
        }
        let metadata: ImageMetadata
        do throws(GatewayError) {
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
                    input, source: source, into: store, reference: reference, userACL: userACL, groupACL: groupACL, caller: caller.uid,
                    config: config, importsByUser: archiveImportsByUser)
            } else {
                metadata = try SquashfsFileImport.importFile(
                    input, source: source, into: store, reference: reference, userACL: userACL, groupACL: groupACL)
            }
        } catch {
            releaseCustomName(system: system, tag: canonical, caller: caller.uid, previous: previous)
            throw error
        }
        let row = try finishCustomImport(
            system: system, tag: canonical, caller: caller.uid, metadata: metadata, userACL: userACL, groupACL: groupACL, source: source)
        logger.info("image imported", metadata: ["image": "\(system)/custom:\(canonical)", "id": "\(metadata.digest)", "uid": "\(caller.uid)"])
        return row.record
    }
}

extension GatewayService {
    /// Whom a user who is not an administrator may share an import with: any user (an image
    /// shared with someone runs for them only under its own name, which is the importer's alone),
    /// but only groups they are in themselves, so nobody opens an image to a group as a whole that
    /// they do not belong to. Administrators may name any user and group.
    func checkSharing(tag: String, groupACL: [UInt32], caller: AuthenticatedCaller) throws(GatewayError) {
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
    /// squashfs file is root's only, as a pulled one is. The import counts in `importsByUser` as one
    /// of `caller`'s, of whom at most `config.archiveImportsPerUser` run at once, and is held to
    /// the configuration's limits.
    static func importArchive(
        _ input: Int32, source: String, into store: ImageStore, reference: ImageReference, userACL: [UInt32], groupACL: [UInt32],
        caller: UInt32, config: GatewayConfig, importsByUser: ArchiveImportsByUser
    ) throws(GatewayError) -> ImageMetadata {
        // One user's imports never take every worker: the others' can still start.
        let limit = config.archiveImportsPerUser
        guard importsByUser.claim(caller, limit: limit) else {
            throw .tooManyRequests(
                "import \(reference): uid \(caller) already runs \(limit) archive import\(limit == 1 ? "" : "s"), the most one user may at once (archiveImportsPerUser); try again when \(limit == 1 ? "it" : "one") ends")
        }
        defer { importsByUser.release(caller) }
        try SquashfsFileImport.requireRegularFile(
            input, what: "import \(reference): \(quoted(source))", hint: " (an OCI layout directory must be packed: tar -C DIR -cf FILE.tar .)")
        var store = store
        store.importLimits = config.importLimits
        let importer = ImageArchiveImporter(store: store, options: ImportOptions(userACL: userACL, groupACL: groupACL), limits: config.archiveLimits)
        do throws(ImageImportError) {
            let result = try importer.importArchive(input, name: "import \(reference): \(quoted(source))", as: reference)
            if !userACL.isEmpty || !groupACL.isEmpty, !result.alreadyPresent, let id = ImageID(result.metadata.digest),
                chmod(store.imagePath(for: id), 0o600) != 0
            {
                throw ImageImportError(.store, "import \(reference): cannot make the image private: \(String(cString: strerror(errno)))")
            }
            return result.metadata
        } catch {
            throw GatewayError(importError: error)
        }
    }
}

extension GatewayError {
    /// The answer for an import the image library refused: the store's or the system's failures
    /// are the gateway's (500), a name another import holds is 403, the rest is the request's (400).
    init(importError error: ImageImportError) {
        switch error.code {
        case .io, .store, .squashfs: self = .internal(error.message)
        case .nameTaken: self = .forbidden(error.message)
        default: self = .badRequest(error.message)
        }
    }
}

/// The gateway's side of importing a file: opening it with the caller's rights. What goes into the
/// store goes through the store's own importers (`SquashfsFileImporter`, `ImageArchiveImporter`).
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
    /// databases, opens the file and passes the descriptor back (`UserAccess.openFile`).
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
        do throws(UserOpenError) {
            return try UserAccess.openFile(source, uid: uid, gid: user.gid, groups: groups, timeLimit: openTimeLimit)
        } catch {
            let reason = error.error.reason
            switch error.cause {
            case .onFUSE:
                throw .badRequest(
                    "\(what): it is on a FUSE filesystem, which the gateway does not read: its daemon could hold the import for ever; copy the file to a local or parallel filesystem and import that")
            case .user:
                let message = "\(what): cannot be opened as uid \(uid): \(reason)"
                throw error.error.errno == EACCES || error.error.errno == EPERM ? .forbidden(message) : .badRequest(message)
            case .takingRights:
                if error.error.errno == ETIMEDOUT {
                    throw .badRequest("\(what): opening it as uid \(uid) had no answer from the filesystem within \(openTimeLimit.components.seconds) s")
                }
                throw .internal("\(what): cannot take uid \(uid)'s rights to open it: \(reason)")
            }
        }
    }

    /// Refuses what is open at `input` unless it is a regular file: "WHAT: not a regular fileHINT".
    static func requireRegularFile(_ input: Int32, what: String, hint: String = "") throws(GatewayError) {
        var status = stat()
        guard fstat(input, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            throw .badRequest("\(what): not a regular file\(hint)")
        }
    }

    /// Copies the squashfs file open at `input` (named `source` in messages) into `store` as the
    /// image of `reference`, the way every import goes (`SquashfsFileImporter`).
    static func importFile(
        _ input: Int32, source: String, into store: ImageStore, reference: ImageReference, userACL: [UInt32], groupACL: [UInt32]
    ) throws(GatewayError) -> ImageMetadata {
        do throws(ImageImportError) {
            return try SquashfsFileImporter(store: store).importFile(
                descriptor: input, name: "import \(reference): \(quoted(source))", as: reference, userACL: userACL, groupACL: groupACL)
        } catch {
            throw GatewayError(importError: error)
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
