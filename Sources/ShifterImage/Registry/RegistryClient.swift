import CCurl
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// An image as its registry describes it, resolved to one platform.
struct ResolvedImage {
    /// The digest of what the reference named: an index, a manifest list, or the manifest itself.
    var referenceDigest: String
    /// The digest of the platform's manifest, which is the image id.
    var manifestDigest: String
    var platform: ImagePlatform
    var configuration: ImageConfigurationDocument
    /// The layers, bottom first.
    var layers: [ContentDescriptor]
}

/// A client for one repository of a registry speaking the OCI distribution protocol (Docker
/// Registry HTTP API v2), over libcurl.
///
/// It authenticates the way registries ask in their `WWW-Authenticate` challenge: bearer tokens
/// from the named token service, scoped to the repository, or basic authentication. Redirects are
/// followed by hand so that `Authorization` is sent only to the registry's own origin, never to
/// the blob storage a registry redirects to. Requests are retried with exponential backoff on
/// connection failures, 429 and 5xx. Blob downloads are verified against their sha256 digest. It
/// is safe to use from several threads; each thread uses its own libcurl handle.
final class RegistryClient: Sendable {
    /// The largest manifest or index accepted.
    static let manifestSizeLimit = 4 * 1024 * 1024
    /// The largest image configuration accepted.
    static let configurationSizeLimit = 16 * 1024 * 1024

    let registry: String
    let repository: String
    private let baseURL: String
    let options: TransportOptions
    private let credentials: RegistryCredentials?
    private let authorization = Mutex<String?>(nil)

    init(registry: String, repository: String, credentials: RegistryCredentials?, options: TransportOptions) {
        self.registry = registry
        self.repository = repository
        self.baseURL = "https://" + registry
        self.credentials = credentials
        self.options = options
    }

    private var name: String { "registry \(registry)" }

    // MARK: - Resolution

    /// Fetches the manifest `reference` (a tag or a digest) names, and for an index the manifest of
    /// `platform`, then the image configuration.
    func resolve(_ reference: String, pinnedDigest: String?, platform: ImagePlatform) throws(ImageImportError) -> ResolvedImage {
        let transfer = try CurlTransfer(options: options)
        let (top, contentType) = try fetchManifest(reference, transfer: transfer)
        let topDigest = try SHA256Hasher.digest(of: top)
        if let pinnedDigest, pinnedDigest != topDigest {
            throw ImageImportError(
                .digestMismatch, "\(name): manifest \(pinnedDigest) of \(repository) has content with digest \(topDigest)")
        }
        var document = try decodeManifest(top, what: "manifest \(displayQuoted(reference))")
        try checkMediaType(document, what: "manifest \(displayQuoted(reference))")
        var manifestDigest = topDigest
        var chosenPlatform = platform
        if document.isIndex(contentType: contentType) {
            let entries = document.manifests ?? []
            guard let entry = entries.first(where: { descriptor in
                guard let field = descriptor.platform else { return false }
                return platform.accepts(ImagePlatform(os: field.os, architecture: field.architecture, variant: field.variant))
            }) else {
                let offered = entries.compactMap { $0.platform }
                    .map { ImagePlatform(os: $0.os, architecture: $0.architecture, variant: $0.variant).description }
                throw ImageImportError(
                    .notFound,
                    "\(name): \(repository):\(reference) has no \(platform) image (it has: \(offered.isEmpty ? "none" : offered.joined(separator: ", ")))")
            }
            let (body, _) = try fetchManifest(entry.digest, transfer: transfer)
            let digest = try SHA256Hasher.digest(of: body)
            guard digest == entry.digest else {
                throw ImageImportError(.digestMismatch, "\(name): manifest \(entry.digest) of \(repository) has content with digest \(digest)")
            }
            document = try decodeManifest(body, what: "manifest \(entry.digest)")
            try checkMediaType(document, what: "manifest \(entry.digest)")
            if document.isIndex(contentType: nil) {
                throw ImageImportError(.invalidManifest, "\(name): \(entry.digest) is a nested index, not an image manifest")
            }
            manifestDigest = digest
            chosenPlatform = ImagePlatform(
                os: entry.platform?.os ?? platform.os, architecture: entry.platform?.architecture ?? platform.architecture,
                variant: entry.platform?.variant)
        }
        if document.fsLayers != nil || document.schemaVersion == 1 {
            throw ImageImportError(.invalidManifest, "\(name): \(repository):\(reference) is a schema 1 manifest, which is not supported")
        }
        guard let config = document.config else {
            throw ImageImportError(.invalidManifest, "\(name): manifest \(manifestDigest) has no config descriptor")
        }
        guard let layers = document.layers, !layers.isEmpty else {
            throw ImageImportError(.invalidManifest, "\(name): manifest \(manifestDigest) of \(repository) lists no layers")
        }
        for layer in layers {
            if layer.mediaType?.contains("encrypted") == true {
                throw ImageImportError(.invalidManifest, "\(name): layer \(layer.digest) is encrypted, which is not supported")
            }
            try checkDigestForm(layer.digest)
        }
        try checkDigestForm(config.digest)
        let sink = MemoryBodySink(limit: Self.configurationSizeLimit, what: "\(name): config \(config.digest)")
        try get("/v2/\(repository)/blobs/\(config.digest)", accept: [], transfer: transfer, what: "config \(config.digest)") { sink.reset(); return sink }
        let configDigest = try SHA256Hasher.digest(of: sink.bytes)
        guard configDigest == config.digest else {
            throw ImageImportError(.digestMismatch, "\(name): config blob \(config.digest) has content with digest \(configDigest)")
        }
        let configuration: ImageConfigurationDocument
        do {
            configuration = try JSONDecoder().decode(ImageConfigurationDocument.self, from: Data(sink.bytes))
        } catch {
            throw ImageImportError(.invalidManifest, "\(name): config blob \(config.digest) is not a valid image configuration")
        }
        return ResolvedImage(
            referenceDigest: topDigest, manifestDigest: manifestDigest, platform: chosenPlatform,
            configuration: configuration, layers: layers)
    }

