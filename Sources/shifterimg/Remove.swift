import ArgumentParser
import ShifterCore
import ShifterGatewayClient
import ShifterImage

#if canImport(Glibc)
import Glibc
#endif

extension Shifterimg {
    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove an image (root or an administrator, or the owner of a private image).")

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("The image reference, or (local mode) the image id.", valueName: "REF"))
        var reference: String

        func run() throws {
            let command = "rm \(reference)"
            let mode = try global.loadMode(command: command)
            do {
                switch mode {
                case .local(let service):
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
                case .gateway(let settings):
                    // The gateway's expire removes the caller's own private image first, which is
                    // what an owner means by rm; administrators may remove any image.
                    let name = try GatewayImageName.parse(reference, defaultType: settings.defaultImageType)
                    let result = try settings.client.expire(type: name.type, tag: name.tag)
                    guard !result.expired.isEmpty else {
                        throw ImageImportError(.notFound, result.kept.first ?? "the gateway removed nothing")
                    }
                    for record in result.expired { print("removed \(record.id ?? displayName(record))") }
                }
            } catch {
                throw fail(command, error)
            }
        }
    }
}
