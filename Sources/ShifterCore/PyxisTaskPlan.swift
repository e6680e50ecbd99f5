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

    /// The Pyxis options a task runs with, where the site takes them (`pyxis_compat=1`): those its
    /// step was given, with the task's own `PYXIS_CONTAINER_IMAGE`, `_WORKDIR` and `_ENV` standing
    /// for the missing ones, as Pyxis reads them in each task (submission judged the others). Nil
    /// for a task of no Pyxis-style step: no image either way. An image that only the task's
    /// variable names was never resolved (no `SHIFTER_IMAGE`: srun or sbatch did not have it, as
    /// with `--export`), and is refused with what to do.
    public static func taskOptions(given: PyxisOptions, environment: [String: String]) throws(PyxisTaskPlanError) -> PyxisOptions? {
        let read = ["IMAGE", "WORKDIR", "ENV"].map { PyxisOptions.variablePrefix + $0 }
        let options: PyxisOptions
        do {
            options = try given.withEnvironmentDefaults(environment.filter { read.contains($0.key) })
        } catch {
            throw .variable(error.description)
        }
        guard options.image != nil else { return nil }
        if given.image == nil, (environment["SHIFTER_IMAGE"] ?? "").isEmpty { throw .imageNotResolved }
        return options
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
    /// A `PYXIS_CONTAINER_*` variable of the task that cannot be taken, and why.
    case variable(String)
    /// `PYXIS_CONTAINER_IMAGE` reached the task without going through submission.
    case imageNotResolved

    public var description: String {
        switch self {
        case .emptyCommand: "the task's command is empty"
        case .variable(let reason): reason
        case .imageNotResolved:
            "PYXIS_CONTAINER_IMAGE reached the task but not srun or sbatch (given with --export?), so its image was never resolved; set it in the environment srun or sbatch runs in, or use --container-image"
        }
    }
}
