import ShifterCore

/// What the runtime reports about itself.
public enum Runtime {
    public static var version: String { ShifterVersion.string }
}
