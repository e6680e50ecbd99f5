import ShifterCore
import ShifterImage
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What one pull needs: the image, where it goes, who may use it, and how to reach the registry.
public struct PullJob: Sendable {
    /// The image (`docker:`), with the default registry applied.
    public var reference: ImageReference
    /// The store of the system it is pulled for.
    public var imagePath: String
    /// Users allowed to use it; empty with `groupACL` empty means public.
    public var userACL: [UInt32]
    /// Groups allowed to use it.
    public var groupACL: [UInt32]
    /// Registry credentials; kept in memory only.
    public var credentials: RegistryCredentials?
    /// TLS settings for the registry.
    public var transport: TransportOptions
    /// The platform picked from a multi-platform image.
    public var platform: ImagePlatform
    /// How far the image's layers may expand (`imageExpandedSizeLimit`, `imageEntryLimit`).
    public var importLimits: ImportLimits = .standard
    /// The site's signature policy, checked before any layer is fetched; nil: none.
    public var signaturePolicy: SignaturePolicy?
    /// Told why the policy refused an image (the gateway's metrics).
    public var onSignatureRefusal: (@Sendable (SignatureRefusal.Kind) -> Void)?
}

/// What a pull produced.
public struct PulledImage: Sendable, Equatable {
    /// The image's record, as stored.
    public var metadata: ImageMetadata
    /// Whether the image was already in the store, so nothing was downloaded or converted.
    public var alreadyPresent: Bool
    /// Bytes of layers downloaded.
    public var bytesDownloaded: Int64
}

/// Pulls one image into an image store, blocking the calling thread. The gateway runs each pull on
/// its own thread; unit tests replace the registry with a stand-in.
public protocol ImagePulling: Sendable {
    /// Pulls `job`, reporting progress through `events` (from any thread).
    func pull(_ job: PullJob, events: @escaping @Sendable (ImportEvent) -> Void) throws(ImageImportError) -> PulledImage
}

/// Pulls with the import library (`ImageImporter`): registry, verification, flattening, store.
public struct RegistryImagePuller: ImagePulling {
    /// A puller.
    public init() {}

    /// Pulls `job` with `ImageImporter`. The store makes a private image's squashfs file and full
    /// record root's, and leaves its access list readable: job submission, which runs as the user,
    /// checks it there before the runtime (root) checks it again on the node.
    public func pull(_ job: PullJob, events: @escaping @Sendable (ImportEvent) -> Void) throws(ImageImportError) -> PulledImage {
        var options = ImportOptions(platform: job.platform, transport: job.transport, userACL: job.userACL, groupACL: job.groupACL)
        options.signaturePolicy = job.signaturePolicy
        options.onSignatureRefusal = job.onSignatureRefusal
        var store = ImageStore(directory: job.imagePath)
        store.importLimits = job.importLimits
        let importer = ImageImporter(store: store, options: options)
        let downloaded = ByteCounter()
        let result = try importer.pull(job.reference, credentials: job.credentials) { event in
            if case .downloaded(_, _, let size) = event { downloaded.add(size) }
            events(event)
        }
        return PulledImage(metadata: result.metadata, alreadyPresent: result.alreadyPresent, bytesDownloaded: downloaded.value)
    }
}

/// A byte total that download threads add to.
final class ByteCounter: Sendable {
    private let total = Mutex<Int64>(0)

    /// Adds `bytes`.
    func add(_ bytes: Int64) { total.withLock { $0 += bytes } }

    /// The total so far.
    var value: Int64 { total.withLock { $0 } }
}
