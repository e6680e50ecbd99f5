import ArgumentParser
import ShifterCore
import ShifterImage

#if canImport(Glibc)
import Glibc
#endif

extension Shifterimg {
    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove an image from the store (root, or the owner of a private image).")

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("The image reference or image id.", valueName: "REF"))
        var reference: String

        func run() throws {
            let command = "rm \(reference)"
            let service = try global.loadService(command: command)
            do {
                let parsed = try ImageReference.parse(reference, defaultType: service.config.defaultImageType)
                guard let image = try service.store.find(parsed), let id = ImageID(image.digest) else {
                    throw ImageImportError(.notFound, "not in the image store \(service.store.directory)")
                }
                let uid = getuid()
                guard uid == 0 || (!image.isPublic && image.userACL.contains(uid)) else {
                    throw ImageImportError(.store, "only root, or a listed user of a private image, may remove \(image.digest)")
                }
                try service.store.remove(id)
                print("removed \(image.digest)")
            } catch {
                throw fail(command, error)
            }
        }
    }
}
