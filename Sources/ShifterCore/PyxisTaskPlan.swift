/// What a task of a Pyxis-style step (`--container-image`) runs instead of its command: under
/// Pyxis each task starts inside the container, so the task becomes
/// `shifter --workdir[=PATH] -- COMMAND...`, which enters the job's prepared root as the user.
/// The SPANK plugin execs `arguments` with `environment`; this plan is all it is told.
public struct PyxisTaskPlan: Sendable, Equatable {
    /// The argument vector to exec; `arguments[0]` is the path of the `shifter` command.
    public var arguments: [String]
    /// The task's environment.
    public var environment: [String]

    /// Plans the task that runs `command` (Slurm's argv for the task, never empty) with
    /// `environment` (Slurm's environment for it).
    /// - Parameters:
    ///   - shifter: the `shifter` command's path.
    ///   - workdir: `--container-workdir`; nil: `shifter --workdir`, which takes the image's
    ///     `WORKDIR`, else the current directory, else `/`.
    ///   - environmentNames: `--container-env`, names only. They travel in `SHIFTER_KEEP_ENV`,
    ///     which replaces any the task had: `shifter` takes the values from its own environment,
    ///     because its command line can be read by every user of the node.
    ///   - batchScript: for the batch step, the path the script is opened under
    ///     (`/proc/self/fd/N`); it replaces `command[0]`, which lies in slurmd's spool directory,
    ///     outside the container.
    public init(shifter: String, workdir: String?, environmentNames: String?, command: [String],
                environment: [String], batchScript: String? = nil) throws(PyxisTaskPlanError) {
        guard !command.isEmpty else { throw .emptyCommand }
        var command = command
        if let batchScript { command[0] = batchScript }
        arguments = [shifter, workdir.map { "--workdir=" + $0 } ?? "--workdir", "--"] + command
        self.environment = environment
        if let environmentNames {
            self.environment = environment.filter { !$0.hasPrefix(Self.keepVariable + "=") }
                + [Self.keepVariable + "=" + environmentNames]
        }
    }

    /// The variable that names the host variables `shifter` keeps over the image's.
    public static let keepVariable = "SHIFTER_KEEP_ENV"

    /// The `shifter` command: `configured` (the plugstack argument `shifter_path=`) where given,
    /// else `PREFIX/bin/shifter` for a plugin installed as `PREFIX/lib/shifter/NAME`.
    public static func shifterCommand(configured: String?, library: String?) -> String? {
        if let configured, !configured.isEmpty { return configured }
        guard let library, library.hasPrefix("/") else { return nil }
        var prefix = Substring(library)
        for _ in 0..<3 {
            guard let slash = prefix.lastIndex(of: "/"), slash != prefix.startIndex else { return nil }
            prefix = prefix[..<slash]
        }
        return prefix + "/bin/shifter"
    }
}

/// Why a Pyxis-style task cannot be planned.
public enum PyxisTaskPlanError: Error, Sendable, Equatable, CustomStringConvertible {
    case emptyCommand

    public var description: String {
        switch self {
        case .emptyCommand: "the task's command is empty"
        }
    }
}
