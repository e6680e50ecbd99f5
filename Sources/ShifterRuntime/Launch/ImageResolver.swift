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
    /// and `groups`.
    public static func resolve(_ reference: ImageReference, config: SiteConfig, uid: UInt32,
                               groups: [UInt32]) throws(RuntimeError) -> ResolvedImage {
        let store = ImageStoreLayout(root: config.imagePath)
        let shown = reference.canonical
        let digest: String
        switch reference.type {
        case .local:
            guard config.allowLocalChroot else {
                throw RuntimeError("image \"\(shown)\": local images are disabled on this system (allowLocalChroot=0)")
            }
            guard let path = reference.path, (try? FileSystem.status(path))?.kind == .directory else {
                throw RuntimeError("image \"\(shown)\": \(reference.path ?? "") is not a directory")
            }
            return ResolvedImage(id: path, imageFile: nil, localDirectory: path,
                                 metadata: ImageMetadata(digest: "", manifestDigest: "", source: shown))
        case .id:
            guard let id = reference.digest else { throw RuntimeError("image \"\(shown)\": no image id") }
            digest = id
        case .docker, .custom:
            guard let tagFile = store.tagFile(for: reference),
                  let text = try? FileSystem.readFile(tagFile, limit: 4096),
                  let id = ImageStoreLayout.digest(fromTagFile: String(decoding: text, as: UTF8.self)) else {
                throw RuntimeError("image \"\(shown)\" is not in the image store \(config.imagePath); pull it first with: shifterimg pull \(shown)")
            }
            digest = id
        }
        guard let imageFile = store.imageFile(digest: digest), let metadataFile = store.metadataFile(digest: digest) else {
            throw RuntimeError("image \"\(shown)\": \(digest) is not a sha256 image id")
        }
        let metadata: ImageMetadata
        do {
            metadata = try ImageMetadata.decode(try FileSystem.readFile(metadataFile, limit: 4 << 20))
        } catch let error as SystemError where error.errno == 2 {
            throw RuntimeError("image \"\(shown)\" (\(digest)) is not in the image store \(config.imagePath); pull it first with: shifterimg pull \(shown)")
        } catch {
            throw RuntimeError("image \"\(shown)\": couldn't read its metadata \(metadataFile): \(error)")
        }
        guard metadata.isAllowed(uid: uid, gids: groups) else {
            throw RuntimeError("image \"\(shown)\" is private and uid \(uid) is not on its access list")
        }
        guard FileSystem.exists(imageFile) else {
            throw RuntimeError("image \"\(shown)\": its squashfs file \(imageFile) is missing from the store")
        }
        return ResolvedImage(id: digest, imageFile: imageFile, localDirectory: nil, metadata: metadata)
    }
}
