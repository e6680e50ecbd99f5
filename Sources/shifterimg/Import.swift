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

extension Shifterimg {
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import a squashfs file as a custom image (administrators and import users; local mode: root).",
            discussion: """
                The gateway reads FILE itself, so FILE must be on a filesystem the gateway host sees at \\
                the same path. --user and --group make the image private.
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("The squashfs file.", valueName: "FILE"))
        var file: String

        @Argument(help: ArgumentHelp("The image name, such as mytool:1.2 or custom:mytool:1.2.", valueName: "NAME"))
        var name: String

        func run() throws {
            let command = "import \(file) \(name)"
            let mode = try global.loadMode(command: command)
            do {
                let prefix = ImageType.custom.rawValue + ":"
                let reference = try ImageReference.parse(name.hasPrefix(prefix) ? name : prefix + name)
                let (users, groups) = try global.accessLists()
                let path = absolutePath(file)
                switch mode {
                case .local(let service):
                    guard getuid() == 0 else {
                        throw ImageImportError(.store, "imageGateway=local: only root may import into the image store \(service.store.directory)")
                    }
                    let image = try SquashfsFileImporter(store: service.store).importFile(path, as: reference, userACL: users, groupACL: groups)
                    print("imported \(reference.canonical) \(image.digest)")
                case .gateway(let settings):
                    let record = try settings.client.importImage(reference, filepath: path, allowedUIDs: users, allowedGIDs: groups)
                    print("imported \(displayName(record)) \(record.id ?? "-")")
                }
            } catch {
                throw fail(command, error)
            }
        }

        /// `path` made absolute against the working directory, since the gateway has another one.
        private func absolutePath(_ path: String) -> String {
            if path.hasPrefix("/") { return path }
            let directory = FileManager.default.currentDirectoryPath
            return (directory.hasSuffix("/") ? directory : directory + "/") + path
        }
    }
}