    /// The digest a signature of image `digest`, pulled as `reference`, is made for: the digest of
    /// the index `reference` resolves to where that index lists the image, else the image's own.
    func signedDigest(of digest: String, as reference: String) throws(ImageImportError) -> String {
        let transfer = try CurlTransfer(options: options)
        let (top, contentType) = try fetchManifest(reference, transfer: transfer)
        let topDigest = try SHA256Hasher.digest(of: top)
        guard topDigest != digest, let document = try? decodeManifest(top, what: "manifest \(displayQuoted(reference))"),
              document.isIndex(contentType: contentType), document.manifests?.contains(where: { $0.digest == digest }) == true else {
            return digest
        }
        return topDigest
    }

    func fetchManifest(_ reference: String, transfer: CurlTransfer) throws(ImageImportError) -> ([UInt8], String?) {
        let sink = MemoryBodySink(limit: Self.manifestSizeLimit, what: "\(name): manifest \(displayQuoted(reference)) of \(repository)")
        let response = try get(
            "/v2/\(repository)/manifests/\(reference)", accept: MediaType.manifestAccept, transfer: transfer,
            what: "manifest \(displayQuoted(reference))"
        ) { sink.reset(); return sink }
        if let length = response.header("content-length").flatMap(Int.init), length > Self.manifestSizeLimit {
            throw ImageImportError(.invalidManifest, "\(sink.what): larger than the limit of \(Self.manifestSizeLimit) bytes")
        }
        let contentType = response.header("content-type")?.split(separator: ";").first.map {
            $0.trimmingWhitespace()
        }
        return (sink.bytes, contentType)
    }

    func decodeManifest(_ bytes: [UInt8], what: String) throws(ImageImportError) -> ManifestDocument {
        do {
            return try JSONDecoder().decode(ManifestDocument.self, from: Data(bytes))
        } catch {
            throw ImageImportError(.invalidManifest, "\(name): \(what) of \(repository) is not a valid manifest or index")
        }
    }

