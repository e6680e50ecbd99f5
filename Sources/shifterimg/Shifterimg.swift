import ArgumentParser
import ShifterImage

@main
struct Shifterimg: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shifterimg",
        abstract: "Pull, list and manage Shifter images.",
        version: ImageStoreVersion.string,
        subcommands: [Pull.self, Images.self, Lookup.self, Login.self, Remove.self]
    )

    /// Lets `--config` and `-v` come before the subcommand, as in `shifterimg -v pull REF`.
    @OptionGroup var global: GlobalOptions
}
