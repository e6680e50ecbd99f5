import ArgumentParser
import Foundation
import ShifterCore
import ShifterImage
import Synchronization

extension Shifterimg {
    struct Pull: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pull an image from a registry and convert it into the image store.")

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
            let service = try global.loadService(command: command)
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
                options.userACL = try global.user.map(LocalImageService.userIDs) ?? []
                options.groupACL = try global.group.map(LocalImageService.groupIDs) ?? []
                importer = ImageImporter(store: service.store, options: options)
                credentials = try parsed.registry.flatMap { try CredentialStore.forCurrentUser().credentials(for: $0) }
            } catch {
                throw fail(command, error)
            }

            let output = ProgressOutput(reference: reference, terminal: standardOutputIsTerminal)
            do {
                let result = try importer.pull(parsed, credentials: credentials) { event in output.record(event) }
                output.finish()
                print("\(result.alreadyPresent ? "present" : "pulled") \(parsed.canonical) \(result.metadata.digest)")
            } catch {
                output.finish()
                throw fail(command, error)
            }
        }
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
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}
