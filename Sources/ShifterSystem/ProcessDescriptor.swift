#if canImport(Glibc)
import Glibc
#endif
import CShifterSys

/// A process held by a pidfd: signals sent through it reach that process or nobody, even after
/// its number has been reused by another process, which `kill(2)` on a number read earlier from
/// `/proc` cannot promise.
public struct ProcessDescriptor: ~Copyable {
    /// The pidfd; closed with the value.
    public let descriptor: Int32
    /// The process id it was opened for.
    public let pid: pid_t

    /// Opens process `pid`. Throws with `ESRCH` when no such process exists, and with `ENOSYS`
    /// on a kernel without pidfds (before 5.3). The corresponding C function is `pidfd_open(2)`.
    public init(pid: pid_t) throws(SystemError) {
        self.descriptor = try checkShim("open process", "\(pid)", cshifter_pidfd_open(pid))
        self.pid = pid
    }

    /// Sends `signal` to the process; throws with `ESRCH` once it has exited. The corresponding
    /// C function is `pidfd_send_signal(2)`.
    public func send(_ signal: Int32) throws(SystemError) {
        try checkShim("send signal \(signal) to process", "\(pid)", cshifter_pidfd_send_signal(descriptor, signal))
    }

    /// Whether the process has exited, whoever reaps it: its pidfd is then readable. The
    /// corresponding C function is `poll(2)`, with no wait.
    public func hasExited() -> Bool {
        var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&ready, 1, 0) > 0
    }

    deinit { close(descriptor) }
}
