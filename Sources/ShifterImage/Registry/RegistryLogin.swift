/// Checks credentials against a registry before `shifterimg login` saves them.
public enum RegistryLogin {
    /// Asks the registry's `/v2/` endpoint with `credentials`: the token service for a bearer
    /// challenge, the registry itself for basic authentication. Throws if they are refused.
    public static func verify(_ credentials: RegistryCredentials, registry: String, transport: TransportOptions) throws(ImageImportError) {
        let client = RegistryClient(registry: registry, repository: "", credentials: credentials, options: transport)
        let connection = try CurlTransfer(options: transport)
        try client.get("/v2/", accept: [], transfer: connection, what: "the API root") { MemoryBodySink(limit: 1 << 20, what: "registry \(registry): /v2/") }
    }
}
