import Foundation
import Logging
import ShifterGatewayClient
import Synchronization
import Testing

@testable import ShifterGateway

@Suite struct AutoexpireTimerTests {
    static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }()

    /// The value of one sample of the Prometheus text, such as `name{label="x"}`.
    static func sample(_ service: GatewayService, _ name: String) -> Int? {
        service.prometheusText().split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Int($0.split(separator: " ").last ?? "") }
    }

    @Test func expiresUnusedImagesOfEverySystemAsTheGateway() async throws {
        let now = Mutex(1_000_000.0)
        let gateway = try TestGateway(jobTimeLimit: 100, expireAfter: 1000, otherSystems: ["second"], clock: { now.withLock { $0 } })
        let service = gateway.service
        for system in ["cluster", "second"] {
            _ = try service.pull(system: system, type: "docker", tag: "tool:1", request: GatewayPullRequest(), caller: TestGateway.alice)
        }
        try await gateway.settle()
        let timer = AutoexpireTimer(service: service, interval: .seconds(1), logger: Self.logger)
        timer.runOnce()
        #expect(Self.sample(service, "shifter_gateway_autoexpire_runs_total{result=\"ok\"}") == 1)
        #expect(Self.sample(service, "shifter_gateway_autoexpired_images_total") == 0)
        now.withLock { $0 += 2000 }
        timer.runOnce()
        #expect(Self.sample(service, "shifter_gateway_autoexpire_runs_total{result=\"ok\"}") == 2)
        #expect(Self.sample(service, "shifter_gateway_autoexpired_images_total") == 2)
        #expect(Self.sample(service, "shifter_gateway_autoexpire_runs_total{result=\"failed\"}") == 0)
        for system in ["cluster", "second"] {
            #expect(try service.list(system: system, caller: TestGateway.root).isEmpty)
        }
    }

    @Test func keepsAnImageLookedUpWithinTheJobTimeLimit() async throws {
        let now = Mutex(1_000_000.0)
        let gateway = try TestGateway(jobTimeLimit: 5000, expireAfter: 1000, clock: { now.withLock { $0 } })
        let service = gateway.service
        for tag in ["used:1", "unused:1"] {
            _ = try service.pull(system: "cluster", type: "docker", tag: tag, request: GatewayPullRequest(), caller: TestGateway.alice)
        }
        try await gateway.settle()
        _ = try service.lookup(system: "cluster", type: "docker", tag: "used:1", caller: TestGateway.bob)
        now.withLock { $0 += 2000 }
        AutoexpireTimer(service: service, interval: .seconds(1), logger: Self.logger).runOnce()
        #expect(try service.list(system: "cluster", caller: TestGateway.root).map(\.tag) == ["registry.test/used:1"])
        #expect(Self.sample(service, "shifter_gateway_autoexpired_images_total") == 1)
    }

    /// A system whose image cannot be removed fails its autoexpire; the other systems are still
    /// served, the run is counted as failed, and the next run goes ahead.
    @Test func aFailureIsCountedAndDoesNotStopTheOtherSystemsOrTheNextRun() async throws {
        let now = Mutex(1_000_000.0)
        let gateway = try TestGateway(jobTimeLimit: 100, expireAfter: 1000, otherSystems: ["broken"], clock: { now.withLock { $0 } })
        let service = gateway.service
        for system in ["broken", "cluster"] {
            _ = try service.pull(system: system, type: "docker", tag: "tool:1", request: GatewayPullRequest(), caller: TestGateway.alice)
        }
        try await gateway.settle()
        // unlink(2) cannot remove a directory, even for root, so removing this image fails.
        let id = try #require(try service.list(system: "broken", caller: TestGateway.root).first?.id)
        let hex = String(id.dropFirst("sha256:".count))
        let store = gateway.directory + "/images-broken/"
        try Data("{}".utf8).write(to: URL(fileURLWithPath: store + hex + ".meta.json"))
        try FileManager.default.createDirectory(atPath: store + hex + ".squashfs/content", withIntermediateDirectories: true)
        now.withLock { $0 += 2000 }
        let timer = AutoexpireTimer(service: service, interval: .seconds(1), logger: Self.logger)
        timer.runOnce()
        #expect(Self.sample(service, "shifter_gateway_autoexpire_runs_total{result=\"failed\"}") == 1)
        #expect(Self.sample(service, "shifter_gateway_autoexpired_images_total") == 1)
        #expect(try service.list(system: "cluster", caller: TestGateway.root).isEmpty)
        timer.runOnce()
        #expect(Self.sample(service, "shifter_gateway_autoexpire_runs_total{result=\"ok\"}") == 1)
    }

    @Test(.timeLimit(.minutes(1))) func runsEveryIntervalUntilCancelled() async throws {
        let gateway = try TestGateway()
        let timer = AutoexpireTimer(service: gateway.service, interval: .milliseconds(20), logger: Self.logger)
        let running = Task { await timer.run() }
        // Two runs come after two intervals; the deadline only bounds a broken timer.
        let deadline = ContinuousClock.now + .seconds(30)
        while (Self.sample(gateway.service, "shifter_gateway_autoexpire_runs_total{result=\"ok\"}") ?? 0) < 2 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect((Self.sample(gateway.service, "shifter_gateway_autoexpire_runs_total{result=\"ok\"}") ?? 0) >= 2)
        running.cancel()
        await running.value
    }

    @Test(.timeLimit(.minutes(1))) func waitsAnIntervalBeforeTheFirstRun() async throws {
        let gateway = try TestGateway()
        let timer = AutoexpireTimer(service: gateway.service, interval: .seconds(3600), logger: Self.logger)
        let running = Task { await timer.run() }
        try await Task.sleep(for: .milliseconds(200))
        #expect(Self.sample(gateway.service, "shifter_gateway_autoexpire_runs_total{result=\"ok\"}") == 0)
        #expect(Self.sample(gateway.service, "shifter_gateway_autoexpire_runs_total{result=\"failed\"}") == 0)
        // Cancellation ends the hour's wait at once.
        running.cancel()
        await running.value
    }
}
