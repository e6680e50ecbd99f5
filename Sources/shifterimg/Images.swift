import ArgumentParser
import ShifterImage

extension Shifterimg {
    struct Images: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the images in the store.")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let service = try global.loadService(command: "images")
            do {
                for image in try service.store.images() {
                    let access = image.isPublic ? "public" : "private"
                    print("\(image.source.isEmpty ? "-" : image.source)  \(image.digest)  \(image.created.isEmpty ? "-" : image.created)  \(access)")
                }
            } catch {
                throw fail("images", error)
            }
        }
    }
}
