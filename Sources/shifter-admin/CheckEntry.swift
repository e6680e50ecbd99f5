import ArgumentParser
import ShifterCore
import ShifterRuntime

#if canImport(Glibc)
import Glibc
#endif

extension ShifterAdmin {
    struct CheckEntry: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check-entry",
            abstract: "Check that this node's kernel lets a job's prolog make its namespaces (entryMode=userns); exit 1 with the reason when not.",
            discussion: """
                Makes for USER the user and mount namespaces that a job's prolog makes with \
                entryMode=userns, over an empty root in udiMount, then removes them. Run it on a \
                node before setting entryMode=userns there; where it fails, the line names the \
                kernel setting that forbids them, as a job's prolog would.
                """
        )

        @OptionGroup var site: SiteOptions

        @Option(help: ArgumentHelp("The user to make them for, by name or uid (not root).", valueName: "USER"))
        var user = "nobody"

        func validate() throws {
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
            guard !user.isEmpty, user.count <= 64, user.allSatisfy(allowed.contains) else {
                throw ValidationError("--user: not a user name or uid (letters, digits, '.', '_' and '-', at most 64)")
            }
        }

        func run() throws {
            try requireRoot("check-entry")
            let config = try site.load()
            guard let uid = Self.uid(of: user) else {
                printError("check-entry: --user \(user): no such user on this node")
                throw ExitCode.failure
            }
            guard uid != 0 else {
                printError("check-entry: --user \(user): a job's namespaces are never made for root; name another user")
                throw ExitCode.failure
            }
            if let problem = JobNamespaces.probe(uid: uid, config: config) {
                printError("check-entry: \(problem)")
                throw ExitCode.failure
            }
            print("entryMode=userns works on this node: root made a job's user and mount namespaces for uid \(uid) and removed them")
        }

        /// The uid of `user`, a name or a number.
        static func uid(of user: String) -> UInt32? {
            if let uid = UInt32(user) { return uid }
            guard let entry = getpwnam(user) else { return nil }
            return entry.pointee.pw_uid
        }
    }
}
