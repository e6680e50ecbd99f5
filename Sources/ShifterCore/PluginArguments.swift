/// The SPANK plugin's arguments in `plugstack.conf` (`shifter_config=PATH`, `long_options`,
/// `enable_ccm=0|1`, `pyxis_compat=0|1`, `shifter_path=PATH`), read for the plugin by libshifter.
/// An unknown argument is an error, as is a flag that is not 0 or 1, or a path that is not
/// absolute or does not fit the plugin's buffer.
public struct PluginArguments: Sendable, Equatable {
    /// `shifter_config=`: the site configuration.
    public var configPath: String
    /// `shifter_path=`: the `shifter` command the tasks of Pyxis-style steps run; nil: the one
    /// installed beside the plugin.
    public var shifterPath: String?
    /// `long_options`: the options are `--shifter-image`, `--shifter-volume`, `--shifter-module`.
    public var longOptions = false
    /// `enable_ccm=1`: `--ccm`, an sshd in the job's container on each node.
    public var enableCCM = false
    /// `pyxis_compat=1`: Pyxis' options and variables.
    public var pyxisCompat = false

    /// The longest path the plugin keeps (its buffers hold 4096 bytes with the NUL).
    public static let maximumPathLength = 4095

    /// Reads `arguments` in order, later ones winning; `configPath` is `defaultConfigPath` unless given.
    public static func parse(_ arguments: [String], defaultConfigPath: String) throws(PluginArgumentsError) -> PluginArguments {
        var result = PluginArguments(configPath: defaultConfigPath)
        for argument in arguments {
            let (key, value) = argument.firstIndex(of: "=").map { (argument[..<$0], Optional(argument[argument.index(after: $0)...])) }
                ?? (Substring(argument), nil)
            switch (key, value) {
            case ("shifter_config", let value?), ("shifter_path", let value?):
                guard value.hasPrefix("/"), value.utf8.count <= maximumPathLength else { throw .badPath(argument) }
                if key == "shifter_config" { result.configPath = String(value) } else { result.shifterPath = String(value) }
            case ("enable_ccm", let value?), ("pyxis_compat", let value?):
                guard value == "0" || value == "1" else { throw .notAFlag(argument) }
                if key == "enable_ccm" { result.enableCCM = value == "1" } else { result.pyxisCompat = value == "1" }
            case ("long_options", nil):
                result.longOptions = true
            default:
                throw .unknown(argument)
            }
        }
        return result
    }
}

/// A `plugstack.conf` argument the plugin cannot take.
public enum PluginArgumentsError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknown(String)
    case badPath(String)
    case notAFlag(String)

    public var description: String {
        switch self {
        case .unknown(let argument):
            "plugstack argument \"\(argument)\" is unknown (known: shifter_config=PATH, long_options, enable_ccm=0|1, pyxis_compat=0|1, shifter_path=PATH)"
        case .badPath(let argument):
            "plugstack argument \"\(argument)\": the path must be absolute and shorter than \(PluginArguments.maximumPathLength + 1)"
        case .notAFlag(let argument):
            "plugstack argument \"\(argument)\": expected 0 or 1"
        }
    }
}
