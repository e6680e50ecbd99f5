#if canImport(Glibc)
import Glibc
#endif

/// A set of signals blocked from delivery, as the calling thread's signal mask holds them.
public struct SignalMask {
    var set: sigset_t

    init(_ set: sigset_t) { self.set = set }

    /// Whether `signal` is in the set. The corresponding C function is `sigismember(3)`.
    public func contains(_ signal: Int32) -> Bool {
        withUnsafePointer(to: set) { sigismember($0, signal) == 1 }
    }
}
