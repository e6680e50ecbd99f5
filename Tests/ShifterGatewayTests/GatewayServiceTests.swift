import Foundation
import ShifterGatewayClient
import Synchronization
import Testing

@testable import ShifterGateway

@Suite struct GatewayServiceTests {
    @Test func pullsThenLooksUp() async throws {
        let gateway = try TestGateway()
        let queued = try gateway.service.pull(
            system: "cluster", type: "docker", tag: "team/tool:1", request: GatewayPullRequest(), caller: TestGateway.alice)
        #expect(queued.status == .pending)
        #expect(queued.tag == "registry.test/team/tool:1")
        try await gateway.settle()
        let record = try gateway.service.lookup(system: "cluster", type: "docker", tag: "registry.test/team/tool:1", caller: TestGateway.bob)
        #expect(record.status == .ready)
        #expect(record.id?.hasPrefix("sha256:") == true)
        #expect(record.cmd == ["/bin/sh"])
        #expect(try gateway.service.list(system: "cluster", caller: TestGateway.bob).map(\.tag) == ["registry.test/team/tool:1"])
        #expect(try gateway.service.lookupMetrics(system: "cluster", caller: TestGateway.root).count == 1)
    }

    @Test func concurrentPullsOfOneTagPullOnce() async throws {
        let gateway = try TestGateway(puller: FakePuller(delay: 0.5))
        let service = gateway.service
        try await withThrowingTaskGroup(of: GatewayImageRecord.self) { group in
            for caller in [TestGateway.alice, TestGateway.bob, TestGateway.root, TestGateway.alice] {
                group.addTask {
                    try service.pull(system: "cluster", type: "docker", tag: "team/tool:1", request: GatewayPullRequest(), caller: caller)
                }
            }
            for try await record in group { #expect(record.status.isInProgress) }
        }
        try await gateway.settle()
        #expect(gateway.puller.count == 1)
        #expect(service.prometheusText().contains("shifter_gateway_pulls_total{outcome=\"joined\"} 3"))
    }

    @Test func repullWithinTheIntervalDoesNothing() async throws {
        let gateway = try TestGateway(minPullInterval: 3600)
        for _ in 0..<3 {
            _ = try gateway.service.pull(system: "cluster", type: "docker", tag: "tool", request: GatewayPullRequest(), caller: TestGateway.alice)
            try await gateway.settle()
        }
        #expect(gateway.puller.count == 1)
        #expect(gateway.service.prometheusText().contains("shifter_gateway_pulls_total{outcome=\"skipped\"} 2"))
    }

    @Test func repullAfterTheIntervalPullsAgain() async throws {
        let gateway = try TestGateway(minPullInterval: 0)
        for _ in 0..<2 {
            _ = try gateway.service.pull(system: "cluster", type: "docker", tag: "tool", request: GatewayPullRequest(), caller: TestGateway.alice)
            try await gateway.settle()
        }
        #expect(gateway.puller.count == 2)
    }

    @Test func privateImagesAreInvisibleToOthers() async throws {
        let gateway = try TestGateway()
        let service = gateway.service
        let record = try service.pull(
            system: "cluster", type: "docker", tag: "secret:1", request: GatewayPullRequest(allowedUIDs: [1001]), caller: TestGateway.alice)
        #expect(record.userACL == [1001])
        try await gateway.settle()
        #expect(try service.lookup(system: "cluster", type: "docker", tag: "secret:1", caller: TestGateway.alice).status == .ready)
        #expect(throws: GatewayError.self) { try service.lookup(system: "cluster", type: "docker", tag: "secret:1", caller: TestGateway.bob) }
        do {
            _ = try service.lookup(system: "cluster", type: "docker", tag: "secret:1", caller: TestGateway.bob)
        } catch {
            #expect(error.status == 404)
        }
        #expect(try service.list(system: "cluster", caller: TestGateway.bob).isEmpty)
        #expect(try service.queue(system: "cluster", caller: TestGateway.bob).isEmpty)
        #expect(try service.list(system: "cluster", caller: TestGateway.root).count == 1)
        // Bob expiring Alice's image learns nothing either.
        do {
            _ = try service.expire(system: "cluster", type: "docker", tag: "secret:1", caller: TestGateway.bob)
            Issue.record("bob expired alice's image")
        } catch {
            #expect(error.status == 404)
        }
        // A group ACL lets a member see it.
        _ = try service.pull(
            system: "cluster", type: "docker", tag: "shared:1", request: GatewayPullRequest(allowedGIDs: [1003]), caller: TestGateway.alice)
        try await gateway.settle()
        #expect(try service.lookup(system: "cluster", type: "docker", tag: "shared:1", caller: TestGateway.bob).groupACL == [1003])
    }

    @Test func credentialsMakeAPullPrivateAndAreNotStored() async throws {
        let gateway = try TestGateway()
        var alice = TestGateway.alice
        alice.payload = GatewayCredentialPayload(credentials: GatewayRegistryCredentials(username: "alice", password: "hunter2-secret"))
        let record = try gateway.service.pull(system: "cluster", type: "docker", tag: "mine", request: GatewayPullRequest(), caller: alice)
        #expect(record.userACL == [1001])
        try await gateway.settle()
        let database = try Data(contentsOf: URL(fileURLWithPath: gateway.directory + "/state.sqlite"))
        #expect(database.range(of: Data("hunter2-secret".utf8)) == nil)
    }

    @Test func failedPullsSayWhyAndRetryClean() async throws {
        let gateway = try TestGateway(minPullInterval: 3600)
        _ = try gateway.service.pull(system: "cluster", type: "docker", tag: "broken:1", request: GatewayPullRequest(), caller: TestGateway.alice)
        try await gateway.settle()
        let failed = try gateway.service.lookup(system: "cluster", type: "docker", tag: "broken:1", caller: TestGateway.alice)
        #expect(failed.status == .failure)
        #expect(failed.statusMessage.contains("repository library/broken: not found") || failed.statusMessage.contains("not found"))
        let retry = try gateway.service.pull(system: "cluster", type: "docker", tag: "broken:1", request: GatewayPullRequest(), caller: TestGateway.alice)
        #expect(retry.status == .pending)
        #expect(retry.statusMessage == "queued")
        try await gateway.settle()
        #expect(gateway.puller.count == 2)
    }

    @Test func interruptedPullsResumeOrFailAfterARestart() async throws {
        let first = try TestGateway()
        let key = (system: "cluster", itype: "docker")
        for (tag, needsCredentials, status) in [
            ("registry.test/a:1", false, GatewayImageStatus.pulling), ("registry.test/b:1", true, .conversion),
            ("registry.test/c:1", false, .pending),
        ] {
            var row = ImageRow(system: key.system, itype: key.itype, tag: tag, scope: "", ownerUID: 1001, digest: nil, status: status)
            row.needsCredentials = needsCredentials
            try first.service.state.save(row)
        }
        let second = try TestGateway(directory: first.directory)
        let (resumed, failed) = try second.service.resumeInterruptedPulls()
        #expect(resumed == 2 && failed == 1)
        try await second.settle()
        let records = try ["registry.test/a:1", "registry.test/b:1", "registry.test/c:1"].map {
            try second.service.lookup(system: "cluster", type: "docker", tag: $0, caller: TestGateway.alice)
        }
        #expect(records.map(\.status) == [.ready, .failure, .ready])
        #expect(records[1].statusMessage.contains("pull again"))
    }

    @Test func expiryRespectsOwnersAdminsAndJobs() async throws {
        let now = Mutex(1_000_000.0)
        let gateway = try TestGateway(jobTimeLimit: 100, expireAfter: 1000, clock: { now.withLock { $0 } })
        let service = gateway.service
        _ = try service.pull(system: "cluster", type: "docker", tag: "public:1", request: GatewayPullRequest(), caller: TestGateway.alice)
        _ = try service.pull(
            system: "cluster", type: "docker", tag: "private:1", request: GatewayPullRequest(allowedUIDs: [1001]), caller: TestGateway.alice)
        try await gateway.settle()
        // Only an administrator may expire a public image.
        do {
            _ = try service.expire(system: "cluster", type: "docker", tag: "public:1", caller: TestGateway.alice)
            Issue.record("a user expired a public image")
        } catch {
            #expect(error.status == 403)
        }
        // A recent lookup means a job may still use it.
        _ = try service.lookup(system: "cluster", type: "docker", tag: "private:1", caller: TestGateway.alice)
        do {
            _ = try service.expire(system: "cluster", type: "docker", tag: "private:1", caller: TestGateway.alice)
            Issue.record("expired an image in use")
        } catch {
            #expect(error.status == 409)
        }
        now.withLock { $0 += 200 }
        let expired = try service.expire(system: "cluster", type: "docker", tag: "private:1", caller: TestGateway.alice)
        #expect(expired.expired.map(\.status) == [.expired])
        #expect(throws: GatewayError.self) { try service.lookup(system: "cluster", type: "docker", tag: "private:1", caller: TestGateway.alice) }
        // autoexpire: administrators only, and only images unused for expireAfter.
        #expect(throws: GatewayError.self) { try service.autoexpire(system: "cluster", caller: TestGateway.alice) }
        #expect(try service.autoexpire(system: "cluster", caller: TestGateway.root).expired.isEmpty)
        now.withLock { $0 += 2000 }
        #expect(try service.autoexpire(system: "cluster", caller: TestGateway.root).expired.map(\.tag) == ["registry.test/public:1"])
        #expect(try service.list(system: "cluster", caller: TestGateway.root).isEmpty)
    }
}

@Suite struct GatewayRequestHandlerTests {
    @Test(arguments: [
        ("GET", "/api/list/cluster/", nil, "", 401, "unauthorized"),
        ("GET", "/api/list/cluster/", "gid=5", "", 401, "unauthorized"),
        ("GET", "/api/list/elsewhere/", "uid=1001", "", 400, "bad-request"),
        ("GET", "/api/nothing/", "uid=1001", "", 404, "not-found"),
        ("DELETE", "/api/list/cluster/", "uid=1001", "", 405, "method-not-allowed"),
        ("POST", "/api/pull/cluster/docker/tool/", "uid=1001", "{not json", 400, "bad-request"),
        ("POST", "/api/pull/cluster/docker/tool/", "uid=1001", "{\"allowed_uids\": \"x\"}", 400, "bad-request"),
        ("POST", "/api/pull/cluster/docker/Upper/", "uid=1001", "", 400, "bad-request"),
        ("POST", "/api/pull/cluster/custom/tool/", "uid=1001", "", 400, "bad-request"),
        ("POST", "/api/pull/cluster/local/tool/", "uid=1001", "", 400, "bad-request"),
        ("GET", "/api/lookup/cluster/docker/missing:1/", "uid=1001", "", 404, "not-found"),
        ("GET", "/api/autoexpire/cluster/", "uid=1001", "", 403, "forbidden"),
        ("GET", "/api/metrics/cluster/", "uid=1001", "", 403, "forbidden"),
        ("POST", "/api/doimport/cluster/custom/mine/", "uid=1001", "{\"filepath\": \"/x\"}", 403, "forbidden"),
        ("POST", "/api/doimport/cluster/custom/mine/", "uid=0", "", 400, "bad-request"),
        ("POST", "/api/doimport/cluster/custom/mine/", "uid=0", "{\"filepath\": \"/nonexistent\"}", 400, "bad-request"),
        ("POST", "/api/doimport/cluster/custom/mine/", "uid=0", "{\"filepath\": \"/etc/hostname\"}", 400, "bad-request"),
    ])
    func answersErrorsWithStatusAndJSON(method: String, path: String, credential: String?, body: String, status: Int, code: String) throws {
        let gateway = try TestGateway()
        let (answer, json) = gateway.request(method, path, as: credential, body: body)
        #expect(answer == status)
        #expect(json["error"] as? String == code)
        let message = json["message"] as? String ?? ""
        #expect(!message.isEmpty && !message.contains("\n"))
    }

