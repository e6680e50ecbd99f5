import ArgumentParser
import ShifterCore
import ShifterGatewayClient
import ShifterImage

#if canImport(Glibc)
import Glibc
#endif

extension Shifterimg {
    struct Expire: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Expire one image: administrators, or the owner of a private image (local mode: root).")

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("The image reference.", valueName: "REF"))
        var reference: String

        func run() throws {
            let command = "expire \(reference)"
            let mode = try global.loadMode(command: command)
            do {
                switch mode {
                case .local(let service):
                    let parsed = try ImageReference.parse(reference, defaultType: service.config.defaultImageType)
                    let image = try service.expire(parsed, callerUID: getuid())
                    print("expired \(image.source.isEmpty ? "-" : image.source) \(image.digest)")
                case .gateway(let settings):
                    let name = try GatewayImageName.parse(reference, defaultType: settings.defaultImageType)
                    printExpiry(try settings.client.expire(type: name.type, tag: name.tag))
                }
            } catch {
                throw fail(command, error)
            }
        }
    }

    struct Autoexpire: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Expire the gateway's images that were not used for the configured time (administrators).")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            try runExpiry(
                "autoexpire", global: global,
                withoutGateway: "with imageGateway=local no record says when an image was last used; remove images with shifterimg expire"
            ) { (client) throws(GatewayClientError) in try client.autoexpire() }
        }
    }

    struct Reverify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the gateway's images against its signature policy now, expiring those it refuses (administrators).")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            try runExpiry("reverify", global: global, withoutGateway: "the signature policy is the gateway's") {
                (client) throws(GatewayClientError) in try client.reverify()
            }
        }
    }
}

/// Runs an administrator's expiry `command` through the gateway and prints its result; in local
/// mode it fails, saying why (`withoutGateway`).
func runExpiry(_ command: String, global: GlobalOptions, withoutGateway: String,
               _ call: (GatewayClient) throws(GatewayClientError) -> GatewayExpiryResult) throws {
    let mode = try global.loadMode(command: command)
    do {
        switch mode {
        case .local:
            throw ImageImportError(.store, "needs an image gateway: " + withoutGateway)
        case .gateway(let settings):
            printExpiry(try call(settings.client))
        }
    } catch {
        throw fail(command, error)
    }
}

/// Prints an expiry result: `expired TYPE:TAG ID` per image removed, `kept TAG: REASON` per image
/// that was due but kept.
func printExpiry(_ result: GatewayExpiryResult) {
    for record in result.expired { print("expired \(displayName(record)) \(record.id ?? "-")") }
    for reason in result.kept { print("kept \(reason)") }
}