    private func checkMediaType(_ document: ManifestDocument, what: String) throws(ImageImportError) {
        if let reason = document.unsupportedMediaTypeReason {
            throw ImageImportError(.invalidManifest, "\(name): \(what) of \(repository) \(reason)")
        }
    }

    private func checkDigestForm(_ digest: String) throws(ImageImportError) {
        guard ImageID(digest) != nil, digest.hasPrefix("sha256:") else {
            throw ImageImportError(.invalidManifest, "\(name): digest \(displayQuoted(digest)) is not a sha256 digest")
        }
    }

    // MARK: - Blobs

    /// Downloads blob `descriptor` to `path`, verifying its size and sha256 digest.
    /// `progress` receives the bytes received so far.
    func downloadBlob(
        _ descriptor: ContentDescriptor, to path: String, transfer: CurlTransfer, isCancelled: @escaping () -> Bool = { false },
        progress: @escaping (Int64) -> Void
    ) throws(ImageImportError) {
        let sink = try FileBodySink(
            path: path, expectedSize: descriptor.size, what: "\(name): blob \(descriptor.digest)", isCancelled: isCancelled,
            progress: progress)
        try get("/v2/\(repository)/blobs/\(descriptor.digest)", accept: [], transfer: transfer, what: "blob \(descriptor.digest)") {
            () throws(ImageImportError) in
            try sink.reset()
            return sink
        }
        try sink.close()
        if sink.received != descriptor.size {
            throw ImageImportError(
                .digestMismatch, "\(name): blob \(descriptor.digest) is \(sink.received) bytes, but the manifest says \(descriptor.size)")
        }
        let actual = sink.hasher.finish()
        if actual != descriptor.digest {
            throw ImageImportError(.digestMismatch, "\(name): blob \(descriptor.digest) has content with digest \(actual)")
        }
    }

    // MARK: - Requests

    /// Performs a GET on the registry, authenticating, following redirects and retrying as needed.
    /// `makeSink` is called for every attempt and must start the body over.
    @discardableResult
    func get(
        _ path: String, accept: [String], transfer: CurlTransfer, what: String,
        makeSink: () throws(ImageImportError) -> ResponseBodySink
    ) throws(ImageImportError) -> HTTPResponse {
        var attempt = 1
        var triedChallenge = false
        while true {
            let outcome: Result<HTTPResponse, TransportFailure>
            let sink = try makeSink()
            do throws(TransportFailure) {
                outcome = .success(try followingRedirects(baseURL + path, accept: accept, transfer: transfer, sink: sink))
            } catch {
                outcome = .failure(error)
            }
            switch outcome {
            case .failure(let failure):
                if let sinkError = failure.sinkError { throw sinkError }
                if failure.isTransient && attempt < options.attempts {
                    backoff(attempt, retryAfter: nil)
                    attempt += 1
                    continue
                }
                let tries = attempt > 1 ? " (tried \(attempt) times)" : ""
                throw ImageImportError(.unreachable, "\(name): cannot fetch \(what): \(failure.message)\(tries)")
            case .success(let response):
                switch response.status {
                case 200..<300:
                    return response
                case 401 where !triedChallenge:
                    triedChallenge = true
                    try authenticate(response, transfer: transfer)
                    continue
                case 401, 403:
                    throw unauthorized(response, what: what)
                case 404:
                    let detail = RegistryErrorBody.summary(response.errorBody).map { " (\($0))" } ?? ""
                    throw ImageImportError(.notFound, "\(name): \(what) of \(repository) not found\(detail)")
                case 429, 500...599:
                    if attempt < options.attempts {
                        backoff(attempt, retryAfter: response.header("retry-after").flatMap(Double.init))
                        attempt += 1
                        continue
                    }
                    let detail = RegistryErrorBody.summary(response.errorBody).map { ": \($0)" } ?? ""
                    throw ImageImportError(
                        .registry, "\(name): \(what) of \(repository): HTTP \(response.status)\(detail) (tried \(attempt) times)")
                default:
                    let detail = RegistryErrorBody.summary(response.errorBody).map { ": \($0)" } ?? ""
                    throw ImageImportError(.registry, "\(name): \(what) of \(repository): unexpected HTTP \(response.status)\(detail)")
                }
            }
        }
    }

