import ArgumentParser
import Foundation
import ShifterImage

#if canImport(Glibc)
import Glibc
#endif

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: ArgumentHelp("The site configuration.", valueName: "FILE"))
    var configPath = "/etc/shifter/udiRoot.conf"

    @Flag(name: .shortAndLong, help: "Print more detail, such as configuration warnings.")
    var verbose = false

    @Option(help: ArgumentHelp("Make a pulled image private to these users (names or uids, comma-separated).", valueName: "LIST"))
    var user: String?

    @Option(help: ArgumentHelp("Make a pulled image private to these groups (names or gids, comma-separated).", valueName: "LIST"))
    var group: String?

    /// Loads the site configuration; warnings go to stderr with `--verbose`.
    func loadService(command: String) throws -> LocalImageService {
        do {
            let (service, warnings) = try LocalImageService.load(configPath: configPath)
            if verbose { for warning in warnings { printError("warning: \(warning)") } }
            return service
        } catch {
            throw fail(command, error)
        }
    }
}

/// Prints `shifterimg: MESSAGE` on stderr.
func printError(_ message: String) {
    FileHandle.standardError.write(Data(("shifterimg: " + message + "\n").utf8))
}

/// Prints the one-line error of `command` and returns the exit status to throw.
func fail(_ command: String, _ error: any Error) -> ExitCode {
    printError("\(command): \(error)")
    return ExitCode.failure
}

/// Whether standard output is a terminal; the corresponding C function is `isatty(3)`.
var standardOutputIsTerminal: Bool { isatty(STDOUT_FILENO) == 1 }
