import CShifterSys

/// What this build was configured with.
public enum BuildConfiguration {
    /// The site configuration path compiled in (`SHIFTER_CONFIG_PATH`, by default
    /// `/etc/shifter/udiRoot.conf`). See `cshifter_default_config_path`.
    public static var siteConfigPath: String { String(cString: cshifter_default_config_path()) }
}
