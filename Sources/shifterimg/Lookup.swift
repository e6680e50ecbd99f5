import ArgumentParser
import ShifterCore
import ShifterImage

extension Shifterimg {
    struct Lookup: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the image id of an image in the store.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("The image reference.", valueName: "REF"))
        var reference: String

        func run() throws {
            let command = "lookup \(reference)"
            let service = try global.loadService(command: command)
            do {
                let parsed = try ImageReference.parse(reference, defaultType: service.config.defaultImageType)
                guard let image = try service.store.find(parsed) else {
                    throw ImageImportError(.notFound, "not in the image store \(service.store.directory); pull it first")
                }
                print(image.digest)
            } catch {
                throw fail(command, error)
            }
        }
    }
}