    /// One request with redirects followed: `Authorization` goes only to the registry's origin.
    private func followingRedirects(
        _ url: String, accept: [String], transfer: CurlTransfer, sink: ResponseBodySink
    ) throws(TransportFailure) -> HTTPResponse {
        let origin = URLParts(baseURL)
        var current = url
        for _ in 0..<8 {
            var headers = accept.isEmpty ? [] : ["Accept: " + accept.joined(separator: ", ")]
            if let value = authorization.withLock({ $0 }), URLParts(current) == origin {
                headers.append("Authorization: " + value)
            }
            let response = try transfer.perform(url: current, headers: headers, sink: sink)
            guard [301, 302, 303, 307, 308].contains(response.status), let next = response.redirectURL else {
                return response
            }
            // A registry may send blobs from storage on another host; never hand it our credentials,
            // and never follow a redirect from HTTPS down to plain HTTP.
            if URLParts(next)?.scheme != "https" && URLParts(current)?.scheme == "https" {
                throw TransportFailure(code: CURLE_UNSUPPORTED_PROTOCOL, message: "refusing a redirect from HTTPS to \(displayQuoted(next))")
            }
            current = next
        }
        throw TransportFailure(code: CURLE_TOO_MANY_REDIRECTS, message: "too many redirects")
    }

    private func backoff(_ attempt: Int, retryAfter: Double?) {
        let exponential = options.initialBackoff * pow(2, Double(attempt - 1))
        let delay = min(30, max(exponential, retryAfter ?? 0))
        if delay > 0 { usleep(UInt32(delay * 1_000_000)) }
    }

    // MARK: - Authentication

    /// Answers a 401 challenge: fetches a bearer token, or uses basic authentication.
    private func authenticate(_ response: HTTPResponse, transfer: CurlTransfer) throws(ImageImportError) {
        let challenges = response.headerValues("www-authenticate").flatMap(AuthenticationChallenge.parse)
        if let bearer = challenges.first(where: { $0.scheme == "bearer" }) {
            let token = try fetchToken(bearer, transfer: transfer)
            authorization.withLock { $0 = "Bearer " + token }
            return
        }
        if challenges.contains(where: { $0.scheme == "basic" }) {
            guard let credentials else {
                throw ImageImportError(.unauthorized, "\(name): authentication required; log in first with: shifterimg login \(registry)")
            }
            authorization.withLock { $0 = credentials.basicAuthorization }
            return
        }
        throw unauthorized(response, what: "access")
    }

    private func fetchToken(_ challenge: AuthenticationChallenge, transfer: CurlTransfer) throws(ImageImportError) -> String {
        guard let realm = challenge.parameters["realm"], let realmParts = URLParts(realm) else {
            throw ImageImportError(.registry, "\(name): bearer challenge without a usable realm")
        }
        guard realmParts.scheme == "https" || realmParts.host == "localhost" || realmParts.host.hasPrefix("127.") else {
            throw ImageImportError(.registry, "\(name): refusing token service \(displayQuoted(realm)) without TLS")
        }
        var query: [(String, String)] = []
        if let service = challenge.parameters["service"] { query.append(("service", service)) }
        if let scope = challenge.parameters["scope"] ?? (repository.isEmpty ? nil : "repository:\(repository):pull") {
            query.append(("scope", scope))
        }
        guard let url = URLParts.appendingQuery(realm, query) else {
            throw ImageImportError(.registry, "\(name): cannot build a token request for \(displayQuoted(realm))")
        }
        var headers: [String] = []
        if let credentials { headers.append("Authorization: " + credentials.basicAuthorization) }
        let sink = MemoryBodySink(limit: 1 << 20, what: "\(name): token from \(realmParts.host)")
        var attempt = 1
        while true {
            sink.reset()
            let response: HTTPResponse
            do throws(TransportFailure) {
                response = try transfer.perform(url: url, headers: headers, sink: sink)
            } catch {
                if let sinkError = error.sinkError { throw sinkError }
                if error.isTransient && attempt < options.attempts {
                    backoff(attempt, retryAfter: nil)
                    attempt += 1
                    continue
                }
                throw ImageImportError(.unreachable, "\(name): token service \(realmParts.host): \(error.message)")
            }
            switch response.status {
            case 200..<300:
                guard let token = (try? JSONDecoder().decode(TokenResponse.self, from: Data(sink.bytes)))?.value else {
                    throw ImageImportError(.registry, "\(name): token service \(realmParts.host) sent no token")
                }
                return token
            case 401, 403:
                throw unauthorized(response, what: "token")
            case 429, 500...599:
                guard attempt < options.attempts else {
                    throw ImageImportError(.registry, "\(name): token service \(realmParts.host) answered HTTP \(response.status)")
                }
                backoff(attempt, retryAfter: response.header("retry-after").flatMap(Double.init))
                attempt += 1
            default:
                throw ImageImportError(.registry, "\(name): token service \(realmParts.host) answered HTTP \(response.status)")
            }
        }
    }

