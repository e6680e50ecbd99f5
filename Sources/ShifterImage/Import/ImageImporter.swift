import Dispatch
import ShifterCore
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Settings of an import.
public struct ImportOptions: Sendable {
    /// The platform picked from a multi-platform index.
    public var platform: ImagePlatform
    /// TLS, timeouts and retries.
    public var transport: TransportOptions
    /// How the image is compressed and with how many threads.
    public var squashfs: SquashfsOptions
    /// How many layers download at once.
    public var parallelDownloads: Int
    /// Users allowed to use the image; with `groupACL` empty too, the image is public.
    public var userACL: [UInt32]
    /// Groups allowed to use the image.
    public var groupACL: [UInt32]
    /// The site's signature policy, checked before any layer is fetched; nil: none.
    public var signaturePolicy: SignaturePolicy?
    /// Told the kind of each signature refusal (the gateway counts them).
    public var onSignatureRefusal: (@Sendable (SignatureRefusal.Kind) -> Void)?

    /// Creates options; by default linux/amd64, zstd level 3, four parallel downloads, public.
    public init(
        platform: ImagePlatform = .linuxAMD64, transport: TransportOptions = TransportOptions(),
        squashfs: SquashfsOptions = SquashfsOptions(), parallelDownloads: Int = 4, userACL: [UInt32] = [], groupACL: [UInt32] = []
    ) {
        self.platform = platform
        self.transport = transport
        self.squashfs = squashfs
        self.parallelDownloads = max(1, parallelDownloads)
        self.userACL = userACL
        self.groupACL = groupACL
    }
}

/// A layer as the manifest lists it.
public struct LayerDescription: Sendable, Equatable {
    /// `sha256:…`.
    public var digest: String
    /// The compressed size in bytes.
    public var size: Int64
}

/// What an import is doing, for progress output. Download events arrive from several threads.
public enum ImportEvent: Sendable, Equatable {
    /// The reference was resolved to an image id (the platform manifest's digest).
    case resolved(imageID: String, platform: String, layers: [LayerDescription])
    /// The image is already in the store; nothing is downloaded or converted.
    case alreadyPresent(imageID: String)
    /// Bytes of layer `index` (0 is the bottom layer) received so far.
    case downloading(index: Int, digest: String, received: Int64, size: Int64)
    /// Layer `index` is downloaded and verified.
    case downloaded(index: Int, digest: String, size: Int64)
    /// A step of the conversion.
    case converting(FlattenProgress)
    /// The image is in the store.
    case stored(imageID: String, path: String, bytes: Int64)
}

/// What an import produced.
public struct ImportResult: Sendable {
    /// The image's record, as stored.
    public var metadata: ImageMetadata
    /// Whether the image was already in the store, so nothing was converted.
    public var alreadyPresent: Bool
    /// What the conversion did, when there was one.
    public var summary: FlattenSummary?
}

/// Pulls images from registries into the image store: resolves the reference to one platform's
/// manifest, downloads and verifies the layers in parallel into a staging directory in the store,
/// flattens them into squashfs, and moves the image and its record into place.
///
/// An image already in the store (same manifest digest) is not downloaded or converted again. A
/// failed import removes everything it wrote.
public struct ImageImporter: Sendable {
    /// The store images go into.
    public let store: ImageStore
    /// The import settings.
    public var options: ImportOptions

    /// An importer into `store`.
    public init(store: ImageStore, options: ImportOptions = ImportOptions()) {
        self.store = store
        self.options = options
    }

