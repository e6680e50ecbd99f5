import Foundation
import Logging
import ShifterCore
import ShifterGatewayClient
import Testing

@testable import ShifterGateway

/// Runs a blocking call on its own thread, so libcurl never holds a cooperative thread the server needs.
func offThread<Value: Sendable>(_ body: @escaping @Sendable () -> Value) async -> Value {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}

@Suite struct GatewayClientTests {
    @Test func clientAndServerSpeakTheSameAPI() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gw-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory + "/images", withIntermediateDirectories: true)
        let port = Int.random(in: 20_000...60_000)
        let config = GatewayConfig(
            listenPort: port, database: directory + "/state.sqlite",
            systems: ["cluster": SystemConfig(name: "cluster", imagePath: directory + "/images")], defaultRegistry: "registry.test",
            allowUnlistedRegistries: true)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = Task { [logger] in
            try await GatewayServer.run(config: config, authenticator: MockAuthenticator(), puller: FakePuller(delay: 0.05), logger: logger)
        }
        defer { server.cancel() }
        // The first URL refuses connections, so the client goes on to the second.
        let client = GatewayClient(
            urls: ["http://127.0.0.1:1", "http://127.0.0.1:\(port)"], system: "cluster", timeout: 5,
            makeCredential: { _ in "uid=1001 gid=1002" })
        var ready = false
        for _ in 0..<100 where !ready {
            ready = await offThread { (try? client.list()) != nil }
            if !ready { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(ready)
        // As typed, the tag gets the gateway's default registry.
        let queued = try await offThread { Result { () throws(GatewayClientError) in try client.pull(type: "docker", tag: "team/tool:1") } }.get()
        #expect(queued.tag == "registry.test/team/tool:1")
        let local = try ImageReference.parse("registry.test/team/tool:1")
        var record: GatewayImageRecord?
        for _ in 0..<100 where record?.status != .ready {
            record = await offThread { try? client.lookup(local) }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        #expect(record?.status == .ready)
        #expect(try await offThread { Result { () throws(GatewayClientError) in try client.list() } }.get().count == 1)
        let refused = await offThread { Result { () throws(GatewayClientError) in try client.autoexpire() } }
        guard case .failure(let error) = refused else {
            Issue.record("a user ran autoexpire")
            return
        }
        #expect(error.code == .rejected && error.httpStatus == 403 && error.gatewayError == "forbidden")
        let missing = await offThread { Result { () throws(GatewayClientError) in try client.lookup(ImageReference(type: .docker, registry: "registry.test", repository: "none", tag: "1")) } }
        if case .failure(let error) = missing { #expect(error.httpStatus == 404) } else { Issue.record("found a missing image") }
    }
}