    private func unauthorized(_ response: HTTPResponse, what: String) -> ImageImportError {
        let detail = RegistryErrorBody.summary(response.errorBody).map { " (\($0))" } ?? ""
        if let credentials {
            return ImageImportError(
                .unauthorized,
                "\(name): credentials of user \(displayQuoted(credentials.username)) were refused for \(repository.isEmpty ? "the registry" : repository): HTTP \(response.status)\(detail)")
        }
        return ImageImportError(
            .unauthorized,
            "\(name): \(repository.isEmpty ? "the registry" : repository) requires authentication (HTTP \(response.status)\(detail)); log in with: shifterimg login \(registry)")
    }
}

extension MemoryBodySink {
    func reset() {
        resetBytes()
    }
}

/// Streams a blob into a file while hashing it, refusing more bytes than the manifest declared.
final class FileBodySink: ResponseBodySink {
    let path: String
    let expectedSize: Int64
    let what: String
    let hasher: SHA256Hasher
    private let progress: (Int64) -> Void
    private let isCancelled: () -> Bool
    private var descriptor: Int32 = -1
    private(set) var received: Int64 = 0

    init(
        path: String, expectedSize: Int64, what: String, isCancelled: @escaping () -> Bool, progress: @escaping (Int64) -> Void
    ) throws(ImageImportError) {
        self.path = path
        self.expectedSize = expectedSize
        self.what = what
        self.isCancelled = isCancelled
        self.progress = progress
        self.hasher = try SHA256Hasher()
    }

    deinit {
        if descriptor >= 0 { Glibc.close(descriptor) }
    }

    /// Starts the file and the digest over, for a new attempt.
    func reset() throws(ImageImportError) {
        if descriptor >= 0 { Glibc.close(descriptor) }
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ImageImportError(.io, "\(displayQuoted(path)): cannot create: \(FileOperations.lastErrorText)")
        }
        try hasher.reset()
        received = 0
        progress(0)
    }

    func receive(_ bytes: UnsafeRawBufferPointer) throws(ImageImportError) {
        if isCancelled() {
            throw ImageImportError(.io, "\(what): download cancelled")
        }
        if received + Int64(bytes.count) > expectedSize {
            throw ImageImportError(.digestMismatch, "\(what): more than the \(expectedSize) bytes the manifest declares")
        }
        if let failure = FileOperations.writeAll(descriptor, bytes) {
            throw ImageImportError(.io, "\(displayQuoted(path)): write failed: \(failure)")
        }
        hasher.update(bytes)
        received += Int64(bytes.count)
        progress(received)
    }

    func close() throws(ImageImportError) {
        guard descriptor >= 0 else { return }
        let status = Glibc.close(descriptor)
        descriptor = -1
        if status != 0 {
            throw ImageImportError(.io, "\(displayQuoted(path)): close failed: \(FileOperations.lastErrorText)")
        }
    }
}
