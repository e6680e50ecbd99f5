#if canImport(Glibc)
import Glibc
#endif

/// The resource limits a setuid program inherits from its user, set aside while it works as root.
/// A user's `ulimit -f 100` would otherwise cut root's writes short (`mkfs.xfs` of a per-node
/// cache dies of SIGXFSZ), and `ulimit -t` or `-v` would stop root's helpers half-way. The user's
/// own limits come back before the user's command runs.
public struct ResourceLimits: Sendable {
    /// The limits that bound what root's work may do, and are lifted for it.
    static let lifted: [Int32] = [RLIMIT_FSIZE, RLIMIT_CPU, RLIMIT_AS, RLIMIT_DATA, __RLIMIT_NPROC].map { Int32($0.rawValue) }

    private var saved: [(resource: Int32, limit: rlimit)] = []

    /// Lifts the limits of `lifted` to unlimited, keeping the current ones to `restore`. Raising a
    /// hard limit takes CAP_SYS_RESOURCE, which root has on a node but may lack in a container;
    /// there the soft limit is raised to the hard one, which needs no capability. The
    /// corresponding C function is `setrlimit(2)`.
    public static func liftForPrivilegedWork() -> ResourceLimits {
        var limits = ResourceLimits()
        for resource in lifted {
            var current = rlimit()
            guard getrlimit(__rlimit_resource_t(UInt32(resource)), &current) == 0 else { continue }
            limits.saved.append((resource, current))
            var unlimited = rlimit(rlim_cur: rlim_t.max, rlim_max: rlim_t.max)  // RLIM_INFINITY
            if setrlimit(__rlimit_resource_t(UInt32(resource)), &unlimited) != 0 {
                var softToHard = rlimit(rlim_cur: current.rlim_max, rlim_max: current.rlim_max)
                _ = setrlimit(__rlimit_resource_t(UInt32(resource)), &softToHard)
            }
        }
        return limits
    }

    /// Puts the user's limits back, as they were when `liftForPrivilegedWork` was called.
    public func restore() throws(SystemError) {
        for (resource, limit) in saved {
            var value = limit
            if setrlimit(__rlimit_resource_t(UInt32(resource)), &value) != 0 {
                throw SystemError("restore resource limit \(resource) of", "the user", errno: errno)
            }
        }
    }
}
