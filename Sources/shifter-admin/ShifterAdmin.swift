import ArgumentParser
import ShifterCore
import ShifterRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The administrator's view of a node's job roots: list them, find what a killed prolog or epilog
/// left behind, and remove it the way the epilog would have.
@main
struct ShifterAdmin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shifter-admin",
        abstract: "List, check and clean up Shifter's job roots on this node (run as root, on the node).",
        discussion: """
            Run it where slurmd runs, in slurmd's mount namespace: that is where the job prolog \
            builds the roots and where the epilog removes them.
            """,
        version: ShifterVersion.string,
        subcommands: [List.self, Check.self, CheckEntry.self, Cleanup.self]
    )
}

/// Options every subcommand takes.
struct SiteOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: ArgumentHelp("The site configuration.", valueName: "FILE"))
    var configPath = SiteConfigLoader.defaultPath

    /// The site configuration, read with the same checks as the prolog's.
    func load() throws -> SiteConfig {
        do {
            return try SiteConfigLoader.load(configPath, warn: { printError("warning: \($0)") })
        } catch {
            printError(error.message)
            throw ExitCode.failure
        }
    }
}

/// Prints `shifter-admin: MESSAGE` on stderr.
func printError(_ message: String) {
    let bytes = Array(("shifter-admin: " + message + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

/// Stops with a clear message unless this runs as root: roots, mounts and records are root's.
func requireRoot(_ command: String) throws {
    guard geteuid() == 0 else {
        printError("\(command): must be run as root (the job roots and their records belong to root)")
        throw ExitCode.failure
    }
}
