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

extension ProcessControl {
    /// The signals a terminal, a session leader or a scheduler sends to end a command: SIGINT
    /// (Ctrl-C), SIGQUIT (Ctrl-\), SIGHUP (hangup) and SIGTERM.
    public static let terminationSignals: [Int32] = [SIGINT, SIGQUIT, SIGHUP, SIGTERM]

    /// The calling thread's signal mask. The corresponding C function is `sigprocmask(2)`.
    public static func signalMask() -> SignalMask {
        var current = sigset_t()
        sigemptyset(&current)
        _ = sigprocmask(SIG_BLOCK, nil, &current)
        return SignalMask(current)
    }

    /// Adds `signals` to the calling thread's signal mask, so they stay pending instead of being
    /// delivered, and returns the mask as it was, for `restoreSignalMask`. The corresponding C
    /// function is `sigprocmask(2)` with `SIG_BLOCK`.
    public static func blockSignals(_ signals: [Int32]) throws(SystemError) -> SignalMask {
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        sigemptyset(&previous)
        for signal in signals {
            if sigaddset(&blocked, signal) != 0 { throw SystemError("block signal \(signal) in", "shifter", errno: EINVAL) }
        }
        try check("block signals in", "shifter") { sigprocmask(SIG_BLOCK, &blocked, &previous) }
        return SignalMask(previous)
    }

    /// Sets the calling thread's signal mask to `mask`; a signal that arrived while it was blocked
    /// and is no longer is delivered before this returns. The corresponding C function is
    /// `sigprocmask(2)` with `SIG_SETMASK`, which fails only for an invalid `how`.
    public static func restoreSignalMask(_ mask: SignalMask) {
        var saved = mask.set
        _ = sigprocmask(SIG_SETMASK, &saved, nil)
    }
}
