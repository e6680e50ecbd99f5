import ShifterImage

/// A request the gateway refuses or cannot serve: the HTTP status, a short stable code for the
/// `error` key of the JSON body, and a one-line message naming what failed, on what, and why.
public struct GatewayError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The HTTP status.
    public var status: Int
    /// A short stable name: `bad-request`, `unauthorized`, `forbidden`, `not-found`, `conflict`, `internal`.
    public var code: String
    /// The one-line message.
    public var message: String

    /// Creates an error.
    public init(status: Int, code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// 400: the request is malformed (body, reference, system).
    public static func badRequest(_ message: String) -> GatewayError { GatewayError(status: 400, code: "bad-request", message) }
    /// 401: no valid munge credential.
    public static func unauthorized(_ message: String) -> GatewayError { GatewayError(status: 401, code: "unauthorized", message) }
    /// 403: the caller may not use this endpoint.
    public static func forbidden(_ message: String) -> GatewayError { GatewayError(status: 403, code: "forbidden", message) }
    /// 404: no such endpoint or image, or an image the caller may not see.
    public static func notFound(_ message: String) -> GatewayError { GatewayError(status: 404, code: "not-found", message) }
    /// 405: the endpoint exists for another method.
    public static func wrongMethod(_ message: String) -> GatewayError { GatewayError(status: 405, code: "method-not-allowed", message) }
    /// 409: the request conflicts with the image's state (in use, pull running).
    public static func conflict(_ message: String) -> GatewayError { GatewayError(status: 409, code: "conflict", message) }
    /// 429: the caller runs as much at once as one user may (`archiveImportsPerUser`); the
    /// request may be made again when one of theirs ends.
    public static func tooManyRequests(_ message: String) -> GatewayError { GatewayError(status: 429, code: "too-many-requests", message) }
    /// 500: the gateway failed (database, image store).
    public static func `internal`(_ message: String) -> GatewayError { GatewayError(status: 500, code: "internal", message) }
    /// 503: the gateway is at a limit of its own; the request may be made again later.
    public static func busy(_ message: String) -> GatewayError { GatewayError(status: 503, code: "busy", message) }

    /// The one-line message.
    public var description: String { message }
}

/// Quotes text from a request for a one-line message: printable ASCII stays, anything else is
/// escaped, and long input is cut, so a hostile path cannot add lines to a log (the image
/// library's `displayQuoted`, which messages about images use too).
func quoted(_ text: some StringProtocol, limit: Int = 160) -> String {
    displayQuoted(text, limit: limit)
}
