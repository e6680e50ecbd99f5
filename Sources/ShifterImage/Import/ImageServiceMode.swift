import ShifterCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// Where `shifterimg` sends its commands, as udiRoot.conf's `imageGateway` says: into `imagePath`
/// in this process (`local`), or to the image gateway's REST API.
public enum ImageServiceMode: Sendable {
    /// `imageGateway=local`: commands run in this process against `imagePath`.
    case local(LocalImageService)
    /// `imageGateway` lists URLs: commands go to the gateway.
    case gateway(GatewaySettings)

    /// What the gateway client needs from the site configuration.
    public struct GatewaySettings: Sendable, Equatable {
        /// Gateway base URLs, tried in turn.
        public var urls: [String]
        /// This cluster's name at the gateway (`system`).
        public var system: String
        /// Seconds per request (`gatewayTimeout`).
        public var timeout: Int
        /// The type of a reference without a `TYPE:` prefix (`defaultImageType`).
        public var defaultImageType: ImageType

        /// Settings for a gateway client.
        public init(urls: [String], system: String, timeout: Int, defaultImageType: ImageType = .docker) {
            self.urls = urls
            self.system = system
            self.timeout = timeout
            self.defaultImageType = defaultImageType
        }
    }

    /// Picks the mode of a parsed configuration: `local` anywhere in `imageGateway` selects local
    /// mode; otherwise the URLs need `system`, which names this cluster at the gateway.
    public static func select(_ config: SiteConfig, source: String) throws(ImageImportError) -> ImageServiceMode {
        if config.imageGateway.contains("local") {
            var store = ImageStore(directory: config.imagePath)
            store.importLimits = ImportLimits(expandedBytes: config.imageExpandedSizeLimit, entries: config.imageEntryLimit)
            return .local(LocalImageService(config: config, store: store))
        }
        guard !config.imageGateway.isEmpty else {
            throw ImageImportError(
                .store, "site configuration \(displayQuoted(source)): imageGateway is not set; set it to local or to the gateway's URLs")
        }
        guard let system = config.system, !system.isEmpty else {
            throw ImageImportError(
                .store, "site configuration \(displayQuoted(source)): imageGateway names a gateway but system is not set; set system to this cluster's name at the gateway")
        }
        return .gateway(
            GatewaySettings(urls: config.imageGateway, system: system, timeout: config.gatewayTimeout, defaultImageType: config.defaultImageType))
    }

    /// Reads the site configuration at `path`, which must be owned by root and not writable by
    /// others, and picks the mode. Returns the configuration's warnings too (retired keys and the like).
    public static func load(configPath path: String) throws(ImageImportError) -> (mode: ImageServiceMode, warnings: [String]) {
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
        return (try select(parsed.config, source: path), parsed.warnings)
    }
}
