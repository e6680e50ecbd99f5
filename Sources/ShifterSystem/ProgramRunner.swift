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
    public static func run(_ path: String, _ arguments: [String],
                           environment: [String] = []) throws(SystemError) -> Outcome {
        var pipeFDs: [Int32] = [-1, -1]
        try checkShim("create pipe for", path, cshifter_pipe_cloexec(&pipeFDs))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = (["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] + environment).map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, envp)
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
        _ = retryingInterrupts { waitpid(pid, &status, 0) }
        let exited = status & 0x7f == 0
        let code = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Outcome(status: code, output: String(decoding: collected.prefix(4096), as: UTF8.self))
    }
}
