import Logging
import ShifterGatewayClient

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// JSON as the gateway writes and reads it: sorted keys, no escaped slashes.
enum GatewayJSON {
    static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    static func decode<Value: Decodable>(_ type: Value.Type, _ bytes: [UInt8]) throws -> Value {
        try JSONDecoder().decode(Value.self, from: Data(bytes))
    }
}

/// An HTTP answer, independent of the server framework.
public struct GatewayResponse: Sendable, Equatable {
    /// The HTTP status.
    public var status: Int
    /// The `Content-Type`.
    public var contentType: String
    /// The body.
    public var body: [UInt8]

    /// An answer.
    public init(status: Int, contentType: String = "application/json", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    /// The JSON error body for `error`.
    static func error(_ error: GatewayError) -> GatewayResponse {
        let body = (try? GatewayJSON.encode(GatewayErrorBody(error: error.code, message: error.message))) ?? Array("{}".utf8)
        return GatewayResponse(status: error.status, body: body + [UInt8(ascii: "\n")])
    }
}

/// Turns one HTTP request (method, path, `authentication` header, body) into a response: routes
/// it, authenticates `/api/` calls, decodes the body, calls `GatewayService`, and maps every error
/// to its status and JSON body. Nothing here traps on input.
public struct GatewayRequestHandler: Sendable {
    /// The service behind the API.
    public let service: GatewayService
    /// How `/api/` callers are authenticated.
    public let authenticator: any RequestAuthenticator
    let logger: Logger

    /// A handler for `service`.
    public init(service: GatewayService, authenticator: any RequestAuthenticator, logger: Logger) {
        self.service = service
        self.authenticator = authenticator
        self.logger = logger
    }

    /// Answers one request. `bodyTooLarge` says the server stopped reading an oversized body.
    public func respond(method: String, path: String, authentication: String?, body: [UInt8], bodyTooLarge: Bool = false) -> GatewayResponse {
        let started = Date()
        var uid: UInt32?
        let response: GatewayResponse
        do throws(GatewayError) {
            response = try route(method: method, path: path, authentication: authentication, body: body, bodyTooLarge: bodyTooLarge) {
                uid = $0
            }
        } catch {
            response = .error(error)
        }
        service.metrics.countRequest(status: response.status)
        if path != "/healthz" && path != "/metrics" {
            var metadata: Logger.Metadata = [
                "method": "\(method)", "path": "\(quoted(path))", "status": "\(response.status)",
                "ms": "\(Int(Date().timeIntervalSince(started) * 1000))",
            ]
            if let uid { metadata["uid"] = "\(uid)" }
            logger.info("request", metadata: metadata)
        }
        return response
    }

    private func route(
        method: String, path: String, authentication: String?, body: [UInt8], bodyTooLarge: Bool, authenticated: (UInt32) -> Void
    ) throws(GatewayError) -> GatewayResponse {
        switch path {
        case "/healthz":
            guard method == "GET" || method == "HEAD" else { throw .wrongMethod("\(method) /healthz: use GET") }
            return GatewayResponse(status: 200, body: Array("{\"status\":\"ok\"}\n".utf8))
        case "/metrics":
            guard method == "GET" || method == "HEAD" else { throw .wrongMethod("\(method) /metrics: use GET") }
            return GatewayResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: Array(service.prometheusText().utf8))
        default:
            break
        }
        let endpoint: GatewayEndpoint
        switch GatewayEndpoint.parse(method: method, path: path) {
        case .success(let parsed): endpoint = parsed
        case .failure(.unknownPath(let message)): throw .notFound(message)
        case .failure(.wrongMethod(let message)): throw .wrongMethod(message)
        case .failure(.malformed(let message)): throw .badRequest(message)
        }
        // Authenticate before reading anything else, so an anonymous caller learns nothing.
        guard let authentication, !authentication.isEmpty else {
            throw .unauthorized("\(endpoint.method) \(endpoint.path): no munge credential in the authentication header")
        }
        let caller = try authenticator.authenticate(authentication)
        authenticated(caller.uid)
        if bodyTooLarge {
            throw .badRequest("\(endpoint.method) \(endpoint.path): the body is larger than \(service.config.maxBodyBytes) bytes")
        }
        switch endpoint {
        case .list(let system):
            return try json(GatewayRecordList(list: service.list(system: system, caller: caller)))
        case .queue(let system):
            return try json(GatewayRecordList(list: service.queue(system: system, caller: caller)))
        case .lookup(let system, let type, let tag):
            return try json(service.lookup(system: system, type: type, tag: tag, caller: caller))
        case .pull(let system, let type, let tag):
            let request = try decodeBody(GatewayPullRequest.self, body, what: "pull request", empty: GatewayPullRequest())
            return try json(service.pull(system: system, type: type, tag: tag, request: request, caller: caller))
        case .importImage(let system, let type, let tag):
            guard let request = try decodeBody(GatewayImportRequest?.self, body, what: "import request", empty: nil) else {
                throw .badRequest("import \(type):\(tag): the body must name the squashfs file: {\"filepath\": ...}")
            }
            return try json(service.importImage(system: system, type: type, tag: tag, request: request, caller: caller))
        case .expire(let system, let type, let tag):
            return try json(service.expire(system: system, type: type, tag: tag, caller: caller))
        case .autoexpire(let system):
            return try json(service.autoexpire(system: system, caller: caller))
        case .reverify(let system):
            return try json(service.reverify(system: system, caller: caller))
        case .lookupMetrics(let system):
            return try json(service.lookupMetrics(system: system, caller: caller))
        }
    }

    private func decodeBody<Value: Decodable>(_ type: Value.Type, _ body: [UInt8], what: String, empty: Value) throws(GatewayError) -> Value {
        guard body.contains(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) else { return empty }
        do {
            return try GatewayJSON.decode(Value.self, body)
        } catch let error as DecodingError {
            throw .badRequest("\(what): \(Self.reason(error))")
        } catch {
            throw .badRequest("\(what): not valid JSON")
        }
    }

    private func json(_ value: some Encodable) throws(GatewayError) -> GatewayResponse {
        do {
            return GatewayResponse(status: 200, body: try GatewayJSON.encode(value) + [UInt8(ascii: "\n")])
        } catch {
            throw .internal("the answer cannot be encoded as JSON")
        }
    }

    /// One line for a decoding error: which key is wrong, not Foundation's multi-line text.
    private static func reason(_ error: DecodingError) -> String {
        func keyPath(_ path: [any CodingKey]) -> String {
            let text = path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return text.isEmpty ? "the top level" : quoted(text)
        }
        switch error {
        case .keyNotFound(let key, _): return "missing key \(quoted(key.stringValue))"
        case .typeMismatch(_, let context): return "\(keyPath(context.codingPath)) has the wrong type"
        case .valueNotFound(_, let context): return "\(keyPath(context.codingPath)) is null"
        case .dataCorrupted(let context): return context.codingPath.isEmpty ? "not valid JSON" : "\(keyPath(context.codingPath)) has an invalid value"
        @unknown default: return "not valid JSON"
        }
    }
}
