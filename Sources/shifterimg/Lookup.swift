import ArgumentParser
import ShifterCore
import ShifterGatewayClient
import ShifterImage

extension Shifterimg {
    struct Lookup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the image id of an image you may use.",
            discussion: "Exits with 2 where there is no such image (or none you may use), with 1 on any other failure.")

        /// The exit status for an image there is none of, which submission tells from a failure.
        static let notFoundStatus = ExitCode(2)

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("The image reference.", valueName: "REF"))
        var reference: String

        func run() throws {
            let command = "lookup \(reference)"
            let mode = try global.loadMode(command: command)
            do {
                switch mode {
                case .local(let service):
                    let parsed = try ImageReference.parse(reference, defaultType: service.config.defaultImageType)
                    guard let image = try service.store.find(parsed) else {
                        throw ImageImportError(.notFound, "not in the image store \(service.store.directory); pull it first")
                    }
                    print(image.digest)
                case .gateway(let settings):
                    print(try lookupAtGateway(settings))
                }
            } catch {
                throw fail(command, error, notFound: Self.notFoundStatus)
            }
        }

        /// The id of a READY image at the gateway; an `id:` reference is checked against the list.
        private func lookupAtGateway(_ settings: ImageServiceMode.GatewaySettings) throws -> String {
            let client = settings.client
            let parsed = try ImageReference.parse(reference, defaultType: settings.defaultImageType)
            if parsed.type == .id, let digest = parsed.digest {
                guard try client.list().contains(where: { $0.id == digest }) else {
                    throw ImageImportError(.notFound, "no image with this id at the gateway, or not one you may use")
                }
                return digest
            }
            let name = try GatewayImageName.parse(reference, defaultType: settings.defaultImageType)
            let record = try client.lookup(type: name.type, tag: name.tag)
            switch record.status {
            case .ready:
                guard let id = record.id else { throw ImageImportError(.notFound, "the gateway's record of \(displayName(record)) has no image id") }
                return id
            case .failure:
                throw ImageImportError(.notFound, "\(displayName(record)): the last pull failed: \(record.statusMessage)")
            case .expired:
                throw ImageImportError(.notFound, "\(displayName(record)): expired; pull it again")
            case .initial, .pending, .pulling, .conversion:
                throw ImageImportError(.notFound, "\(displayName(record)): not ready yet, the pull is \(record.status.rawValue)")
            }
        }
    }
}
