#if canImport(Glibc)
import Glibc
#endif
import CShifterSys

/// Runs a helper program (such as `mkfs.xfs` or a site hook) to completion, synchronously, with
/// no shell, in a process group of its own, and for no longer than a time limit.
public enum ProgramRunner {
    /// The outcome: the exit status (or 128 + signal) and the first lines of what it wrote.
    public struct Outcome: Sendable {
        public var status: Int32
        public var output: String
        /// True when the program outlived its time limit and its process group was killed; `status`
        /// is then 128 + SIGKILL.
        public var timedOut: Bool = false
    }

    /// The descriptor number at which `inheriting` appears in the child.
    public static let inheritedDescriptorNumber: Int32 = 3

    /// How long a program may run when the caller names no limit. A hook or helper that hangs
    /// must not hold a prolog (and with it the job's nodes) forever.
    public static let defaultTimeLimit: Duration = .seconds(120)

    /// How long output is still collected once the program has exited: a background process it
    /// left may hold the pipe open and never close it.
    static let drainLimit: Duration = .milliseconds(100)

    /// Runs `path` with `arguments` (argv[1...]) and only `environment` plus a standard `PATH`;
    /// stdin is /dev/null or the file `standardInput`;
    /// stdout and stderr are collected (up to 4 KiB), or, with `showingOutputOn`, both go to that
    /// descriptor of the caller as they come (a user's terminal) and none is collected. Spawned with `posix_spawn(3)`, so it is safe
    /// inside a daemon. The run ends when the program exits, not when its output ends, so a
    /// process it left in the background cannot hold the caller up; the pipe is closed then.
    /// A program still running after `timeLimit` is killed with its whole process group, and the
    /// outcome says so (`timedOut`). While the calling thread blocks a termination signal
    /// (`ProcessControl.terminationSignals`, as `shifter` does while it builds a root) and one
    /// arrives, the program's group is killed too and the run throws `EINTR`, so Ctrl-C stops a
    /// helper that the terminal no longer reaches in its own process group.
    public static func run(_ path: String, _ arguments: [String], environment: [String] = [],
                           inheriting inherited: Int32? = nil, showingOutputOn shown: Int32? = nil,
                           standardInput: String? = nil,
                           timeLimit: Duration = defaultTimeLimit) throws(SystemError) -> Outcome {
        var pipeFDs: [Int32] = [-1, -1]
        try checkShim("create pipe for", path, cshifter_pipe_cloexec(&pipeFDs))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Standard input is /dev/null, or the file `standardInput` names (a CDI hook's state).
        posix_spawn_file_actions_addopen(&actions, 0, standardInput ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, shown ?? pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, shown ?? pipeFDs[1], 2)
        // dup2 onto the same number would keep close-on-exec, so hand over a copy numbered above 3.
        var handedOver: Int32 = -1
        if let inherited {
            handedOver = fcntl(inherited, F_DUPFD_CLOEXEC, inheritedDescriptorNumber + 1)
            if handedOver < 0 {
                let error = errno
                close(pipeFDs[0])
                close(pipeFDs[1])
                throw SystemError("pass a file to", path, errno: error)
            }
            posix_spawn_file_actions_adddup2(&actions, handedOver, inheritedDescriptorNumber)
        }
        defer { if handedOver >= 0 { close(handedOver) } }
        // Root's helper starts clean whatever the caller left: default signal dispositions, no
        // blocked signals, in `/`. Its own process group holds whatever it starts in the
        // background, so a time limit can stop all of it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var allSignals = sigset_t(), noSignals = sigset_t()
        sigfillset(&allSignals)
        sigemptyset(&noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))
        let startedInRoot = cshifter_spawn_chdir(&actions, "/")
        if startedInRoot < 0 {
            close(pipeFDs[0])
            close(pipeFDs[1])
            throw SystemError("start in / the program", path, errno: -startedInRoot)
        }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = (["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] + environment).map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        close(pipeFDs[1])
        let output = pipeFDs[0]
        defer { close(output) }
        if spawned != 0 { throw SystemError("run", path, errno: spawned) }
        _ = fcntl(output, F_SETFL, fcntl(output, F_GETFL) | O_NONBLOCK)

        // The child's pidfd becomes readable when it exits, so the wait below wakes at once rather
        // than at its next 50 ms tick (-1 where the kernel has no pidfd_open: ticks only).
        let exitDescriptor = cshifter_pidfd_open(pid)
        defer { if exitDescriptor >= 0 { close(exitDescriptor) } }
        var collected: [UInt8] = []
        var outputOpen = true
        let deadline = Deadline(after: timeLimit)
        var status: Int32 = 0
        while true {
            let (waited, waitError) = retryingInterrupts { waitpid(pid, &status, WNOHANG) }
            if waited == pid { break }
            // Without the child's status (SIGCHLD ignored by whoever started us), nothing is
            // known: never count that as success. Its group is not signalled: the child was reaped
            // already, and the group's number may belong to other processes by now.
            if waited < 0 { throw SystemError("wait for", path, errno: waitError) }
            if deadline.hasPassed {
                kill(-pid, SIGKILL)
                _ = retryingInterrupts { waitpid(pid, &status, 0) }
                return Outcome(status: 128 + SIGKILL, output: text(collected), timedOut: true)
            }
            if terminationSignalIsWaiting() {
                kill(-pid, SIGKILL)
                _ = retryingInterrupts { waitpid(pid, &status, 0) }
                throw SystemError("finish", path, errno: EINTR)
            }
            // Sleep until output comes, the program exits or 50 ms pass (the time limit and a
            // pending signal are checked on each tick).
            var pending = [pollfd(fd: outputOpen ? output : -1, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: exitDescriptor, events: Int16(POLLIN), revents: 0)]
            _ = poll(&pending, 2, 50)
            if outputOpen, pending[0].revents != 0 { outputOpen = readAvailable(output, into: &collected) }
        }
        // What the program wrote before it exited is in the pipe; a background process it left
        // may keep writing or hold the pipe open, so collect only for a short while.
        let drainDeadline = Deadline(after: drainLimit)
        while outputOpen, !drainDeadline.hasPassed {
            var pending = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            guard poll(&pending, 1, 10) > 0 else { continue }
            outputOpen = readAvailable(output, into: &collected)
        }
        let exited = status & 0x7f == 0
        let code = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Outcome(status: code, output: text(collected))
    }

    /// Reads what the non-blocking `descriptor` holds now, keeping the first 4 KiB; returns false
    /// at end of file or on an error, when nothing more will come.
    private static func readAvailable(_ descriptor: Int32, into collected: inout [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { buffer in
                retryingInterrupts { Int32(truncatingIfNeeded: read(descriptor, buffer.baseAddress, buffer.count)) }
            }
            if count.result < 0 { return count.errno == EAGAIN }
            if count.result == 0 { return false }
            if collected.count < 4096 { collected += chunk[0..<min(Int(count.result), 4096 - collected.count)] }
        }
    }

    /// Whether a termination signal that the calling thread blocks is pending: the caller has
    /// deferred it until its work is done or undone, and a helper must not delay that.
    /// `sigpending(2)`.
    private static func terminationSignalIsWaiting() -> Bool {
        var waiting = sigset_t()
        sigemptyset(&waiting)
        guard sigpending(&waiting) == 0 else { return false }
        let blocked = ProcessControl.signalMask()
        return ProcessControl.terminationSignals.contains { sigismember(&waiting, $0) == 1 && blocked.contains($0) }
    }

    private static func text(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(4096), as: UTF8.self)
    }
}

/// A point on the monotonic clock. `clock_gettime(2)` with `CLOCK_MONOTONIC`.
struct Deadline {
    private let nanoseconds: Int64

    init(after duration: Duration) {
        let (seconds, attoseconds) = duration.components
        // Ten years is forever here, and keeps the sum far from overflowing.
        let bounded = max(0, min(seconds, 10 * 365 * 86_400))
        nanoseconds = Self.now() + bounded * 1_000_000_000 + max(0, attoseconds) / 1_000_000_000
    }

    var hasPassed: Bool { Self.now() >= nanoseconds }

    private static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
