import CCurl
import ShifterCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why a gateway request failed, as one line that names the request and the reason.
public struct GatewayClientError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// A short stable name.
        public let name: String
        /// No munge credential could be made.
        public static let authentication = Code(name: "authentication")
        /// No gateway URL could be reached.
        public static let unreachable = Code(name: "unreachable")
        /// The gateway answered with an error status; `httpStatus` and `message` say which.
        public static let rejected = Code(name: "rejected")
        /// The gateway answered with something that is not the expected JSON.
        public static let invalidResponse = Code(name: "invalid-response")
        /// A pull the gateway accepted ended without a usable image; `detail` says why.
        public static let pullFailed = Code(name: "pull-failed")
        /// The short name.
        public var description: String { name }
    }

    /// The kind of failure.
    public var code: Code
    /// The whole one-line message.
    public var message: String
    /// The HTTP status, for `.rejected`.
    public var httpStatus: Int?
    /// The gateway's error code (`not-found`, `forbidden`, ...), for `.rejected`.
    public var gatewayError: String?
    /// The gateway base URL that answered (`.rejected`), or the one that could not be reached.
    public var url: String?
    /// The reason alone, without the URL and request: the gateway's own message for `.rejected`,
    /// libcurl's text for a transport failure, the record's message for `.pullFailed`.
    public var detail: String?

    /// Creates an error.
    public init(
        _ code: Code, _ message: String, httpStatus: Int? = nil, gatewayError: String? = nil, url: String? = nil, detail: String? = nil
    ) {
        self.code = code
        self.message = message
        self.httpStatus = httpStatus
        self.gatewayError = gatewayError
        self.url = url
        self.detail = detail
    }

    /// The one-line message.
    public var description: String { message }
}

/// A client for the gateway's REST API, for `shifterimg` and scripts. It uses libcurl and libmunge
/// only, and blocks the calling thread for each request.
///
/// Each request carries a fresh munge credential in the `authentication` header (munged refuses a
/// credential it has seen before). The URLs of `imageGateway` are tried in turn until one answers;
/// an HTTP error answer is final and is not retried on the next URL.
public struct GatewayClient: Sendable {
    /// Gateway base URLs (`http://host:port`), tried in order.
    public var urls: [String]
    /// This cluster's system name at the gateway (`system` in udiRoot.conf).
    public var system: String
    /// Seconds allowed for each request (`gatewayTimeout`).
    public var timeout: Int
    /// A PEM bundle of CA certificates for `https` gateways, or nil for the system's.
    public var caBundle: String?
    /// Makes the credential for a request from its payload; munge by default, replaceable in tests.
    public var makeCredential: @Sendable ([UInt8]) throws(GatewayClientError) -> String

    /// A client for `system` at `urls`.
    public init(
        urls: [String], system: String, timeout: Int = 60, caBundle: String? = nil,
        makeCredential: @escaping @Sendable ([UInt8]) throws(GatewayClientError) -> String = { payload throws(GatewayClientError) in
            try MungeCredential.encode(payload: payload)
        }
    ) {
        self.urls = urls
        self.system = system
        self.timeout = max(1, timeout)
        self.caBundle = caBundle
        self.makeCredential = makeCredential
    }

    /// The TYPE and TAG path parts of a `docker` or `custom` reference, as the gateway names it.
    public static func imageParts(of reference: ImageReference) -> (type: String, tag: String) {
        let canonical = reference.canonical
        let prefix = reference.type.rawValue + ":"
        return (reference.type.rawValue, canonical.hasPrefix(prefix) ? String(canonical.dropFirst(prefix.count)) : canonical)
    }

    /// The images the caller may use.
    public func list() throws(GatewayClientError) -> [GatewayImageRecord] {
        try decode(GatewayRecordList.self, send(.list(system: system))).list
    }

    /// The pulls in progress.
    public func queue() throws(GatewayClientError) -> [GatewayImageRecord] {
        try decode(GatewayRecordList.self, send(.queue(system: system))).list
    }

    /// The record of one image, by its canonical reference.
    public func lookup(_ reference: ImageReference) throws(GatewayClientError) -> GatewayImageRecord {
        let (type, tag) = Self.imageParts(of: reference)
        return try lookup(type: type, tag: tag)
    }

    /// The record of one image, by TYPE and TAG as the user wrote them: a TAG without a registry
    /// gets the gateway's default registry, which may not be Docker Hub.
    public func lookup(type: String, tag: String) throws(GatewayClientError) -> GatewayImageRecord {
        try decode(GatewayImageRecord.self, send(.lookup(system: system, type: type, tag: tag)))
    }

