import Testing

@testable import ShifterGatewayClient

@Suite struct GatewayEndpointTests {
    @Test(arguments: [
        ("GET", "/api/list/cluster/", GatewayEndpoint.list(system: "cluster")),
        ("GET", "/api/list/cluster", GatewayEndpoint.list(system: "cluster")),
        ("GET", "/api/queue/cluster/", GatewayEndpoint.queue(system: "cluster")),
        ("GET", "/api/metrics/cluster/", GatewayEndpoint.lookupMetrics(system: "cluster")),
        ("GET", "/api/autoexpire/cluster/", GatewayEndpoint.autoexpire(system: "cluster")),
        ("GET", "/api/reverify/cluster/", GatewayEndpoint.reverify(system: "cluster")),
        ("GET", "/api/lookup/cluster/docker/ubuntu:22.04/", GatewayEndpoint.lookup(system: "cluster", type: "docker", tag: "ubuntu:22.04")),
        ("GET", "/api/lookup/c/docker/reg:5000/team/tool:1.2/", GatewayEndpoint.lookup(system: "c", type: "docker", tag: "reg:5000/team/tool:1.2")),
        ("GET", "/api/lookup/c/docker/team%2Ftool%3A1/", GatewayEndpoint.lookup(system: "c", type: "docker", tag: "team/tool:1")),
        ("POST", "/api/pull/c/docker/ubuntu/", GatewayEndpoint.pull(system: "c", type: "docker", tag: "ubuntu")),
        ("POST", "/api/doimport/c/custom/mine:1/", GatewayEndpoint.importImage(system: "c", type: "custom", tag: "mine:1")),
        ("GET", "/api/expire/c/docker/ubuntu:22.04/", GatewayEndpoint.expire(system: "c", type: "docker", tag: "ubuntu:22.04")),
    ])
    func parsesEndpoints(method: String, path: String, expected: GatewayEndpoint) throws {
        #expect(try GatewayEndpoint.parse(method: method, path: path).get() == expected)
    }

    @Test(arguments: [
        ("GET", "/api/nothing/c/", "unknown"),
        ("GET", "/", "unknown"),
        ("GET", "/other/list/c/", "unknown"),
        ("POST", "/api/list/c/", "method"),
        ("GET", "/api/pull/c/docker/ubuntu/", "method"),
        ("GET", "/api/list/", "malformed"),
        ("GET", "/api/list/a/b/", "malformed"),
        ("GET", "/api/lookup/c/docker/", "malformed"),
        ("GET", "/api/lookup/c/docker/a//b/", "malformed"),
        ("GET", "/api/lookup/c/docker/%zz/", "malformed"),
        ("GET", "/api/lookup/c/docker/%4/", "malformed"),
        ("GET", "/api/lookup/c/docker/%ff%fe/", "malformed"),
    ])
    func refusesBadPaths(method: String, path: String, kind: String) {
        switch GatewayEndpoint.parse(method: method, path: path) {
        case .success(let endpoint): Issue.record("\(method) \(path) parsed as \(endpoint)")
        case .failure(.unknownPath): #expect(kind == "unknown")
        case .failure(.wrongMethod): #expect(kind == "method")
        case .failure(.malformed): #expect(kind == "malformed")
        }
    }

    @Test(arguments: [
        GatewayEndpoint.list(system: "cluster"),
        GatewayEndpoint.lookup(system: "c", type: "docker", tag: "reg:5000/team/tool:1.2@sha256:" + String(repeating: "a", count: 64)),
        GatewayEndpoint.pull(system: "c", type: "docker", tag: "we ird/na%me"),
        GatewayEndpoint.importImage(system: "c", type: "custom", tag: "name:tag"),
        GatewayEndpoint.expire(system: "c/x", type: "docker", tag: "a"),
    ])
    func pathsRoundTrip(endpoint: GatewayEndpoint) throws {
        #expect(try GatewayEndpoint.parse(method: endpoint.method, path: endpoint.path).get() == endpoint)
    }
}