    @Test func refusesOversizedBodies() throws {
        let gateway = try TestGateway()
        let response = gateway.handler.respond(
            method: "POST", path: "/api/pull/cluster/docker/tool/", authentication: "uid=1001", body: [], bodyTooLarge: true)
        #expect(response.status == 400)
    }

    @Test func servesHealthAndMetricsWithoutCredentials() throws {
        let gateway = try TestGateway()
        #expect(gateway.request("GET", "/healthz", as: nil).0 == 200)
        let metrics = gateway.handler.respond(method: "GET", path: "/metrics", authentication: nil, body: [])
        #expect(metrics.status == 200)
        let text = String(decoding: metrics.body, as: UTF8.self)
        for name in ["shifter_gateway_pulls_total", "shifter_gateway_pull_duration_seconds_bucket", "shifter_gateway_pulled_bytes_total",
                     "shifter_gateway_queue_length", "shifter_gateway_lookups_total"] {
            #expect(text.contains(name))
        }
    }

    @Test func importsASquashfsFile() throws {
        let gateway = try TestGateway()
        let file = gateway.directory + "/image.sqfs"
        try Data([0x68, 0x73, 0x71, 0x73] + Array(repeating: 7, count: 5000)).write(to: URL(fileURLWithPath: file))
        let (status, json) = gateway.request("POST", "/api/doimport/cluster/custom/mine:1/", as: "uid=0", body: "{\"filepath\": \"\(file)\"}")
        #expect(status == 200)
        #expect(json["status"] as? String == "READY")
        let id = try #require(json["id"] as? String)
        let hex = String(id.dropFirst("sha256:".count))
        #expect(FileManager.default.fileExists(atPath: gateway.directory + "/images/\(hex).squashfs"))
        #expect(FileManager.default.fileExists(atPath: gateway.directory + "/images/tags/custom%3Amine%3A1"))
        #expect(gateway.request("GET", "/api/lookup/cluster/custom/mine:1/", as: "uid=1002").0 == 200)
    }
}