    /// Starts or refreshes a pull of a canonical reference; see `pull(type:tag:...)`.
    public func pull(
        _ reference: ImageReference, allowedUIDs: [UInt32] = [], allowedGIDs: [UInt32] = [], credentials: GatewayRegistryCredentials? = nil
    ) throws(GatewayClientError) -> GatewayImageRecord {
        let (type, tag) = Self.imageParts(of: reference)
        return try pull(type: type, tag: tag, allowedUIDs: allowedUIDs, allowedGIDs: allowedGIDs, credentials: credentials)
    }

    /// Starts or refreshes a pull; returns the record as queued. Poll `lookup` or `queue` for progress.
    /// `credentials` go inside the munge payload, never in the request body.
    public func pull(
        type: String, tag: String, allowedUIDs: [UInt32] = [], allowedGIDs: [UInt32] = [], credentials: GatewayRegistryCredentials? = nil
    ) throws(GatewayClientError) -> GatewayImageRecord {
        let request = GatewayPullRequest(
            allowedUIDs: allowedUIDs.isEmpty ? nil : allowedUIDs, allowedGIDs: allowedGIDs.isEmpty ? nil : allowedGIDs)
        let body = try encode(request)
        return try decode(
            GatewayImageRecord.self,
            send(.pull(system: system, type: type, tag: tag), body: body, payload: GatewayCredentialPayload(credentials: credentials)))
    }

    /// Imports a squashfs file on the gateway host that the caller may read, as a `custom` image.
    public func importImage(
        _ reference: ImageReference, filepath: String, format: String = "squashfs", allowedUIDs: [UInt32] = [],
        allowedGIDs: [UInt32] = []
    ) throws(GatewayClientError) -> GatewayImageRecord {
        let (type, tag) = Self.imageParts(of: reference)
        let request = GatewayImportRequest(
            filepath: filepath, format: format, allowedUIDs: allowedUIDs.isEmpty ? nil : allowedUIDs,
            allowedGIDs: allowedGIDs.isEmpty ? nil : allowedGIDs)
        // An archive is converted while the request waits, as long as a pull takes.
        var client = self
        if format != "squashfs" { client.timeout = max(timeout, Self.conversionTimeout) }
        return try client.decode(
            GatewayImageRecord.self, client.send(.importImage(system: system, type: type, tag: tag), body: try encode(request)))
    }

    /// Seconds an archive import may take: the gateway converts it before it answers.
    public static let conversionTimeout = 3600

    /// Expires one image (administrators, or the owner of a private image).
    public func expire(_ reference: ImageReference) throws(GatewayClientError) -> GatewayExpiryResult {
        let (type, tag) = Self.imageParts(of: reference)
        return try expire(type: type, tag: tag)
    }

    /// Expires one image by TYPE and TAG as the user wrote them (see `lookup(type:tag:)`).
    public func expire(type: String, tag: String) throws(GatewayClientError) -> GatewayExpiryResult {
        try decode(GatewayExpiryResult.self, send(.expire(system: system, type: type, tag: tag)))
    }

    /// Expires every image unused for the configured time (administrators).
    public func autoexpire() throws(GatewayClientError) -> GatewayExpiryResult {
        try decode(GatewayExpiryResult.self, send(.autoexpire(system: system)))
    }

    /// Checks every image against the signature policy now, expiring those it refuses (administrators).
    public func reverify() throws(GatewayClientError) -> GatewayExpiryResult {
        try decode(GatewayExpiryResult.self, send(.reverify(system: system)))
    }

    /// Recent lookups (administrators).
    public func lookupMetrics() throws(GatewayClientError) -> [GatewayLookupEvent] {
        try decode([GatewayLookupEvent].self, send(.lookupMetrics(system: system)))
    }

    /// Sends one request and returns the body of a 2xx answer; other answers throw `.rejected`
    /// with the gateway's message.
    public func send(
        _ endpoint: GatewayEndpoint, body: [UInt8]? = nil, payload: GatewayCredentialPayload? = nil
    ) throws(GatewayClientError) -> [UInt8] {
        var payloadBytes: [UInt8] = []
        if let payload, payload.credentials != nil {
            payloadBytes = try encode(payload)
        }
        guard !urls.isEmpty else {
            throw GatewayClientError(.unreachable, "gateway: no URL configured (imageGateway is empty)")
        }
        var failures: [String] = []
        var attempts: [String] = []
        for base in urls {
            let credential = try makeCredential(payloadBytes)
            let url = (base.hasSuffix("/") ? String(base.dropLast()) : base) + endpoint.path
            let answer: (status: Int, body: [UInt8])
            do throws(GatewayClientError) {
                answer = try HTTPExchange.perform(
                    method: endpoint.method, url: url, body: body, headers: ["authentication: " + credential],
                    timeout: timeout, caBundle: caBundle)
            } catch {
                failures.append(error.message)
                attempts.append("\(base) (\(error.detail ?? error.message))")
                continue
            }
            if (200..<300).contains(answer.status) { return answer.body }
            let detail = try? JSONDecoder().decode(GatewayErrorBody.self, from: Data(answer.body))
            throw GatewayClientError(
                .rejected, "gateway \(base): \(endpoint.method) \(endpoint.path): \(detail?.message ?? "HTTP \(answer.status)")",
                httpStatus: answer.status, gatewayError: detail?.error, url: base, detail: detail?.message)
        }
        throw GatewayClientError(
            .unreachable, failures.joined(separator: "; "), url: urls.joined(separator: " "),
            detail: "tried " + attempts.joined(separator: ", "))
    }

