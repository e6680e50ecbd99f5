import Foundation
import ShifterCore

#if canImport(Glibc)
import Glibc
#endif

/// The image commands of `imageGateway=local`: they run in this process against `imagePath`.
public struct LocalImageService: Sendable {
    /// The site configuration.
    public let config: SiteConfig
    /// The store in `imagePath`.
    public let store: ImageStore

    /// Reads the site configuration at `path` and checks that it selects local mode.
    ///
    /// Returns the service and the configuration's warnings (retired keys and the like).
    public static func load(configPath path: String) throws(ImageImportError) -> (service: LocalImageService, warnings: [String]) {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw ImageImportError(.io, "site configuration \(displayQuoted(path)): \(FileOperations.lastErrorText)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageImportError(.io, "site configuration \(displayQuoted(path)): cannot be read: \(FileOperations.lastErrorText)")
        }
        let parsed: (config: SiteConfig, warnings: [String])
        do {
            try SiteConfig.checkOwnership(path: path, ownerUID: status.st_uid, mode: UInt32(status.st_mode))
            parsed = try SiteConfig.parse(String(decoding: data, as: UTF8.self), source: path)
        } catch {
            throw ImageImportError(.io, "\(error)")
        }
        guard parsed.config.imageGateway.contains("local") else {
            let configured = parsed.config.imageGateway.joined(separator: " ")
            throw ImageImportError(
                .store,
                "site configuration \(displayQuoted(path)): imageGateway=\(configured.isEmpty ? "(unset)" : configured); this shifterimg supports only imageGateway=local")
        }
        return (LocalImageService(config: parsed.config, store: ImageStore(directory: parsed.config.imagePath)), parsed.warnings)
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
        for item in list.split(separator: ",", omittingEmptySubsequences: true).map({ $0.trimmingCharacters(in: .whitespaces) }) {
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
