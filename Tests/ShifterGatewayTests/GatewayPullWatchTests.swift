import ShifterCore
import Testing

@testable import ShifterGatewayClient

/// Following a pull, `shifterimg`'s reading of typed names, and its explanation of gateway errors.
@Suite struct GatewayPullWatchTests {
    private static func record(
        _ status: GatewayImageStatus, users: [UInt32] = [], id: String? = nil, received: Int64? = nil, message: String = ""
    ) -> GatewayImageRecord {
        GatewayImageRecord(
            id: id, system: "c", itype: "docker", tag: "r/a:1", status: status, userACL: users, statusMessage: message, bytesReceived: received)
    }

    /// Runs `follow` against scripted lookup answers (nil: 404), with fixed queue and list answers.
    private func follow(
        _ requested: GatewayImageRecord, lookups: [GatewayImageRecord?], queue: [GatewayImageRecord] = [], list: [GatewayImageRecord] = []
    ) -> (result: Result<GatewayImageRecord, GatewayClientError>, updates: [GatewayImageRecord], waits: Int) {
        var remaining = lookups
        var updates: [GatewayImageRecord] = []
        var waits = 0
        let result = Result { () throws(GatewayClientError) -> GatewayImageRecord in
            try GatewayPullWatch(requested: requested).follow(
                interval: 0.5,
                lookup: { () throws(GatewayClientError) -> GatewayImageRecord? in
                    guard !remaining.isEmpty else { throw GatewayClientError(.unreachable, "script ran out") }
                    return remaining.removeFirst()
                },
                queue: { queue }, list: { list }, wait: { _ in waits += 1 }, update: { updates.append($0) })
        }
        return (result, updates, waits)
    }

    @Test func followsTheRecordUntilReadyAndReportsEachPoll() throws {
        let ready = Self.record(.ready, id: "sha256:1")
        let run = follow(Self.record(.pending), lookups: [Self.record(.pulling, received: 10), Self.record(.conversion), ready])
        #expect(try run.result.get() == ready)
        #expect(run.updates.map(\.status) == [.pending, .pulling, .conversion])
        #expect(run.updates[1].bytesReceived == 10)
        #expect(run.waits == 3)
    }

    @Test func aFailedPullThrowsTheGatewaysReason() {
        let run = follow(Self.record(.pending), lookups: [Self.record(.failure, message: "registry: 401 unauthorized")])
        guard case .failure(let error) = run.result else {
            Issue.record("a failed pull succeeded")
            return
        }
        #expect(error.code == .pullFailed)
        #expect(error.detail == "registry: 401 unauthorized")
        #expect(error.message == "pull of docker:r/a:1 failed at the gateway: registry: 401 unauthorized")
    }

    @Test func anotherRecordOfTheTagSendsTheWatchToTheQueueAndTheList() throws {
        // A private pull while the public image of the tag is READY: the lookup shows the public one.
        let requested = Self.record(.pending, users: [1001])
        let publicReady = Self.record(.ready, id: "sha256:public")
        let privateRunning = Self.record(.pulling, users: [1001], received: 3)
        let privateReady = Self.record(.ready, users: [1001], id: "sha256:private")
        let watch = GatewayPullWatch(requested: requested)
        #expect(watch.step(lookup: publicReady) == .undecided)
        #expect(watch.step(lookup: nil) == .undecided)
        #expect(watch.step(queue: [publicReady, privateRunning], list: []) == .running(privateRunning))
        #expect(watch.step(queue: [], list: [publicReady, privateReady]) == .ready(privateReady))
        guard case .failed(let reason) = watch.step(queue: [], list: [publicReady]) else {
            Issue.record("a vanished private pull did not fail")
            return
        }
        #expect(reason.contains("private"))
        let run = follow(requested, lookups: [publicReady], list: [publicReady, privateReady])
        #expect(try run.result.get() == privateReady)
    }

    @Test func aRecordIsTheSameWhateverTheOrderOfItsACL() {
        let watch = GatewayPullWatch(requested: Self.record(.pending, users: [2, 1]))
        #expect(watch.isSame(Self.record(.ready, users: [1, 2])))
        #expect(!watch.isSame(Self.record(.ready, users: [1])))
        #expect(!watch.isSame(Self.record(.ready)))
    }

