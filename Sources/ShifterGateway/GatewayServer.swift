import Dispatch
import Hummingbird
import Logging
import ShifterImage
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// The `shifter-imagegw` process: the HTTP server (Hummingbird) in front of `GatewayService` and
/// the autoexpire timer, run in a service group that shuts down gracefully on SIGTERM and SIGINT.
public enum GatewayServer {
    /// Loads the configuration, opens the database, resumes interrupted pulls, and serves until
    /// SIGTERM. Returns when the server has stopped.
    public static func run(configPath: String, logger: Logger) async throws {
        let config = try GatewayConfig.load(path: configPath)
        try await run(config: config, authenticator: MungeAuthenticator(), logger: logger, configPath: configPath)
    }

    /// Serves `config` with `authenticator` until SIGTERM, or until the task is cancelled.
    static func run(
        config: GatewayConfig, authenticator: any RequestAuthenticator, puller: any ImagePulling = RegistryImagePuller(), logger: Logger,
        configPath: String? = nil
    ) async throws {
        for system in config.systems.values.sorted(by: { $0.name < $1.name }) {
            var status = stat()
            guard stat(system.imagePath, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
                throw GatewayConfigError("system \(quoted(system.name)): imagePath \(quoted(system.imagePath)) is not a directory")
            }
        }
        let service = try GatewayService(config: config, puller: puller, logger: logger)
        service.tidyStores()
        try service.resumeInterruptedPulls()
        let handler = GatewayRequestHandler(service: service, authenticator: authenticator, logger: logger)
        let maxBody = config.maxBodyBytes
        let responder = CallbackResponder<BasicRequestContext> { request, _ in
            var bodyTooLarge = false
            var body: [UInt8] = []
            do {
                var buffer = try await request.body.collect(upTo: maxBody)
                body = buffer.readBytes(length: buffer.readableBytes) ?? []
            } catch {
                bodyTooLarge = true
            }
            let method = request.method.rawValue, path = request.uri.path
            // The old Shifter gateway's header for the munge credential.
            let authentication = request.headers.first { $0.name.canonicalName == "authentication" }?.value
            let collected = body, tooLarge = bodyTooLarge
            // A request blocks while it works (munge, the database): on a thread of Dispatch's
            // pool, not one of the few of Swift's cooperative pool, which every other request and
            // the server itself run on. An import, which may convert an image for minutes, gets a
            // thread of its own, so lookups never wait behind one.
            let answer = await withCheckedContinuation { continuation in
                let work: @Sendable () -> Void = {
                    continuation.resume(
                        returning: handler.respond(
                            method: method, path: path, authentication: authentication, body: collected, bodyTooLarge: tooLarge))
                }
                if path.hasPrefix("/api/doimport/") {
                    do throws(ImageImportError) {
                        try DetachedThread.start("import", work)
                    } catch {
                        DispatchQueue.global().async(execute: work)
                    }
                } else {
                    DispatchQueue.global().async(execute: work)
                }
            }
            return Response(
                status: HTTPResponse.Status(code: answer.status), headers: [.contentType: answer.contentType], body: ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
        }
        var services: [any Service] = [PullShutdown(service: service)]
        if let configPath { services.append(PolicyReload(service: service, configPath: configPath, logger: logger)) }
        if config.autoexpireInterval > 0 {
            let timer = AutoexpireTimer(service: service, interval: .seconds(config.autoexpireInterval), logger: logger)
            services.append(timer)
            logger.notice("autoexpire timer on", metadata: ["interval": "\(timer.interval)"])
        } else {
            // A service that returns would end the group, so an idle timer is left out instead.
            logger.notice("autoexpire timer off", metadata: ["autoexpireIntervalSeconds": "0"])
        }
        let application = Application(
            responder: responder,
            configuration: ApplicationConfiguration(address: .hostname(config.listenHost, port: config.listenPort), serverName: "shifter-imagegw"),
            services: services,
            onServerRunning: { channel in
                logger.notice(
                    "serving", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "systems": "\(config.systems.keys.sorted())"])
            },
            logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [application], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.notice("stopped")
    }
}

/// Reads the signature policy again from the configuration file on SIGHUP (`systemctl reload`),
/// for the pulls that start from then on; a file that no longer parses, or names a key that
/// cannot be read, is logged and the policy in force stays. The rest of the configuration
/// takes a restart.
struct PolicyReload: Service {
    let service: GatewayService
    let configPath: String
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            do {
                let config = try GatewayConfig.load(path: configPath)
                service.replaceSignaturePolicy(config.signaturePolicy)
                logger.notice("signature policy reloaded", metadata: ["scopes": "\(config.signaturePolicy?.scopes.count ?? 0)"])
            } catch {
                logger.error("signature policy not reloaded; the one in force stays", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// Waits for the graceful shutdown and then stops the pull scheduler, recording pulls still in
/// progress as PENDING so that the next start resumes them.
struct PullShutdown: Service {
    let service: GatewayService

    func run() async throws {
        try? await gracefulShutdown()
        service.stop()
    }
}
