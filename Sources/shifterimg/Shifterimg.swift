import ArgumentParser
import ShifterImage

@main
struct Shifterimg: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shifterimg",
        abstract: "Pull, list and manage Shifter images.",
        discussion: """
            With imageGateway=local in the site configuration, commands work on imagePath in this \
            process (only root may write there). Otherwise they go to the image gateway at the URLs of \
            imageGateway, tried in turn, for the cluster named by system.
            """,
        version: ImageStoreVersion.string,
        subcommands: [Pull.self, Images.self, Lookup.self, Login.self, Expire.self, Autoexpire.self, Reverify.self, Remove.self, Import.self]
    )

    /// Lets `--config` and `-v` come before the subcommand, as in `shifterimg -v pull REF`.
    @OptionGroup var global: GlobalOptions
}
