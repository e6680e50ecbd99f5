import Logging
import ServiceLifecycle

extension AuthenticatedCaller {
    /// The gateway itself, for the work it starts without a request: root, whom the configuration
    /// always makes an administrator.
    static let gateway = AuthenticatedCaller(uid: 0, groups: [0])
}

/// Runs autoexpire for every system every `autoexpireIntervalSeconds`, the first time one interval
/// after the start, so that images nobody uses leave the store without an administrator calling
/// `/api/autoexpire/`.
///
/// It is a service of the server's service group: graceful shutdown or cancellation ends the wait
/// for the next run, and the group never waits for more than a run in progress. A run that fails
/// is logged and counted; the timer goes on.
struct AutoexpireTimer: Service {
    let service: GatewayService
    /// The time between the end of one run and the start of the next.
    let interval: Duration
    let logger: Logger

    func run() async {
        // Only the wait ends early: a run is synchronous, like a request, and finishes first.
        try? await cancelWhenGracefulShutdown {
            while true {
                try await Task.sleep(for: interval)
                runOnce()
            }
        }
    }

    /// Runs autoexpire once for every system, as the gateway itself. A system whose autoexpire
    /// fails does not stop the others.
    func runOnce() {
        var expired = 0
        var failed = false
        for system in service.config.systems.keys.sorted() {
            do throws(GatewayError) {
                expired += try service.autoexpire(system: system, caller: .gateway).expired.count
            } catch {
                failed = true
                logger.error("autoexpire timer: autoexpire failed", metadata: ["system": "\(system)", "error": "\(error.message)"])
            }
        }
        service.metrics.countAutoexpireRun(expired: expired, failed: failed)
    }
}