    @Test func anExpiredRecordEndsTheWatch() {
        let watch = GatewayPullWatch(requested: Self.record(.pending))
        guard case .failed(let reason) = watch.step(lookup: Self.record(.expired, message: "expired by uid 0")) else {
            Issue.record("an expired record did not end the pull")
            return
        }
        #expect(reason == "the image was expired while it was pulled: expired by uid 0")
    }
}

@Suite struct GatewayImageNameTests {
    @Test(arguments: [
        ("test/busybox", GatewayImageName(type: "docker", tag: "test/busybox")),
        ("docker:ubuntu:22.04", GatewayImageName(type: "docker", tag: "ubuntu:22.04")),
        ("registry.example.org/team/tool:1", GatewayImageName(type: "docker", tag: "registry.example.org/team/tool:1", registry: "registry.example.org")),
        ("docker:127.0.0.1:5001/test/busybox", GatewayImageName(type: "docker", tag: "127.0.0.1:5001/test/busybox", registry: "127.0.0.1:5001")),
        ("localhost/a", GatewayImageName(type: "docker", tag: "localhost/a", registry: "localhost")),
        ("docker.io/library/alpine", GatewayImageName(type: "docker", tag: "docker.io/library/alpine", registry: ImageReference.dockerHubRegistry)),
        ("custom:mytool", GatewayImageName(type: "custom", tag: "mytool:latest")),
        ("custom:mytool:2", GatewayImageName(type: "custom", tag: "mytool:2")),
    ])
    func splitsTypedNames(text: String, expected: GatewayImageName) throws {
        #expect(try GatewayImageName.parse(text) == expected)
    }

    @Test func theDefaultTypeApplies() throws {
        #expect(try GatewayImageName.parse("mytool:1", defaultType: .custom) == GatewayImageName(type: "custom", tag: "mytool:1"))
    }

    @Test(arguments: ["Not..Valid", "id:" + String(repeating: "a", count: 64), "local:/tmp", "docker:"])
    func refusesWhatTheGatewayDoesNotKeep(text: String) {
        #expect(throws: ImageReferenceError.self) { try GatewayImageName.parse(text) }
    }
}

@Suite struct GatewayErrorExplanationTests {
    @Test(arguments: [
        (400, "gateway http://gw:7777 rejected the request (400 bad request): bad tag"),
        (401, "gateway http://gw:7777 did not accept this host's munge credential (401 unauthorized): bad tag; munged must run here with the gateway's key"),
        (403, "not permitted (403 forbidden from gateway http://gw:7777): bad tag"),
        (404, "not found (404 from gateway http://gw:7777; an image private to other users is not shown): bad tag"),
        (409, "refused for now (409 conflict from gateway http://gw:7777): bad tag"),
        (503, "gateway http://gw:7777 failed (503): bad tag"),
        (302, "gateway http://gw:7777 answered HTTP 302: bad tag"),
    ])
    func explainsEachStatus(status: Int, expected: String) {
        let error = GatewayClientError(
            .rejected, "gateway http://gw:7777: GET /api/x: bad tag", httpStatus: status, gatewayError: "e", url: "http://gw:7777", detail: "bad tag")
        #expect(error.explanation == expected)
    }

    @Test func anUnreachableGatewayNamesEveryURLTried() {
        let client = GatewayClient(urls: ["http://127.0.0.1:1", "http://127.0.0.1:2/"], system: "c", timeout: 2, makeCredential: { _ in "cred" })
        do {
            _ = try client.list()
            Issue.record("a closed port answered")
        } catch {
            #expect(error.code == .unreachable)
            #expect(error.explanation.hasPrefix("cannot reach the image gateway: tried http://127.0.0.1:1 ("))
            #expect(error.explanation.contains(", http://127.0.0.1:2/ ("))
            #expect(!error.explanation.contains("\n"))
        }
    }

    @Test func otherErrorsKeepTheirMessage() {
        #expect(GatewayClientError(.authentication, "munge: cannot create a credential: Socket communication error").explanation
            == "munge: cannot create a credential: Socket communication error")
    }
}
