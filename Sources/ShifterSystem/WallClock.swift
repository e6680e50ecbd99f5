#if canImport(Glibc)
import Glibc
#endif

/// `CLOCK_REALTIME`, the clock a shell's `$EPOCHREALTIME` reads: for times shown to a person.
public enum WallClock {
    /// Now. `clock_gettime(2)`.
    public static var now: timespec {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return now
    }
}
