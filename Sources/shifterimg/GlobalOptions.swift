import ArgumentParser
import ShifterCore
import ShifterGatewayClient
import ShifterImage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: ArgumentHelp("The site configuration.", valueName: "FILE"))
    var configPath = "/etc/shifter/udiRoot.conf"

    @Flag(name: .shortAndLong, help: "Print more detail, such as configuration warnings.")
    var verbose = false

    @Option(help: ArgumentHelp("Make a pulled or imported image private to these users (names or uids, comma-separated).", valueName: "LIST"))
    var user: String?

    @Option(help: ArgumentHelp("Make a pulled or imported image private to these groups (names or gids, comma-separated).", valueName: "LIST"))
    var group: String?

    /// Reads the site configuration and picks local or gateway mode; warnings go to stderr with
    /// `--verbose`.
    func loadMode(command: String) throws -> ImageServiceMode {
        do {
            let (mode, warnings) = try ImageServiceMode.load(configPath: configPath)
            if verbose { for warning in warnings { printError("warning: \(warning)") } }
            return mode
        } catch {
            throw fail(command, error)
        }
    }

    /// The uids and gids of `--user` and `--group`.
    func accessLists() throws(ImageImportError) -> (users: [UInt32], groups: [UInt32]) {
        (try user.map(LocalImageService.userIDs) ?? [], try group.map(LocalImageService.groupIDs) ?? [])
    }
}

extension ImageServiceMode.GatewaySettings {
    /// A client for these settings; `https` gateways are checked against the system's CA certificates.
    var client: GatewayClient {
        GatewayClient(urls: urls, system: system, timeout: timeout)
    }
}

/// Prints `shifterimg: MESSAGE` on stderr.
func printError(_ message: String) {
    StandardStream.error.write("shifterimg: " + message + "\n")
}

/// Prints the one-line error of `command` and returns the exit status to throw: `notFound` for an
/// image there is none of (a gateway's 404, a store without it), else 1. Gateway errors are
/// explained: which gateway, what it answered, and what the status means.
func fail(_ command: String, _ error: any Error, notFound: ExitCode = .failure) -> ExitCode {
    if let gatewayError = error as? GatewayClientError {
        printError("\(command): \(gatewayError.explanation)")
        if gatewayError.code == .rejected, gatewayError.httpStatus == 404 { return notFound }
    } else {
        printError("\(command): \(error)")
        if let importError = error as? ImageImportError, importError.code == .notFound { return notFound }
    }
    return ExitCode.failure
}

/// `TYPE:TAG` of a gateway record, as `images` and `pull` print it.
func displayName(_ record: GatewayImageRecord) -> String {
    record.itype + ":" + record.tag
}

/// Whether standard output is a terminal; the corresponding C function is `isatty(3)`.
var standardOutputIsTerminal: Bool { isatty(STDOUT_FILENO) == 1 }

/// The terminal's width in columns, or 100 when it cannot be told. The corresponding C call is
/// `ioctl(2)` with `TIOCGWINSZ`.
var terminalWidth: Int {
    var size = winsize()
    guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 100 }
    return Int(size.ws_col)
}