    /// Pulls `reference` (a `docker:` reference) into the store.
    public func pull(
        _ reference: ImageReference, credentials: RegistryCredentials? = nil, events: (@Sendable (ImportEvent) -> Void)? = nil
    ) throws(ImageImportError) -> ImportResult {
        guard reference.type == .docker, let registry = reference.registry else {
            throw ImageImportError(.notFound, "image \(reference): only docker images can be pulled from a registry")
        }
        let client = RegistryClient(registry: registry, repository: reference.repository, credentials: credentials, options: options.transport)
        let resolved = try client.resolve(
            reference.digest ?? reference.tag ?? "latest", pinnedDigest: reference.digest, platform: options.platform)
        guard let id = ImageID(resolved.manifestDigest) else {
            throw ImageImportError(.invalidManifest, "registry \(registry): manifest digest \(resolved.manifestDigest) is not sha256")
        }
        let signer = try options.signaturePolicy.flatMap { (policy) throws(ImageImportError) -> ImageSigner? in
            try SignatureVerifier(client: client).check(policy, digest: resolved.referenceDigest, onRefusal: options.onSignatureRefusal)
        }
        let layers = resolved.layers.map { LayerDescription(digest: $0.digest, size: $0.size) }
        events?(.resolved(imageID: id.digest, platform: resolved.platform.description, layers: layers))
        if store.contains(id) {
            return try alreadyPresent(id, reference: reference, signer: signer, events: events)
        }
        // Another import of this digest (another tag of it) may be converting it now: wait for it
        // rather than convert it twice.
        let converted = try store.withConversionLock(id) { () throws(ImageImportError) -> ImportResult? in
            if store.contains(id) { return nil }
            return try convert(reference, client: client, resolved: resolved, id: id, signer: signer, events: events)
        }
        if let converted { return converted }
        return try alreadyPresent(id, reference: reference, signer: signer, events: events)
    }

    /// The result for image `id`, found in the store: this request is let in
    /// (`ImageStore.admit`, which records `signer` where the record has none), then the tag
    /// points at it.
    func alreadyPresent(
        _ id: ImageID, reference: ImageReference, signer: ImageSigner? = nil, events: (@Sendable (ImportEvent) -> Void)?
    ) throws(ImageImportError) -> ImportResult {
        let metadata = try store.admit(id, as: reference, userACL: options.userACL, groupACL: options.groupACL, signer: signer)
        try store.tag(reference, as: id)
        events?(.alreadyPresent(imageID: id.digest))
        return ImportResult(metadata: metadata, alreadyPresent: true, summary: nil)
    }

    private func convert(
        _ reference: ImageReference, client: RegistryClient, resolved: ResolvedImage, id: ImageID, signer: ImageSigner?,
        events: (@Sendable (ImportEvent) -> Void)?
    ) throws(ImageImportError) -> ImportResult {
        let staging = try store.makeStagingDirectory()
        defer { FileOperations.removeTree(staging) }
        let downloads = LayerDownloads(layers: resolved.layers, directory: staging)
        downloads.start(client: client, transport: options.transport, parallel: options.parallelDownloads, events: events)
        // Wait for the download threads before the staging directory goes, on every path out.
        defer { downloads.finish() }
        let imageFile = staging + "/" + id.hex + ".squashfs"
        var squashfsOptions = options.squashfs
        squashfsOptions.modificationTime = resolved.configuration.created.flatMap(ImageTimestamp.epochSeconds) ?? 0
        let summary: FlattenSummary
        do throws(ImageImportError) {
            summary = try LayerFlattener.flatten(
                layers: downloads.blobs, into: imageFile, options: squashfsOptions, limits: store.importLimits,
                waitForLayer: { (index) throws(ImageImportError) in try downloads.wait(for: index) },
                progress: { step in events?(.converting(step)) })
        } catch {
            // A failed download makes the conversion stop too; report the download's own error.
            downloads.cancel()
            throw downloads.failure ?? error
        }
        var metadata = makeMetadata(reference: reference, resolved: resolved, id: id)
        metadata.signedBy = signer?.keyFingerprint
        metadata.signedIdentity = signer?.identity
        try store.commit(imageFile: imageFile, metadata: metadata, id: id, reference: reference, stagingDirectory: staging)
        let path = store.imagePath(for: id)
        events?(.stored(imageID: id.digest, path: path, bytes: FileOperations.size(path) ?? 0))
        return ImportResult(metadata: try store.metadata(for: id), alreadyPresent: false, summary: summary)
    }

