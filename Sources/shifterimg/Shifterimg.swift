import ArgumentParser
import ShifterImage

@main
struct Shifterimg: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shifterimg",
        abstract: "Pull, list and manage Shifter images.",
        version: ImageStoreVersion.string
    )
}
