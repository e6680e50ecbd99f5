/// Why an image import failed, as one line that names what failed, on what, and why.
///
/// The message is complete on its own (`layer sha256:1f2e…: entry "a/../b": path leaves the image
/// root`); callers add only their own prefix, such as the command and the image reference.
public struct ImageImportError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The kind of failure, for callers that map failures onto exit codes or HTTP statuses.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// A short stable name, such as `unsafe-path`.
        public let name: String

        /// A layer that is not a tar, is truncated, or cannot be decompressed.
        public static let invalidLayer = Code(name: "invalid-layer")
        /// A tar entry whose path or link would leave the image root.
        public static let unsafePath = Code(name: "unsafe-path")
        /// A hard link whose target exists in no layer at or below it.
        public static let missingLinkTarget = Code(name: "missing-link-target")
        /// libsquashfs failed while writing the image.
        public static let squashfs = Code(name: "squashfs")
        /// A file or directory operation failed.
        public static let io = Code(name: "io")
        /// The registry answered with something the protocol does not allow.
        public static let registry = Code(name: "registry")
        /// The repository, tag, digest or platform does not exist.
        public static let notFound = Code(name: "not-found")
        /// The registry refused the credentials, or demanded some and none were given.
        public static let unauthorized = Code(name: "unauthorized")
        /// The registry could not be reached.
        public static let unreachable = Code(name: "unreachable")
        /// A blob's content does not hash to the digest that names it.
        public static let digestMismatch = Code(name: "digest-mismatch")
        /// A manifest or index that is too large, malformed, or lists no layers.
        public static let invalidManifest = Code(name: "invalid-manifest")
        /// The image expands beyond the import limits (a decompression bomb, or too many entries).
        public static let tooLarge = Code(name: "too-large")
        /// The image store refused an operation (missing image, permissions, bad record).
        public static let store = Code(name: "store")
        /// The tag's name belongs to another importer (`ImageStore.nameGuard` refused it).
        public static let nameTaken = Code(name: "name-taken")
        /// The site's signature policy does not let the image in (`SignatureRefusal`).
        public static let signatureRefused = Code(name: "signature-refused")

        /// The short name.
        public var description: String { name }
    }

    /// The kind of failure.
    public var code: Code
    /// The whole one-line message.
    public var message: String

    /// Creates an error of kind `code` with the one-line `message`.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The one-line message.
    public var description: String { message }
}

/// Quotes bytes from an image or a registry for a one-line message: printable ASCII stays, anything
/// else is escaped, and long input is cut, so a hostile name cannot add lines to a log.
public func displayQuoted(_ bytes: some Sequence<UInt8>, limit: Int = 160) -> String {
    var result = "\""
    var count = 0
    for byte in bytes {
        if count >= limit {
            result += "..."
            break
        }
        count += 1
        switch byte {
        case UInt8(ascii: "\""): result += "\\\""
        case UInt8(ascii: "\\"): result += "\\\\"
        case 0x20..<0x7F: result.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            let hex = String(byte, radix: 16)
            result += "\\x" + (hex.count == 1 ? "0" + hex : hex)
        }
    }
    return result + "\""
}

/// Quotes a string from an image or a registry for a one-line message.
public func displayQuoted(_ text: some StringProtocol, limit: Int = 160) -> String {
    displayQuoted(Array(text.utf8), limit: limit)
}
