import ShifterCore

public enum ImageStoreVersion {
    public static var string: String { ShifterVersion.string }
}
