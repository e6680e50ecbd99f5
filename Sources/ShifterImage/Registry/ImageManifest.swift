#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An operating system and CPU an image is built for, such as `linux/amd64` or `linux/arm64/v8`.
public struct ImagePlatform: Hashable, Sendable, CustomStringConvertible {
    /// The operating system, `linux`.
    public var os: String
    /// The CPU architecture in Go's names: `amd64`, `arm64`, `ppc64le`.
    public var architecture: String
    /// The CPU variant, such as `v8` for arm64; `nil` matches any.
    public var variant: String?

    /// The default: linux/amd64.
    public static let linuxAMD64 = ImagePlatform(os: "linux", architecture: "amd64")

    /// Creates a platform; architecture names such as `x86_64` and `aarch64` are translated.
    public init(os: String, architecture: String, variant: String? = nil) {
        self.os = os.lowercased()
        self.architecture = Self.canonicalArchitecture(architecture)
        self.variant = variant?.lowercased()
    }

    /// Parses `OS/ARCHITECTURE[/VARIANT]`.
    public static func parse(_ text: String) throws(ImageImportError) -> ImagePlatform {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty }) else {
            throw ImageImportError(.notFound, "platform \(displayQuoted(text)): expected OS/ARCHITECTURE[/VARIANT], such as linux/amd64")
        }
        return ImagePlatform(os: parts[0], architecture: parts[1], variant: parts.count == 3 ? parts[2] : nil)
    }

    /// Whether an index entry for `candidate` serves this platform.
    func accepts(_ candidate: ImagePlatform) -> Bool {
        guard candidate.os == os, candidate.architecture == architecture else { return false }
        guard let variant else { return true }
        // arm64 images rarely name their variant; v8 is the only one in use.
        let theirs = candidate.variant ?? (architecture == "arm64" ? "v8" : nil)
        return theirs == variant
    }

    /// `linux/amd64`, `linux/arm64/v8`.
    public var description: String {
        [os, architecture, variant].compactMap { $0 }.joined(separator: "/")
    }

    private static func canonicalArchitecture(_ name: String) -> String {
        switch name.lowercased() {
        case "x86_64", "x86-64": return "amd64"
        case "aarch64": return "arm64"
        default: return name.lowercased()
        }
    }
}

/// Media types of the distribution protocol that the importer reads.
enum MediaType {
    static let ociIndex = "application/vnd.oci.image.index.v1+json"
    static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    static let dockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json"
    static let dockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"

    /// What a manifest request accepts, most specific first.
    static let manifestAccept = [ociIndex, ociManifest, dockerManifestList, dockerManifest]
}

/// A content descriptor: what a manifest or index says about a blob or another manifest.
struct ContentDescriptor: Decodable, Equatable {
    struct PlatformField: Decodable, Equatable {
        var architecture: String
        var os: String
        var variant: String?
    }

    var mediaType: String?
    var digest: String
    var size: Int64
    var platform: PlatformField?
    /// What a signature manifest's layer carries its signature in.
    var annotations: [String: String]?
    /// An index entry's kind of artifact (a referrers list's signatures).
    var artifactType: String?
}

/// An image index, a manifest list, or an image manifest, as decoded from JSON.
struct ManifestDocument: Decodable {
    var schemaVersion: Int?
    var mediaType: String?
    var manifests: [ContentDescriptor]?
    var config: ContentDescriptor?
    var layers: [ContentDescriptor]?
    /// What an OCI 1.1 artifact (a signature) is about.
    var subject: ContentDescriptor?
    /// Present only in schema 1 manifests, which are refused.
    var fsLayers: [[String: String]]?

    /// Whether this is an index or a manifest list rather than a single image's manifest.
    func isIndex(contentType: String?) -> Bool {
        let type = mediaType ?? contentType ?? ""
        if type == MediaType.ociIndex || type == MediaType.dockerManifestList { return true }
        if type == MediaType.ociManifest || type == MediaType.dockerManifest { return false }
        return manifests != nil && layers == nil
    }

    /// Why the document's own media type rules it out, or `nil`. A document that says it is an
    /// artifact, a configuration or a web page is refused rather than read by its fields; one
    /// without a media type is judged by its fields, as the OCI specification allows.
    /// A document with both `manifests` and `layers` is refused too: which it is would otherwise
    /// rest on the registry's Content-Type, and a signature of it would not say which was signed.
    var unsupportedMediaTypeReason: String? {
        if manifests != nil && layers != nil {
            return "has both \"manifests\" (an index's) and \"layers\" (an image manifest's); which it is must not rest on the registry's Content-Type"
        }
        guard let type = mediaType, !MediaType.manifestAccept.contains(type) else { return nil }
        if type == MediaType.dockerSchema1 || type == MediaType.dockerSchema1Signed {
            return "is a schema 1 manifest, which is not supported"
        }
        return "has media type \(displayQuoted(type)), which is not an image manifest or index"
    }
}

/// The parts of an image configuration blob that the runtime uses.
struct ImageConfigurationDocument: Decodable {
    struct RuntimeConfig: Decodable {
        var Env: [String]?
        var Entrypoint: [String]?
        var Cmd: [String]?
        var WorkingDir: String?
        var User: String?
        var Labels: [String: String]?
    }

    var architecture: String?
    var os: String?
    var variant: String?
    var created: String?
    var config: RuntimeConfig?
}
