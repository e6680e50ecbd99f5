import ShifterCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// The image commands of `imageGateway=local`: they run in this process against `imagePath`.
public struct LocalImageService: Sendable {
    /// The site configuration.
    public let config: SiteConfig
    /// The store in `imagePath`.
    public let store: ImageStore

    /// Removes an image from the store as `expire` does in local mode: root only, since the store
    /// belongs to root and no usage record says whether a job still needs the image.
    public func expire(_ reference: ImageReference, callerUID: UInt32) throws(ImageImportError) -> ImageMetadata {
        guard callerUID == 0 else {
            throw ImageImportError(.store, "imageGateway=local: only root may expire images in \(displayQuoted(store.directory))")
        }
        guard let image = try store.find(reference), let id = ImageID(image.digest) else {
            throw ImageImportError(.notFound, "not in the image store \(store.directory)")
        }
        try store.remove(id)
        return image
    }

    /// Parses a `--user` list: user names or numeric uids, separated by commas.
    public static func userIDs(_ list: String) throws(ImageImportError) -> [UInt32] {
        try ids(list, kind: "user") { name in getpwnam(name).map { $0.pointee.pw_uid } }
    }

    /// Parses a `--group` list: group names or numeric gids, separated by commas.
    public static func groupIDs(_ list: String) throws(ImageImportError) -> [UInt32] {
        try ids(list, kind: "group") { name in getgrnam(name).map { $0.pointee.gr_gid } }
    }

    private static func ids(_ list: String, kind: String, lookup: (String) -> UInt32?) throws(ImageImportError) -> [UInt32] {
        var result: [UInt32] = []
        for item in list.split(separator: ",", omittingEmptySubsequences: true).map({ $0.trimmingWhitespace() }) {
            if let number = UInt32(item) {
                result.append(number)
            } else if let id = lookup(item) {
                result.append(id)
            } else {
                throw ImageImportError(.notFound, "\(kind) \(displayQuoted(item)): no such \(kind)")
            }
        }
        return result
    }
}
