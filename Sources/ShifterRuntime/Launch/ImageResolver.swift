#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// An image found in the store (or a local directory), ready to be planned.
public struct ResolvedImage: Sendable, Equatable {
    /// `sha256:HEX`, or the directory of a `local:` image.
    public var id: String
    /// The squashfs file; nil for a `local:` image.
    public var imageFile: String?
    /// The directory used as the root of a `local:` image.
    public var localDirectory: String?
    /// The metadata (empty for a `local:` image).
    public var metadata: ImageMetadata
}

/// Finds an image reference in the site's image store.
public enum ImageResolver {
    /// Resolves `reference` to an image in `config.imagePath`, checking its access list for `uid`
    /// and `groups` (the primary group first: a `local:` directory is opened with it as the gid).
    public static func resolve(_ reference: ImageReference, config: SiteConfig, uid: UInt32,
                               groups: [UInt32]) throws(RuntimeError) -> ResolvedImage {
        let store = ImageStoreLayout(root: config.imagePath)
        let shown = reference.canonical
        let digest: String
        switch reference.type {
        case .local:
            guard config.allowLocalChroot else {
                throw RuntimeError("image \"\(shown)\": local images are disabled on this system (allowLocalChroot=0)", kind: .permission)
            }
            guard let path = reference.path else { throw RuntimeError("image \"\(shown)\": no directory given", kind: .invalidRequest) }
            guard !config.requiresSigner else {
                throw RuntimeError("image \"\(shown)\": this system runs signed images only (requireSignedImages), and a local: directory carries no signature; pull the image through the gateway", kind: .permission)
            }
            // The callers give the user's primary group first.
            _ = try LocalImageAccess.check(path, uid: uid, gid: groups.first ?? LocalImageAccess.overflowGroup,
                                           groups: groups, userName: nil)
            return ResolvedImage(id: path, imageFile: nil, localDirectory: path,
                                 metadata: ImageMetadata(digest: "", manifestDigest: "", source: shown))
        case .id:
            guard let id = reference.digest else { throw RuntimeError("image \"\(shown)\": no image id", kind: .invalidRequest) }
            digest = id
        case .docker, .custom:
            guard let tagFile = store.tagFile(for: reference),
                  let text = try? FileSystem.readFile(tagFile, limit: 4096),
                  let id = ImageStoreLayout.digest(fromTagFile: String(decoding: text, as: UTF8.self)) else {
                throw RuntimeError("image \"\(shown)\" is not in the image store \(config.imagePath); pull it first with: shifterimg pull \(shown)", kind: .notFound)
            }
            digest = id
        }
        guard let imageFile = store.imageFile(digest: digest), let metadataFile = store.metadataFile(digest: digest) else {
            throw RuntimeError("image \"\(shown)\": \(digest) is not a sha256 image id", kind: .invalidRequest)
        }
        let metadata: ImageMetadata
        var isFullRecord = true
        do {
            metadata = try ImageMetadata.decode(try FileSystem.readFile(metadataFile, limit: 4 << 20))
        } catch let error as SystemError where error.errno == ENOENT {
            throw RuntimeError("image \"\(shown)\" (\(digest)) is not in the image store \(config.imagePath); pull it first with: shifterimg pull \(shown)", kind: .notFound)
        } catch let error as SystemError where error.errno == EACCES && geteuid() != 0 {
            // A private image's full record is root's; a user (job submission) reads its access
            // list alone, which is all the check below needs. Root (the prolog, shifter) always
            // has the full record: where even root cannot read it (a root-squashed filesystem),
            // the error says so rather than run the image without its environment.
            metadata = try accessList(store.accessFile(digest: digest) ?? metadataFile, image: shown)
            isFullRecord = false
        } catch {
            throw RuntimeError("image \"\(shown)\": couldn't read its metadata \(metadataFile): \(error)")
        }
        guard metadata.isAllowed(uid: uid, gids: groups) else {
            throw RuntimeError("image \"\(shown)\" is private and uid \(uid) is not on its access list", kind: .permission)
        }
        // The signer is in the full record, which root reads: the prolog and shifter check it
        // where submission, as the user, saw a private image's access list alone.
        if isFullRecord, let problem = config.signerProblem(metadata.signedBy) {
            throw RuntimeError("image \"\(shown)\" (\(digest)): \(problem)", kind: .permission)
        }
        guard FileSystem.exists(imageFile) else {
            throw RuntimeError("image \"\(shown)\": its squashfs file \(imageFile) is missing from the store")
        }
        return ResolvedImage(id: digest, imageFile: imageFile, localDirectory: nil, metadata: metadata)
    }
}

extension ImageResolver {
    /// The access list of a private image (`ImageStoreLayout.accessFile`), as a record with no
    /// more than the image's id and its users and groups.
    static func accessList(_ path: String, image shown: String) throws(RuntimeError) -> ImageMetadata {
        do {
            return try ImageMetadata.decode(try FileSystem.readFile(path, limit: 1 << 20))
        } catch {
            throw RuntimeError("image \"\(shown)\" is private and its access list \(path) cannot be read: \(error)")
        }
    }
}

/// The check of a `local:` image's directory, with the user's own rights and before root looks
/// at it: a directory the user may not enter, a missing path and a file give the same kind of
/// message, the user's own error.
enum LocalImageAccess {
    /// The kernel's overflow group, for a user whose group list came back empty.
    static let overflowGroup: UInt32 = 65534

    static func check(_ directory: String, uid: UInt32, gid: UInt32, groups: [UInt32],
                      userName: String?) throws(RuntimeError) -> (device: UInt64, inode: UInt64) {
        do {
            let status = try UserAccess.openDirectory(directory, root: "/", uid: uid, gid: gid, groups: groups).status()
            return (status.device, status.inode)
        } catch {
            let name = userName ?? (try? Credentials.passwdEntry(uid: uid).name) ?? "uid \(uid)"
            if error.errno == ETIMEDOUT {
                throw RuntimeError("image \"local:\(directory)\": it did not answer within \(UserAccess.timeLimit.components.seconds) s when user \(name) opened it (a filesystem that does not respond?)")
            }
            throw RuntimeError("image \"local:\(directory)\": user \(name) may not open it: \(error.reason)", kind: .permission)
        }
    }
}
