import ArgumentParser
import ShifterCore
import ShifterGatewayClient
import ShifterImage
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Shifterimg {
    struct Pull: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pull an image from a registry and convert it into the image store, here or at the gateway.",
            discussion: """
                With imageGateway=local the pull runs in this process; the options from --ca-bundle to \
                --parallel-downloads apply to it. Otherwise the gateway pulls, with its own settings, and \
                this command follows the pull until it ends. Credentials saved by `shifterimg login` for \
                the registry REF names go to the gateway inside the munge credential, and make the image \
                private unless --user or --group says who may use it. Exits with 2 where the image \
                does not exist, with 1 on any other failure.
                """)

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("A PEM file of CA certificates for the registry (default: $SHIFTER_CA_BUNDLE, else the system's).", valueName: "FILE"))
        var caBundle: String?

        @Option(help: ArgumentHelp("The platform to pick from a multi-platform image.", valueName: "OS/ARCH[/VARIANT]"))
        var platform = "linux/amd64"

        @Option(help: ArgumentHelp("The image compression: zstd, gzip, lz4 or xz, optionally with :LEVEL.", valueName: "ALGORITHM[:LEVEL]"))
        var compression = "zstd:3"

        @Option(help: ArgumentHelp("Threads that compress the image (default: one per CPU).", valueName: "N"))
        var threads: Int?

        @Option(help: ArgumentHelp("Layers to download at the same time.", valueName: "N"))
        var parallelDownloads = 4

        @Argument(help: ArgumentHelp("The image, such as ubuntu:22.04 or docker:registry.example.org/team/tool:1.2.", valueName: "REF"))
        var reference: String

        func run() throws {
            let command = "pull \(reference)"
            let service: LocalImageService
            switch try global.loadMode(command: command) {
            case .local(let local):
                service = local
            case .gateway(let settings):
                return try pullAtGateway(settings, command: command)
            }
            let importer: ImageImporter
            let parsed: ImageReference
            let credentials: RegistryCredentials?
            do {
                parsed = try ImageReference.parse(reference, defaultType: service.config.defaultImageType)
                var options = ImportOptions(
                    platform: try ImagePlatform.parse(platform),
                    transport: TransportOptions(caBundle: caBundle ?? ProcessInfo.processInfo.environment["SHIFTER_CA_BUNDLE"]),
                    squashfs: SquashfsOptions(
                        compression: try SquashfsCompression.parse(compression),
                        workerCount: threads ?? SquashfsOptions.onlineProcessorCount),
                    parallelDownloads: parallelDownloads)
                (options.userACL, options.groupACL) = try global.accessLists()
                importer = ImageImporter(store: service.store, options: options)
                credentials = try parsed.registry.flatMap { try CredentialStore.forCurrentUser().credentials(for: $0) }
            } catch {
                throw fail(command, error, notFound: Lookup.notFoundStatus)
            }

            let output = ProgressOutput(reference: reference, terminal: standardOutputIsTerminal)
            do {
                let result = try importer.pull(parsed, credentials: credentials) { event in output.record(event) }
                output.finish()
                print("\(result.alreadyPresent ? "present" : "pulled") \(parsed.canonical) \(result.metadata.digest)")
            } catch {
                output.finish()
                throw fail(command, error, notFound: Lookup.notFoundStatus)
            }
        }

        /// Asks the gateway to pull, then follows the pull until the image is READY or the pull failed.
        private func pullAtGateway(_ settings: ImageServiceMode.GatewaySettings, command: String) throws {
            let client = settings.client
            let output = GatewayProgressOutput(terminal: standardOutputIsTerminal)
            do {
                let name = try GatewayImageName.parse(reference, defaultType: settings.defaultImageType)
                guard name.type == ImageType.docker.rawValue else {
                    throw ValidationError("only docker images are pulled; a custom image is imported with shifterimg import")
                }
                let (users, groups) = try global.accessLists()
                let credentials = try name.registry.flatMap { try CredentialStore.forCurrentUser().credentials(for: $0) }
                let requested = try client.pull(
                    type: name.type, tag: name.tag, allowedUIDs: users, allowedGIDs: groups,
                    credentials: credentials.map { GatewayRegistryCredentials(username: $0.username, password: $0.password) })
                let ready: GatewayImageRecord
                if requested.status == .ready {
                    ready = requested
                } else {
                    ready = try client.waitForPull(requested) { record in output.record(record) }
                    output.record(ready)
                }
                output.finish()
                print("\(requested.status == .ready ? "present" : "pulled") \(displayName(ready)) \(ready.id ?? "-")")
            } catch {
                output.finish()
                throw fail(command, error, notFound: Lookup.notFoundStatus)
            }
        }
    }
}

/// Writes the progress of a pull at the gateway: one line per status on a terminal, the current
/// one redrawn as bytes arrive; plain `progress ...` lines in a pipe. Used from one thread.
final class GatewayProgressOutput {
    private let terminal: Bool
    private var progress: GatewayPullProgress?
    private var lineOpen = false

    init(terminal: Bool) {
        self.terminal = terminal
    }

    /// Shows a polled record if anything changed.
    func record(_ record: GatewayImageRecord) {
        var progress = self.progress ?? GatewayPullProgress(name: displayName(record))
        let update = progress.record(
            GatewayPullProgress.Snapshot(
                status: record.status.rawValue, received: record.bytesReceived, total: record.bytesTotal, message: record.statusMessage))
        self.progress = progress
        guard update.changed else { return }
        if !terminal {
            for line in update.plainLines { write(line + "\n") }
            return
        }
        var text = lineOpen && update.statusChanged ? "\n" : ""
        text += "\r\u{1B}[2K" + progress.terminalLine(width: terminalWidth)
        lineOpen = true
        write(text)
    }

    /// Ends the open terminal line.
    func finish() {
        if lineOpen { write("\n") }
        lineOpen = false
    }

    private func write(_ text: String) {
        StandardStream.output.write(text)
    }
}

/// Writes pull progress: a table redrawn in place on a terminal, plain lines in a pipe. Events
/// come from the download threads, so everything goes through one lock.
final class ProgressOutput: Sendable {
    private struct State {
        var progress: PullProgress
        var drawnLines = 0
        var lastDraw = 0.0
    }

    private let terminal: Bool
    private let state: Mutex<State>

    init(reference: String, terminal: Bool) {
        self.terminal = terminal
        self.state = Mutex(State(progress: PullProgress(reference: reference)))
    }

    func record(_ event: ImportEvent) {
        state.withLock { state in
            let lines = state.progress.record(event)
            if terminal {
                let now = Date().timeIntervalSince1970
                if case .downloading = event, now - state.lastDraw < 0.1 { return }
                state.lastDraw = now
                redraw(&state)
            } else {
                for line in lines { write(line + "\n") }
            }
        }
    }

    func finish() {
        state.withLock { state in
            if terminal { redraw(&state) }
        }
    }

    private func redraw(_ state: inout State) {
        let lines = state.progress.terminalLines()
        var text = state.drawnLines > 0 ? "\u{1B}[\(state.drawnLines)A" : ""
        for line in lines { text += "\r\u{1B}[2K" + line + "\n" }
        state.drawnLines = lines.count
        write(text)
    }

    private func write(_ text: String) {
        StandardStream.output.write(text)
    }
}
