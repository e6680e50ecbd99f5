/// One REST endpoint of the gateway (SPEC section 7), with its method and path.
///
/// Paths keep the old Shifter shape: `/api/ACTION/SYSTEM/` and `/api/ACTION/SYSTEM/TYPE/TAG/`, where
/// TAG may itself hold `/`, `:` and `@` (`registry:5000/team/tool:1.2`). Anything else in a path
/// component is percent-encoded.
public enum GatewayEndpoint: Sendable, Equatable {
    /// `GET /api/list/SYSTEM/`: the images the caller may use.
    case list(system: String)
    /// `GET /api/lookup/SYSTEM/TYPE/TAG/`: one image record.
    case lookup(system: String, type: String, tag: String)
    /// `POST /api/pull/SYSTEM/TYPE/TAG/`: start or refresh a pull.
    case pull(system: String, type: String, tag: String)
    /// `POST /api/doimport/SYSTEM/TYPE/TAG/`: import a squashfs file.
    case importImage(system: String, type: String, tag: String)
    /// `GET /api/expire/SYSTEM/TYPE/TAG/`: expire one image.
    case expire(system: String, type: String, tag: String)
    /// `GET /api/autoexpire/SYSTEM/`: expire images unused for the configured time.
    case autoexpire(system: String)
    /// `GET /api/reverify/SYSTEM/`: check the store's images against the signature policy now,
    /// expiring those it refuses.
    case reverify(system: String)
    /// `GET /api/metrics/SYSTEM/`: recent lookups.
    case lookupMetrics(system: String)
    /// `GET /api/queue/SYSTEM/`: pulls in progress.
    case queue(system: String)

    /// The HTTP method: `POST` for pull and import, `GET` otherwise.
    public var method: String {
        switch self {
        case .pull, .importImage: return "POST"
        default: return "GET"
        }
    }

    /// The system the endpoint acts on.
    public var system: String {
        switch self {
        case .list(let system), .autoexpire(let system), .reverify(let system), .lookupMetrics(let system), .queue(let system):
            return system
        case .lookup(let system, _, _), .pull(let system, _, _), .importImage(let system, _, _), .expire(let system, _, _): return system
        }
    }

    /// The path, percent-encoded, with the trailing slash the old gateway used.
    public var path: String {
        func encoded(_ text: String, keepSlash: Bool) -> String {
            var result = ""
            for byte in text.utf8 {
                let keep =
                    (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || "-._~:@".utf8.contains(byte) || (keepSlash && byte == UInt8(ascii: "/"))
                if keep {
                    result.unicodeScalars.append(Unicode.Scalar(byte))
                } else {
                    let hex = String(byte, radix: 16, uppercase: true)
                    result += "%" + (hex.count == 1 ? "0" + hex : hex)
                }
            }
            return result
        }
        func systemPath(_ action: String, _ system: String) -> String {
            "/api/\(action)/\(encoded(system, keepSlash: false))/"
        }
        func imagePath(_ action: String, _ system: String, _ type: String, _ tag: String) -> String {
            "/api/\(action)/\(encoded(system, keepSlash: false))/\(encoded(type, keepSlash: false))/\(encoded(tag, keepSlash: true))/"
        }
        switch self {
        case .list(let system): return systemPath("list", system)
        case .autoexpire(let system): return systemPath("autoexpire", system)
        case .reverify(let system): return systemPath("reverify", system)
        case .lookupMetrics(let system): return systemPath("metrics", system)
        case .queue(let system): return systemPath("queue", system)
        case .lookup(let system, let type, let tag): return imagePath("lookup", system, type, tag)
        case .pull(let system, let type, let tag): return imagePath("pull", system, type, tag)
        case .importImage(let system, let type, let tag): return imagePath("doimport", system, type, tag)
        case .expire(let system, let type, let tag): return imagePath("expire", system, type, tag)
        }
    }

    /// Why a request names no endpoint.
    public enum ParseFailure: Error, Sendable, Equatable {
        /// No endpoint has this path (HTTP 404).
        case unknownPath(String)
        /// The path exists, but not for this method (HTTP 405).
        case wrongMethod(String)
        /// The path is malformed: bad percent-encoding, an empty part (HTTP 400).
        case malformed(String)
    }

    /// Parses a request's method and path (without the query), decoding percent-encoding.
    public static func parse(method: String, path rawPath: String) -> Result<GatewayEndpoint, ParseFailure> {
        var parts = rawPath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        // "/api/list/x/" splits into ["", "api", "list", "x", ""]: drop the empty ends.
        if parts.first == "" { parts.removeFirst() }
        if parts.count > 1 && parts.last == "" { parts.removeLast() }
        guard parts.count >= 2, parts[0] == "api" else {
            return .failure(.unknownPath("no endpoint \(rawPath)"))
        }
        var decoded: [String] = []
        for part in parts.dropFirst(2) {
            guard let text = percentDecoded(part) else {
                return .failure(.malformed("path \(rawPath): bad percent-encoding in \"\(part)\""))
            }
            decoded.append(text)
        }
        let action = parts[1]
        let systemActions = ["list", "autoexpire", "reverify", "metrics", "queue"]
        let imageActions = ["lookup", "pull", "doimport", "expire"]
        if systemActions.contains(action) {
            guard decoded.count == 1, !decoded[0].isEmpty else {
                return .failure(.malformed("path \(rawPath): expected /api/\(action)/SYSTEM/"))
            }
            guard method == "GET" else { return .failure(.wrongMethod("\(method) \(rawPath): use GET")) }
            let system = decoded[0]
            switch action {
            case "list": return .success(.list(system: system))
            case "autoexpire": return .success(.autoexpire(system: system))
            case "reverify": return .success(.reverify(system: system))
            case "metrics": return .success(.lookupMetrics(system: system))
            default: return .success(.queue(system: system))
            }
        }
        guard imageActions.contains(action) else {
            return .failure(.unknownPath("no endpoint \(rawPath)"))
        }
        guard decoded.count >= 3, !decoded[0].isEmpty, !decoded[1].isEmpty else {
            return .failure(.malformed("path \(rawPath): expected /api/\(action)/SYSTEM/TYPE/TAG/"))
        }
        let tag = decoded[2...].joined(separator: "/")
        guard !tag.isEmpty, !decoded[2...].contains(where: \.isEmpty) else {
            return .failure(.malformed("path \(rawPath): the image tag has an empty part"))
        }
        let (system, type) = (decoded[0], decoded[1])
        let wanted = (action == "pull" || action == "doimport") ? "POST" : "GET"
        guard method == wanted else { return .failure(.wrongMethod("\(method) \(rawPath): use \(wanted)")) }
        switch action {
        case "lookup": return .success(.lookup(system: system, type: type, tag: tag))
        case "pull": return .success(.pull(system: system, type: type, tag: tag))
        case "doimport": return .success(.importImage(system: system, type: type, tag: tag))
        default: return .success(.expire(system: system, type: type, tag: tag))
        }
    }

    /// Decodes `%XX` escapes; nil for a truncated or non-hex escape, or bytes that are not UTF-8.
    static func percentDecoded(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        func hexValue(_ byte: UInt8) -> UInt8? {
            switch byte {
            case 0x30...0x39: return byte - 0x30
            case 0x41...0x46: return byte - 0x41 + 10
            case 0x61...0x66: return byte - 0x61 + 10
            default: return nil
            }
        }
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