    private func encode(_ value: some Encodable) throws(GatewayClientError) -> [UInt8] {
        do {
            return Array(try JSONEncoder().encode(value))
        } catch {
            throw GatewayClientError(.invalidResponse, "gateway request: cannot encode JSON: \(error)")
        }
    }

    private func decode<Value: Decodable>(_ type: Value.Type, _ bytes: [UInt8]) throws(GatewayClientError) -> Value {
        do {
            return try JSONDecoder().decode(Value.self, from: Data(bytes))
        } catch {
            throw GatewayClientError(.invalidResponse, "gateway: the answer is not the expected JSON (\(bytes.count) bytes)")
        }
    }
}

/// One HTTP request over a libcurl easy handle.
enum HTTPExchange {
    /// The most a response body may hold.
    static let bodyLimit = 64 << 20

    private final class Sink {
        var bytes: [UInt8] = []
        var overflow = false
    }

    /// Performs the request; throws `.unreachable` for transport failures, returns any HTTP answer.
    static func perform(
        method: String, url: String, body: [UInt8]?, headers: [String], timeout: Int, caBundle: String?
    ) throws(GatewayClientError) -> (status: Int, body: [UInt8]) {
        guard let handle = curl_easy_init() else {
            throw GatewayClientError(.unreachable, "gateway \(url): libcurl cannot create a handle")
        }
        defer { curl_easy_cleanup(handle) }
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for header in headers + ["Accept: application/json", "Content-Type: application/json", "Expect:"] {
            list = curl_slist_append(list, header)
        }
        defer { curl_slist_free_all(list) }
        let sink = Sink()
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        // A POST body needs a non-null pointer even when empty: libcurl reads stdin otherwise.
        let requestBody = (body ?? []) + [0]
        let result: CURLcode = withExtendedLifetime(sink) {
            url.withCString { urlText in
                requestBody.withUnsafeBufferPointer { bodyBuffer in
                    method.withCString { methodText in
                        _ = shifter_curl_setopt_pointer(handle, CURLOPT_URL, urlText)
                        _ = shifter_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
                        _ = shifter_curl_setopt_long(handle, CURLOPT_TIMEOUT, timeout)
                        _ = shifter_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, min(timeout, 10))
                        _ = shifter_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, list)
                        _ = shifter_curl_setopt_pointer(handle, CURLOPT_CUSTOMREQUEST, methodText)
                        if method == "POST" {
                            _ = shifter_curl_setopt_long(handle, CURLOPT_POST, 1)
                            _ = shifter_curl_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bodyBuffer.count - 1))
                            _ = shifter_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, bodyBuffer.baseAddress)
                        }
                        if let caBundle {
                            _ = caBundle.withCString { shifter_curl_setopt_pointer(handle, CURLOPT_CAINFO, $0) }
                        }
                        _ = shifter_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, sinkPointer)
                        _ = shifter_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION) { data, size, count, user in
                            guard let user else { return 0 }
                            let sink = Unmanaged<Sink>.fromOpaque(user).takeUnretainedValue()
                            let length = size * count
                            guard sink.bytes.count + length <= HTTPExchange.bodyLimit else {
                                sink.overflow = true
                                return 0
                            }
                            data.withMemoryRebound(to: UInt8.self, capacity: length) {
                                sink.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
                            }
                            return length
                        }
                        return curl_easy_perform(handle)
                    }
                }
            }
        }
        if sink.overflow {
            throw GatewayClientError(.invalidResponse, "gateway \(url): the answer is larger than \(bodyLimit >> 20) MiB")
        }
        guard result == CURLE_OK else {
            let reason = curl_easy_strerror(result).map { String(cString: $0) } ?? "libcurl error \(result.rawValue)"
            throw GatewayClientError(.unreachable, "gateway \(url): \(reason)", url: url, detail: reason)
        }
        var status = 0
        _ = shifter_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return (status, sink.bytes)
    }
}
