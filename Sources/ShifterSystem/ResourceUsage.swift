#if canImport(Glibc)
import Glibc
#endif

/// CPU time used, from `getrusage(2)`.
public enum ResourceUsage {
    /// User and system time of this process and of the children it has waited for, in
    /// microseconds. The corresponding C function is `getrusage(2)` (`RUSAGE_SELF` and
    /// `RUSAGE_CHILDREN`).
    public static var cpuMicroseconds: Int64 {
        var total: Int64 = 0
        for who in [RUSAGE_SELF, RUSAGE_CHILDREN] {
            var usage = rusage()
            guard getrusage(__rusage_who_t(who.rawValue), &usage) == 0 else { continue }
            for time in [usage.ru_utime, usage.ru_stime] {
                total += Int64(time.tv_sec) * 1_000_000 + Int64(time.tv_usec)
            }
        }
        return total
    }
}
