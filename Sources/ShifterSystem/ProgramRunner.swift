#if canImport(Glibc)
import Glibc
#endif
import CShifterSys

/// Runs a helper program (such as `mkfs.xfs`) to completion, synchronously, with no shell.
public enum ProgramRunner {
    /// The outcome: the exit status (or 128 + signal) and the first lines of what it wrote.
    public struct Outcome: Sendable {
        public var status: Int32
        public var output: String
    }

    /// Runs `path` with `arguments` (argv[1...]) and only `environment` plus a standard `PATH`;
    /// stdout and stderr are collected (up to 4 KiB). Spawned with `posix_spawn(3)`, so it is safe
    /// inside a daemon.
    /// The descriptor number at which `inheriting` appears in the child.
    public static let inheritedDescriptorNumber: Int32 = 3

    public static func run(_ path: String, _ arguments: [String], environment: [String] = [],
                           inheriting inherited: Int32? = nil) throws(SystemError) -> Outcome {
        var pipeFDs: [Int32] = [-1, -1]
        try checkShim("create pipe for", path, cshifter_pipe_cloexec(&pipeFDs))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        // dup2 onto the same number would keep close-on-exec, so hand over a copy numbered above 3.
        var handedOver: Int32 = -1
        if let inherited {
            handedOver = fcntl(inherited, F_DUPFD_CLOEXEC, inheritedDescriptorNumber + 1)
            if handedOver < 0 { throw SystemError("pass a file to", path, errno: errno) }
            posix_spawn_file_actions_adddup2(&actions, handedOver, inheritedDescriptorNumber)
        }
        defer { if handedOver >= 0 { close(handedOver) } }
        // Root's helper starts clean whatever the caller left: default signal dispositions, no
        // blocked signals, in `/`.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var allSignals = sigset_t(), noSignals = sigset_t()
        sigfillset(&allSignals)
        sigemptyset(&noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        cshifter_spawn_chdir(&actions, "/")
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = (["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] + environment).map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        close(pipeFDs[1])
        defer { close(pipeFDs[0]) }
        if spawned != 0 { throw SystemError("run", path, errno: spawned) }
        var collected: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { buffer in
                retryingInterrupts { Int32(truncatingIfNeeded: read(pipeFDs[0], buffer.baseAddress, buffer.count)) }
            }
            if count.result <= 0 { break }
            if collected.count < 4096 { collected += chunk[0..<Int(count.result)] }
        }
        var status: Int32 = 0
        let (waited, waitError) = retryingInterrupts { waitpid(pid, &status, 0) }
        // Without the child's status (SIGCHLD ignored by whoever started us), nothing is known:
        // never count that as success.
        if waited != pid { throw SystemError("wait for", path, errno: waited < 0 ? waitError : ECHILD) }
        let exited = status & 0x7f == 0
        let code = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Outcome(status: code, output: String(decoding: collected.prefix(4096), as: UTF8.self))
    }
}
