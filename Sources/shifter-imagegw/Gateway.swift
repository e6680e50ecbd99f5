import ArgumentParser
import Logging
import ShifterGateway
import ShifterImage

@main
struct Gateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shifter-imagegw",
        abstract: "The Shifter image gateway service: pulls and converts images for a cluster's image store.",
        version: ImageStoreVersion.string
    )

    @Option(help: ArgumentHelp("The gateway configuration (JSON).", valueName: "FILE"))
    var config = "/etc/shifter/imagegw.conf"

    @Option(help: ArgumentHelp("The lowest log level: trace, debug, info, notice, warning, error or critical.", valueName: "LEVEL"))
    var logLevel = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level \(logLevel): not one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "shifter-imagegw")
        do {
            try await GatewayServer.run(configPath: config, logger: logger)
        } catch {
            logger.critical("cannot serve", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }
}
