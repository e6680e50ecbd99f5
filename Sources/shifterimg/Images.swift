import ArgumentParser
import ShifterGatewayClient
import ShifterImage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Shifterimg {
    struct Images: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the images you may use: the store's (local mode) or the gateway's.")

        @OptionGroup var global: GlobalOptions

        @Flag(help: "Print a JSON array of the image records instead of the table.")
        var json = false

        func run() throws {
            let mode = try global.loadMode(command: "images")
            do {
                switch mode {
                case .local(let service):
                    let images = try service.store.images()
                    if json { return try printJSON(images) }
                    for image in images {
                        let access = image.isPublic ? "public" : "private"
                        print("\(image.source.isEmpty ? "-" : image.source)  \(image.digest)  \(image.created.isEmpty ? "-" : image.created)  \(access)  \(signer(image.signedBy, image.signedIdentity))")
                    }
                case .gateway(let settings):
                    let records = try settings.client.list()
                    if json { return try printJSON(records) }
                    for record in records {
                        let pulled = record.lastPull.map { ImageTimestamp.string(from: Date(timeIntervalSince1970: $0)) } ?? "-"
                        print("\(displayName(record))  \(record.id ?? "-")  \(pulled)  \(record.isPrivate ? "private" : "public")  \(signer(record.signedBy, record.signedIdentity))")
                    }
                }
            } catch {
                throw fail("images", error)
            }
        }

        /// `signed-by=KEY(IDENTITY)` where a signature was checked, else `unsigned`.
        private func signer(_ key: String?, _ identity: String?) -> String {
            guard let key else { return "unsigned" }
            return "signed-by=\(key)" + (identity.map { "(\($0))" } ?? "")
        }

        private func printJSON(_ value: some Encodable) throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(value), as: UTF8.self))
        }
    }
}
