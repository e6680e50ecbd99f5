#if canImport(Glibc)
import Glibc
#endif

/// Seconds on `CLOCK_MONOTONIC`, which no one can set: for deadlines and durations. (The standard
/// `ContinuousClock` lives in the concurrency runtime, which the node's programs do not link.)
public enum MonotonicClock {
    /// Seconds since an unspecified start, which stays the same while the system runs.
    public static var seconds: Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// `duration` in seconds.
    public static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
