/// What `--entrypoint` asked for.
public enum EntrypointRequest: Hashable, Sendable {
    /// `--entrypoint`: the image ENTRYPOINT.
    case image
    /// `--entrypoint=CMD`: this program instead.
    case command(String)
}

/// What `--workdir` asked for.
public enum WorkdirRequest: Hashable, Sendable {
    /// `--workdir` or `-w` without a value: the image WORKDIR.
    case image
    /// `--workdir=PATH`.
    case path(String)
}

/// The rules that pick the command, the program file and the working directory (SPEC section 3).
///
/// They are pure: the caller supplies the filesystem checks as closures evaluated inside the
/// container's view.
public enum ContainerCommand {
    /// The shell run when nothing else is asked for.
    public static let defaultShell = "/bin/sh"

    /// The argument vector to run.
    ///
    /// - No `--entrypoint`: the arguments, or `/bin/sh` when there are none. The image CMD is not
    ///   used, as in the old Shifter, so `shifter --image=x` always gives a shell.
    /// - `--entrypoint`: the image ENTRYPOINT followed by the arguments, or by the image CMD when
    ///   there are no arguments.
    /// - `--entrypoint=CMD`: CMD followed by the arguments; the image CMD is dropped, as Docker does
    ///   when the entrypoint is overridden.
    public static func arguments(
        _ arguments: [String], entrypoint: EntrypointRequest?, imageEntrypoint: [String]?, imageCmd: [String]?
    ) throws(ContainerCommandError) -> [String] {
        let command: [String]
        switch entrypoint {
        case nil:
            command = arguments.isEmpty ? [defaultShell] : arguments
        case .image:
            command = (imageEntrypoint ?? []) + (arguments.isEmpty ? (imageCmd ?? []) : arguments)
        case .command(let program):
            command = [program] + arguments
        }
        guard let first = command.first, !first.isEmpty else {
            throw ContainerCommandError(reason: "--entrypoint was given but the image has no ENTRYPOINT or CMD and no command was named")
        }
        return command
    }

    /// Finds `command` on `path` the way `execvp` does, or returns `nil`.
    ///
    /// A command containing `/` is returned unchanged. Empty and relative `PATH` entries are skipped:
    /// they would resolve against whatever directory the command starts in, a classic way to run the
    /// wrong program.
    public static func executablePath(
        for command: String, path: String?, isExecutable: (String) -> Bool
    ) -> String? {
        if command.isEmpty { return nil }
        if command.contains("/") { return command }
        for directory in (path ?? ContainerEnvironment.defaultPath).split(separator: ":") where directory.hasPrefix("/") {
            let candidate = String(directory) + (directory.hasSuffix("/") ? "" : "/") + command
            if isExecutable(candidate) { return candidate }
        }
        return nil
    }

    /// The working directory: `--workdir=PATH`; with `--workdir` alone the image WORKDIR; else the
    /// caller's current directory if it exists in the container; else `/`.
    public static func workingDirectory(
        requested: WorkdirRequest?, imageWorkdir: String?, currentDirectory: String?, existsInContainer: (String) -> Bool
    ) -> String {
        switch requested {
        case .path(let path):
            return path
        case .image:
            if let imageWorkdir, imageWorkdir.hasPrefix("/") { return imageWorkdir }
        case nil:
            break
        }
        if let currentDirectory, currentDirectory.hasPrefix("/"), existsInContainer(currentDirectory) {
            return currentDirectory
        }
        return "/"
    }
}

/// A command that cannot be chosen.
public struct ContainerCommandError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What is wrong.
    public var reason: String

    /// Creates an error with the given reason.
    public init(reason: String) { self.reason = reason }

    /// One line.
    public var description: String { "command: \(reason)" }
}
