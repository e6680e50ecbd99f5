/// The product version, reported by every executable and by `shifter_version()`.
public enum ShifterVersion {
    /// The version as `MAJOR.MINOR.PATCH`.
    public static let string = "0.1.0"
}
