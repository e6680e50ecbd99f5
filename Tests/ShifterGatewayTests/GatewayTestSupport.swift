import Foundation
import Logging
import ShifterCore
import ShifterGatewayClient
import ShifterImage
import Synchronization

@testable import ShifterGateway

/// Accepts credentials of the form `uid=N gid=M [groups=A,B]` without munge. It exists only in
/// this test target; the gateway's configuration cannot select it.
struct MockAuthenticator: RequestAuthenticator {
    func authenticate(_ credential: String) throws(GatewayError) -> AuthenticatedCaller {
        var uid: UInt32?
        var groups: [UInt32] = []
        for field in credential.split(separator: " ") {
            let parts = field.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "uid": uid = UInt32(parts[1])
            case "gid", "groups": groups += parts[1].split(separator: ",").compactMap { UInt32($0) }
            default: break
            }
        }
        guard let uid else { throw .unauthorized("authentication: mock credential without uid") }
        return AuthenticatedCaller(uid: uid, groups: groups)
    }
}

/// Stands in for the registry: counts pulls, waits a little so that pulls overlap, and fails for
/// repositories whose name contains "broken".
final class FakePuller: ImagePulling {
    let calls = Mutex<[String]>([])
    let delay: Double

    init(delay: Double = 0.3) { self.delay = delay }

    var count: Int { calls.withLock { $0.count } }

    func pull(_ job: PullJob, events: @escaping @Sendable (ImportEvent) -> Void) throws(ImageImportError) -> PulledImage {
        calls.withLock { $0.append(job.reference.canonical) }
        Thread.sleep(forTimeInterval: delay)
        if job.reference.repository.contains("broken") {
            throw ImageImportError(.notFound, "registry \(job.reference.registry ?? ""): repository \(job.reference.repository): not found")
        }
        let hex = String(repeating: String(job.reference.repository.count % 10), count: 64)
        events(.resolved(imageID: "sha256:" + hex, platform: "linux/amd64", layers: []))
        let metadata = ImageMetadata(
            digest: "sha256:" + hex, env: ["PATH=/bin"], cmd: ["/bin/sh"], userACL: job.userACL, groupACL: job.groupACL,
            source: job.reference.canonical)
        return PulledImage(metadata: metadata, alreadyPresent: false, bytesDownloaded: 1000)
    }
}

/// A gateway service over a database in a fresh temporary directory. Its systems are `cluster`,
/// whose store is `images`, and any `otherSystems`, each with the store `images-NAME`.
struct TestGateway {
    let directory: String
    let service: GatewayService
    let handler: GatewayRequestHandler
    let puller: FakePuller

    static let alice = AuthenticatedCaller(uid: 1001, groups: [1002, 1001])
    static let bob = AuthenticatedCaller(uid: 1002, groups: [1003])
    static let root = AuthenticatedCaller(uid: 0, groups: [0])

    init(
        directory: String? = nil, minPullInterval: Double = 60, jobTimeLimit: Double = 3600, expireAfter: Double = 86_400,
        otherSystems: [String] = [], puller: FakePuller = FakePuller(), adminUIDs: Set<UInt32> = [0], importUIDs: Set<UInt32> = [],
        clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) throws {
        let directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("gw-\(UUID().uuidString)").path
        var systems = ["cluster": SystemConfig(name: "cluster", imagePath: directory + "/images")]
        for name in otherSystems {
            systems[name] = SystemConfig(name: name, imagePath: directory + "/images-" + name)
        }
        for system in systems.values {
            try FileManager.default.createDirectory(atPath: system.imagePath, withIntermediateDirectories: true)
        }
        self.directory = directory
        let config = GatewayConfig(
            database: directory + "/state.sqlite", workers: 2, systems: systems,
            defaultRegistry: "registry.test", allowUnlistedRegistries: true, expireAfter: expireAfter, jobTimeLimit: jobTimeLimit,
            minPullInterval: minPullInterval, maxBodyBytes: 4096, adminUIDs: adminUIDs, importUIDs: importUIDs)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        service = try GatewayService(config: config, database: SQLiteDatabase(path: config.database), puller: puller, logger: logger, clock: clock)
        handler = GatewayRequestHandler(service: service, authenticator: MockAuthenticator(), logger: logger)
        self.puller = puller
    }

    /// Waits until no pull is queued or running.
    func settle() async throws {
        for _ in 0..<200 where !service.isIdle {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        // The worker thread writes the record just before it leaves the running set.
        try await Task.sleep(nanoseconds: 20_000_000)
    }

    /// Sends one request through the handler and decodes the JSON answer.
    func request(_ method: String, _ path: String, as credential: String? = "uid=1001 gid=1002", body: String = "") -> (Int, [String: Any]) {
        let response = handler.respond(method: method, path: path, authentication: credential, body: Array(body.utf8))
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        return (response.status, object)
    }
}
