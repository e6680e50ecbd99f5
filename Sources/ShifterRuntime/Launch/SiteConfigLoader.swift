#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// Reads `udiRoot.conf` the way a setuid program must: the file must be owned by root and not
/// writable by group or others, or nothing runs.
public enum SiteConfigLoader {
    /// The path compiled into this build.
    public static var defaultPath: String { BuildConfiguration.siteConfigPath }

    /// Loads and checks the configuration at `path`; warnings (retired keys) go to `warn`.
    public static func load(_ path: String, warn: (String) -> Void = { _ in }) throws(RuntimeError) -> SiteConfig {
        let bytes: [UInt8]
        let status: FileStatus
        do {
            (bytes, status) = try FileSystem.readFileWithStatus(path, limit: 1 << 20)
        } catch {
            throw RuntimeError("couldn't read site configuration: \(error.description)")
        }
        do {
            try SiteConfig.checkOwnership(path: path, ownerUID: status.uid, mode: status.mode)
            let (config, warnings) = try SiteConfig.parse(String(decoding: bytes, as: UTF8.self), source: path)
            warnings.forEach(warn)
            return config
        } catch {
            throw RuntimeError(error.description)
        }
    }
}
