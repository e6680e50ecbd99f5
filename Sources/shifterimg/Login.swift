import ArgumentParser
import ShifterCore
import ShifterImage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

extension Shifterimg {
    struct Login: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check and save credentials for a registry, for this user only.")

        @OptionGroup var global: GlobalOptions

        @Option(name: .shortAndLong, help: "The user name (asked for when not given).")
        var username: String?

        @Flag(help: "Read the password from standard input instead of asking for it.")
        var passwordStdin = false

        @Option(help: ArgumentHelp("A PEM file of CA certificates for the registry (default: $SHIFTER_CA_BUNDLE).", valueName: "FILE"))
        var caBundle: String?

        @Argument(help: ArgumentHelp("The registry host, such as registry.example.org:5000.", valueName: "REGISTRY"))
        var registry = ImageReference.dockerHubRegistry

        func run() throws {
            let command = "login \(registry)"
            do {
                let host = registry.lowercased() == "docker.io" ? ImageReference.dockerHubRegistry : registry.lowercased()
                guard let name = username ?? prompt("Username: ", echo: true), !name.isEmpty else {
                    throw ImageImportError(.unauthorized, "no user name given")
                }
                guard let password = passwordStdin ? readLine(strippingNewline: true) : prompt("Password: ", echo: false),
                    !password.isEmpty
                else {
                    throw ImageImportError(.unauthorized, "no password given")
                }
                let credentials = RegistryCredentials(username: name, password: password)
                let transport = TransportOptions(caBundle: caBundle ?? ProcessInfo.processInfo.environment["SHIFTER_CA_BUNDLE"])
                try RegistryLogin.verify(credentials, registry: host, transport: transport)
                let store = CredentialStore.forCurrentUser()
                try store.save(credentials, for: host)
                print("saved credentials for \(host) in \(store.path)")
            } catch {
                throw fail(command, error)
            }
        }

        /// Asks on the terminal; without echo for passwords. The corresponding C calls are
        /// `tcgetattr(3)` and `tcsetattr(3)`.
        private func prompt(_ text: String, echo: Bool) -> String? {
            StandardStream.error.write(text)
            var saved = termios()
            let isTerminal = tcgetattr(STDIN_FILENO, &saved) == 0
            if !echo && isTerminal {
                var quiet = saved
                quiet.c_lflag &= ~tcflag_t(ECHO)
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
            }
            let line = readLine(strippingNewline: true)
            if !echo && isTerminal {
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
                StandardStream.error.write("\n")
            }
            return line
        }
    }
}