    private func makeMetadata(reference: ImageReference, resolved: ResolvedImage, id: ImageID) -> ImageMetadata {
        let config = resolved.configuration.config
        return ImageMetadata(
            format: "squashfs", digest: id.digest, manifestDigest: resolved.referenceDigest, layers: resolved.layers.map(\.digest),
            env: config?.Env ?? [], entrypoint: config?.Entrypoint, cmd: config?.Cmd,
            workdir: config?.WorkingDir.flatMap { $0.isEmpty ? nil : $0 }, user: config?.User.flatMap { $0.isEmpty ? nil : $0 },
            labels: config?.Labels ?? [:], userACL: options.userACL, groupACL: options.groupACL, source: reference.canonical,
            created: ImageTimestamp.string(from: Date()))
    }
}

/// The downloads of an import's layers: several at a time on their own threads and libcurl
/// handles, the top layer first, so that conversion (which reads layers top-down) can start on a
/// layer as soon as it is complete.
final class LayerDownloads: Sendable {
    let blobs: [LayerBlob]
    private let layers: [ContentDescriptor]
    /// Signalled once per layer, when it is complete or will never be.
    private let done: [DispatchSemaphore]
    private let pending: Mutex<[Int]>
    private let failureState = Mutex<ImageImportError?>(nil)
    private let cancelled = Mutex<Bool>(false)
    private let group = DispatchGroup()

    init(layers: [ContentDescriptor], directory: String) {
        self.layers = layers
        self.blobs = layers.enumerated().map { index, layer in LayerBlob(path: directory + "/layer-\(index).blob", name: layer.digest) }
        self.done = layers.map { _ in DispatchSemaphore(value: 0) }
        // popLast takes from the end: bottom layer last.
        self.pending = Mutex(Array(layers.indices))
    }

    /// The first download error, if any.
    var failure: ImageImportError? { failureState.withLock { $0 } }

    func start(client: RegistryClient, transport: TransportOptions, parallel: Int, events: (@Sendable (ImportEvent) -> Void)?) {
        for _ in 0..<min(max(1, parallel), layers.count) {
            group.enter()
            do throws(ImageImportError) {
                try DetachedThread.start("download") { [self] in download(client: client, transport: transport, events: events) }
            } catch {
                group.leave()
                fail(error)
                abandonPending()
                return
            }
        }
    }

    /// One download thread: takes the next pending layer until none is left.
    private func download(client: RegistryClient, transport: TransportOptions, events: (@Sendable (ImportEvent) -> Void)?) {
        defer { group.leave() }
        let transfer: CurlTransfer
        do throws(ImageImportError) {
            transfer = try CurlTransfer(options: transport)
        } catch {
            fail(error)
            abandonPending()
            return
        }
        while let index = pending.withLock({ $0.popLast() }) {
            if cancelled.withLock({ $0 }) {
                done[index].signal()
                continue
            }
            let layer = layers[index]
            do throws(ImageImportError) {
                try client.downloadBlob(
                    layer, to: blobs[index].path, transfer: transfer,
                    isCancelled: { [self] in cancelled.withLock { $0 } }
                ) { received in
                    events?(.downloading(index: index, digest: layer.digest, received: received, size: layer.size))
                }
                events?(.downloaded(index: index, digest: layer.digest, size: layer.size))
            } catch {
                fail(error)
            }
            done[index].signal()
        }
    }

    /// Returns once layer `index` is downloaded and verified; throws the first download error.
    func wait(for index: Int) throws(ImageImportError) {
        done[index].wait()
        // Keep the count, so a second wait (the deferred second pass) returns at once.
        done[index].signal()
        if let failure { throw failure }
    }

    /// Stops downloads that have not finished.
    func cancel() {
        cancelled.withLock { $0 = true }
    }

    /// Cancels what is left and waits for every download thread to end.
    func finish() {
        cancel()
        group.wait()
    }

    /// Marks every layer no thread has taken as done, so that no wait for one blocks; used once
    /// the downloads have failed.
    private func abandonPending() {
        while let index = pending.withLock({ $0.popLast() }) { done[index].signal() }
    }

    private func fail(_ error: ImageImportError) {
        let first = failureState.withLock { state -> Bool in
            guard state == nil else { return false }
            state = error
            return true
        }
        if first { cancel() }
    }
}
