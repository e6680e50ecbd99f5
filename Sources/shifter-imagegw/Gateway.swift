import ArgumentParser
import ShifterImage

@main
struct Gateway: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shifter-imagegw",
        abstract: "The Shifter image gateway service.",
        version: ImageStoreVersion.string
    )
}
