/// The product version, reported by every executable and by `shifter_version()`.
public enum ShifterVersion {
    public static let string = "0.1.0"
}
