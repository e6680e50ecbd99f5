#if canImport(Glibc)
import Glibc
#endif
import CShifterSys

/// Process-level calls: the root and working directory, exec, dumpability and the signal mask.
public enum ProcessControl {
    /// Changes the root directory and moves into it. `chroot(2)`, then `chdir("/")`.
    public static func changeRoot(_ path: String) throws(SystemError) {
        try check("change root to", path) { chroot(path) }
        try check("change directory to", "/") { chdir("/") }
    }

    /// Changes the working directory. `chdir(2)`.
    public static func changeDirectory(_ path: String) throws(SystemError) {
        try check("change directory to", path) { chdir(path) }
    }

    /// Replaces the process image. Returns only on failure. `execve(2)`.
    public static func execute(_ path: String, arguments: [String], environment: [String]) -> SystemError {
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        execve(path, argv, envp)
        let error = errno
        argv.forEach { free($0) }
        envp.forEach { free($0) }
        return SystemError("execute", path, errno: error)
    }

    /// True when `path` is a regular file with an execute bit, as root needs to run it.
    public static func isExecutableByRoot(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && (info.st_mode & 0o111) != 0
    }

    /// True when the calling user may execute `path`, checked with the real ids. `access(2)`.
    public static func isExecutable(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }

    /// Makes the process not dumpable: a setuid program working as root is one neither a core
    /// file nor the user's ptrace may look into, even where `fs.suid_dumpable=1`. `prctl(2)`.
    public static func setNotDumpable() throws(SystemError) {
        let result = cshifter_set_not_dumpable()
        if result < 0 { throw SystemError("set not dumpable", "shifter", errno: -result) }
    }

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

extension ProcessControl {
    /// Undoes what the caller of a setuid program may have set to mislead it: a `SIGCHLD` that is
    /// ignored would hide the status of the programs it runs, and a loose umask would loosen what
    /// root creates. `signal(2)`, `umask(2)`.
    public static func resetInheritedState() {
        signal(SIGCHLD, SIG_DFL)
        umask(0o022)
    }

    /// The environment this process was executed with, as the kernel keeps it
    /// (`/proc/self/environ`), where the C library started it in secure mode (`AT_SECURE`: a
    /// setuid program) and so removed variables such as `LD_LIBRARY_PATH` and `TMPDIR` from
    /// `environ`; nil in a program started normally, in one from whose environment nothing was
    /// removed (counted before `main`, so that most starts read no file), or where `/proc` cannot
    /// say. `getauxval(3)`, `proc_pid_environ(5)`.
    public static func environmentBeforeSecureMode() -> [String]? {
        guard cshifter_secure_mode() != 0, environmentEntriesRemovedAtStart != 0,
              let bytes = try? FileSystem.readFile("/proc/self/environ", limit: 8 << 20) else { return nil }
        var entries: [String] = []
        var start = 0
        for index in bytes.indices where bytes[index] == 0 {
            if index > start { entries.append(String(decoding: bytes[start..<index], as: UTF8.self)) }
            start = index + 1
        }
        return entries
    }

    /// How many entries the C library's start-up removed from this process's environment (in
    /// secure mode; 0 in a program started normally), counted before `main` from the kernel's
    /// layout of the new program's stack; nil where that layout was not what the C library passed.
    public static var environmentEntriesRemovedAtStart: Int? {
        let removed = cshifter_environment_removed_at_start()
        return removed < 0 ? nil : Int(removed)
    }

    /// The current working directory, or nil where it has none that fits `PATH_MAX` (removed, or
    /// out of reach). `getcwd(3)`.
    public static func currentDirectory() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        guard getcwd(&buffer, buffer.count) != nil else { return nil }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Writes `text` to standard error in one `write(2)`, so that lines of processes sharing the
    /// terminal do not interleave. A failure is ignored: there is nowhere else to say it.
    public static func writeToStandardError(_ text: String) {
        var text = text
        text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
    }
}
