import CArchive
import ShifterCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// Imports an image from an archive written without a registry: `docker save` / `podman save`
/// (docker-archive: `manifest.json`, a configuration and layer tars) or an OCI image layout packed
/// as a tar (oci-archive: `oci-layout`, `index.json`, `blobs/sha256/...`), gzip-compressed or not.
///
/// The archive is read once, with libarchive, into a staging directory of the store; every
/// configuration, manifest and layer is then found through the archive's own index, its digest
/// checked where the format names one, and the layers converted by the same flattener, checks and
/// limits as a pull. Entries are files under the archive's root only: a path that leaves it, and
/// a link that points outside it, are refused.
public struct ImageArchiveImporter: Sendable {
    /// The store images go into.
    public let store: ImageStore
    /// The import settings (platform, squashfs, access lists); the transport is unused.
    public var options: ImportOptions

    /// The largest `manifest.json`, `index.json`, manifest or configuration read into memory.
    static let documentSizeLimit = 16 * 1024 * 1024

    /// An importer into `store`.
    public init(store: ImageStore, options: ImportOptions = ImportOptions()) {
        self.store = store
        self.options = options
    }

    /// Imports the archive open at `descriptor` (read from its current offset; named `name` in
    /// messages) as `reference`.
    public func importArchive(
        _ descriptor: Int32, name: String, as reference: ImageReference, events: (@Sendable (ImportEvent) -> Void)? = nil
    ) throws(ImageImportError) -> ImportResult {
        let staging = try store.makeStagingDirectory()
        defer { FileOperations.removeTree(staging) }
        let root = staging + "/archive"
        try FileOperations.makeDirectory(root)
        let links = try ArchiveUnpacker(name: name, root: root, limits: store.importLimits).unpack(descriptor)
        let contents = ArchiveContents(name: name, root: root, links: links)
        let image = try contents.image(platform: options.platform)
        events?(.resolved(imageID: image.id.digest, platform: image.platform, layers: image.layers.map {
            LayerDescription(digest: $0.digest, size: FileOperations.size($0.path) ?? 0)
        }))
        let converted = try store.withConversionLock(image.id) { () throws(ImageImportError) -> ImportResult? in
            if store.contains(image.id) { return nil }
            return try convert(image, name: name, staging: staging, reference: reference, events: events)
        }
        if let converted { return converted }
        let metadata = try store.admit(image.id, userACL: options.userACL, groupACL: options.groupACL)
        try store.tag(reference, as: image.id)
        events?(.alreadyPresent(imageID: image.id.digest))
        return ImportResult(metadata: metadata, alreadyPresent: true, summary: nil)
    }

    private func convert(
        _ image: ArchiveImage, name: String, staging: String, reference: ImageReference, events: (@Sendable (ImportEvent) -> Void)?
    ) throws(ImageImportError) -> ImportResult {
        let imageFile = staging + "/" + image.id.hex + ".squashfs"
        var squashfsOptions = options.squashfs
        squashfsOptions.modificationTime = image.configuration.created.flatMap(ImageTimestamp.epochSeconds) ?? 0
        let summary = try LayerFlattener.flatten(
            layers: image.layers.map { LayerBlob(path: $0.path, name: "\(name): layer \($0.digest)") }, into: imageFile,
            options: squashfsOptions, limits: store.importLimits, waitForLayer: { _ in },
            progress: { step in events?(.converting(step)) })
        let metadata = makeMetadata(image, reference: reference)
        try store.commit(imageFile: imageFile, metadata: metadata, id: image.id, reference: reference, stagingDirectory: staging)
        let path = store.imagePath(for: image.id)
        events?(.stored(imageID: image.id.digest, path: path, bytes: FileOperations.size(path) ?? 0))
        return ImportResult(metadata: try store.metadata(for: image.id), alreadyPresent: false, summary: summary)
    }
}

extension ImageArchiveImporter {
    private func makeMetadata(_ image: ArchiveImage, reference: ImageReference) -> ImageMetadata {
        let config = image.configuration.config
        let workdir: String? = config?.WorkingDir.flatMap { $0.isEmpty ? nil : $0 }
        let user: String? = config?.User.flatMap { $0.isEmpty ? nil : $0 }
        let layers: [String] = image.layers.map(\.digest)
        return ImageMetadata(
            format: "squashfs", digest: image.id.digest, manifestDigest: image.id.digest, layers: layers,
            env: config?.Env ?? [], entrypoint: config?.Entrypoint, cmd: config?.Cmd, workdir: workdir, user: user,
            labels: config?.Labels ?? [:], userACL: options.userACL, groupACL: options.groupACL, source: reference.canonical,
            created: ImageTimestamp.string(from: Date()))
    }
}

/// Writes an archive's regular files under a directory, and remembers its symbolic links (which
/// `docker save` uses for legacy layer paths) to be resolved inside the archive later.
struct ArchiveUnpacker {
    let name: String
    let root: String
    let limits: ImportLimits

    /// Unpacks the archive at `descriptor`; returns its symbolic links, by path, with targets as
    /// paths from the archive's root.
    func unpack(_ descriptor: Int32) throws(ImageImportError) -> [String: String] {
        guard let archive = archive_read_new() else { throw ImageImportError(.io, "\(name): cannot create a libarchive reader") }
        defer { archive_read_free(archive) }
        for enable in [archive_read_support_filter_gzip, archive_read_support_filter_zstd, archive_read_support_filter_xz,
                       archive_read_support_format_tar, archive_read_support_format_gnutar] where enable(archive) != ARCHIVE_OK {
            throw ImageImportError(.io, "\(name): libarchive: \(Self.lastError(archive))")
        }
        guard archive_read_open_fd(archive, descriptor, 1 << 20) == ARCHIVE_OK else {
            throw ImageImportError(.invalidLayer, "\(name): not a tar archive: \(Self.lastError(archive))")
        }
        var links: [String: String] = [:]
        var entries = 0
        var bytes: UInt64 = 0
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            var entry: OpaquePointer?
            let status = archive_read_next_header(archive, &entry)
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                throw ImageImportError(.invalidLayer, "\(name): not a readable tar archive: \(Self.lastError(archive))")
            }
            entries += 1
            guard entries <= limits.maximumEntries else {
                throw ImageImportError(.tooLarge, "\(name): more than \(limits.maximumEntries) entries")
            }
            guard let raw = archive_entry_pathname(entry) else { continue }
            let text = String(cString: raw)
            guard let path = Self.normalised(text) else {
                throw ImageImportError(.unsafePath, "\(name): entry \(displayQuoted(text)) leaves the archive")
            }
            if path.isEmpty { continue }
            // A hard link names an earlier entry of the archive, by its path from the root.
            if let target = archive_entry_hardlink(entry) {
                guard let resolved = Self.normalised(String(cString: target)), !resolved.isEmpty else {
                    throw ImageImportError(.unsafePath, "\(name): link \(displayQuoted(text)) points outside the archive")
                }
                links[path] = resolved
                continue
            }
            // The AE_IF* macros carry casts Swift cannot import; their values are the POSIX ones.
            switch archive_entry_filetype(entry) & 0o170000 {
            case 0o040000:
                continue
            case 0o120000:
                guard let target = archive_entry_symlink(entry) else { continue }
                let parent = path.split(separator: "/").dropLast().joined(separator: "/")
                let joined = String(cString: target).hasPrefix("/") ? String(cString: target) : (parent.isEmpty ? "" : parent + "/") + String(cString: target)
                guard let resolved = Self.normalised(joined) else {
                    throw ImageImportError(.unsafePath, "\(name): link \(displayQuoted(text)) points outside the archive")
                }
                links[path] = resolved
            case 0o100000:
                let destination = root + "/" + path
                try makeParents(of: path)
                let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
                guard output >= 0 else {
                    throw ImageImportError(.io, "\(name): cannot write \(displayQuoted(text)) to the staging directory: \(String(cString: strerror(errno)))")
                }
                defer { close(output) }
                while true {
                    let count = archive_read_data(archive, buffer, 1 << 20)
                    if count == 0 { break }
                    guard count > 0 else {
                        throw ImageImportError(.invalidLayer, "\(name): reading \(displayQuoted(text)): \(Self.lastError(archive))")
                    }
                    bytes += UInt64(count)
                    guard bytes <= limits.maximumExpandedBytes else {
                        throw ImageImportError(.tooLarge, "\(name): holds more than \(limits.maximumExpandedBytes) bytes")
                    }
                    var offset = 0
                    while offset < count {
                        let written = write(output, buffer + offset, count - offset)
                        if written < 0 && errno == EINTR { continue }
                        guard written > 0 else {
                            throw ImageImportError(.io, "\(name): cannot write \(displayQuoted(text)) to the staging directory: \(String(cString: strerror(errno)))")
                        }
                        offset += written
                    }
                }
            default:
                throw ImageImportError(.invalidLayer, "\(name): entry \(displayQuoted(text)) is neither a file, a directory nor a link")
            }
        }
        return links
    }

    private func makeParents(of path: String) throws(ImageImportError) {
        var directory = root
        for part in path.split(separator: "/").dropLast() {
            directory += "/" + part
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw ImageImportError(.io, "\(name): cannot create \(displayQuoted(directory)): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// `path` relative to the archive's root, without `.` and `..`, or nil when it leaves the root.
    static func normalised(_ path: String) -> String? {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." || part.isEmpty { continue }
            if part == ".." {
                guard !parts.isEmpty else { return nil }
                parts.removeLast()
                continue
            }
            parts.append(part)
        }
        return parts.joined(separator: "/")
    }

    static func lastError(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }
}

/// An image found in an unpacked archive.
struct ArchiveImage {
    struct Layer {
        var digest: String
        var path: String
    }

    var id: ImageID
    var platform: String
    var configuration: ImageConfigurationDocument
    /// Bottom first.
    var layers: [Layer]
}

/// The files of an unpacked archive, reached by their paths in it (links followed).
final class ArchiveContents {
    let name: String
    let root: String
    let links: [String: String]
    /// The most layers an image may have (the kernel's overlay limit is far lower; a registry
    /// image with more does not exist in practice).
    static let layerLimit = 1000
    /// Digests already computed, by path: an index that names one file many times reads it once.
    private var digests: [String: String] = [:]

    init(name: String, root: String, links: [String: String]) {
        self.name = name
        self.root = root
        self.links = links
    }

    /// The archive's image: an OCI layout's (by `index.json`) or a docker-archive's (by `manifest.json`).
    func image(platform: ImagePlatform) throws(ImageImportError) -> ArchiveImage {
        if exists("oci-layout") || exists("index.json") && !exists("manifest.json") {
            return try ociImage(platform: platform)
        }
        if exists("manifest.json") { return try dockerImage() }
        throw ImageImportError(
            .invalidManifest, "\(name): has neither index.json (an OCI image layout) nor manifest.json (docker save); is it an image archive?")
    }

    private func ociImage(platform: ImagePlatform) throws(ImageImportError) -> ArchiveImage {
        let index: ManifestDocument = try decode("index.json", as: ManifestDocument.self)
        var manifestDigest: String?
        var chosen = platform.description
        var document = index
        // index.json lists manifests, or (docker save, some tools) an index of them: one level down.
        for _ in 0..<2 where document.manifests != nil && document.layers == nil {
            let entries = document.manifests ?? []
            let images = entries.filter { $0.mediaType == nil || $0.mediaType == MediaType.ociManifest || $0.mediaType == MediaType.dockerManifest || $0.mediaType == MediaType.ociIndex || $0.mediaType == MediaType.dockerManifestList }
            let entry: ContentDescriptor
            if let match = images.first(where: { descriptor in
                guard let field = descriptor.platform else { return false }
                return platform.accepts(ImagePlatform(os: field.os, architecture: field.architecture, variant: field.variant))
            }) {
                entry = match
                if let field = match.platform { chosen = ImagePlatform(os: field.os, architecture: field.architecture, variant: field.variant).description }
            } else if images.count == 1, images[0].platform == nil {
                entry = images[0]
            } else if images.isEmpty {
                throw ImageImportError(.invalidManifest, "\(name): index.json lists no image manifest")
            } else {
                throw ImageImportError(.notFound, "\(name): holds \(images.count) images and none for \(platform)")
            }
            document = try decode(try blobPath(entry.digest), as: ManifestDocument.self, digest: entry.digest)
            manifestDigest = entry.digest
        }
        guard let manifestDigest, let id = ImageID(manifestDigest) else {
            throw ImageImportError(.invalidManifest, "\(name): index.json names no image manifest")
        }
        guard let config = document.config, let layers = document.layers, !layers.isEmpty else {
            throw ImageImportError(.invalidManifest, "\(name): manifest \(manifestDigest) has no config or no layers")
        }
        guard layers.count <= Self.layerLimit else {
            throw ImageImportError(.tooLarge, "\(name): manifest \(manifestDigest) lists \(layers.count) layers, over the limit of \(Self.layerLimit)")
        }
        let configuration = try decode(try blobPath(config.digest), as: ImageConfigurationDocument.self, digest: config.digest)
        var result: [ArchiveImage.Layer] = []
        for layer in layers {
            if layer.mediaType?.contains("encrypted") == true {
                throw ImageImportError(.invalidManifest, "\(name): layer \(layer.digest) is encrypted, which is not supported")
            }
            let path = try blobPath(layer.digest)
            let digest = try fileDigest(path)
            guard digest == layer.digest else {
                throw ImageImportError(.digestMismatch, "\(name): layer \(layer.digest) has content with digest \(digest)")
            }
            result.append(ArchiveImage.Layer(digest: layer.digest, path: root + "/" + path))
        }
        return ArchiveImage(id: id, platform: chosen, configuration: configuration, layers: result)
    }

    private struct DockerArchiveEntry: Decodable {
        var Config: String
        var RepoTags: [String]?
        var Layers: [String]
    }

    private func dockerImage() throws(ImageImportError) -> ArchiveImage {
        let entries = try decode("manifest.json", as: [DockerArchiveEntry].self)
        guard entries.count == 1, let entry = entries.first else {
            let tags = entries.flatMap { $0.RepoTags ?? [] }
            throw ImageImportError(
                .invalidManifest,
                "\(name): holds \(entries.count) images\(tags.isEmpty ? "" : " (\(tags.joined(separator: ", ")))"); save one image per archive")
        }
        guard !entry.Layers.isEmpty else { throw ImageImportError(.invalidManifest, "\(name): manifest.json lists no layers") }
        guard entry.Layers.count <= Self.layerLimit else {
            throw ImageImportError(.tooLarge, "\(name): manifest.json lists \(entry.Layers.count) layers, over the limit of \(Self.layerLimit)")
        }
        let configPath = try resolve(entry.Config)
        let configDigest = try fileDigest(configPath)
        let configuration = try decode(configPath, as: ImageConfigurationDocument.self)
        var layers: [ArchiveImage.Layer] = []
        for layer in entry.Layers {
            let path = try resolve(layer)
            layers.append(ArchiveImage.Layer(digest: try fileDigest(path), path: root + "/" + path))
        }
        // docker save names nothing by a digest of its content but the configuration, which says
        // nothing verifiable of the layer files beside it. The image id is therefore the digest of
        // a manifest made here of the configuration's and the layers' digests, in a media type of
        // this importer's own: it names exactly this content, and can be the id of no image that
        // came with other content (a registry's manifest with these bytes would name the same
        // files, by their digests).
        let synthesised = Self.synthesisedManifest(config: configDigest, layers: layers.map(\.digest))
        guard let id = ImageID(try SHA256Hasher.digest(of: Array(synthesised.utf8))) else {
            throw ImageImportError(.invalidManifest, "\(name): cannot hash the image's manifest")
        }
        let platform = ImagePlatform(
            os: configuration.os ?? "linux", architecture: configuration.architecture ?? "amd64", variant: configuration.variant)
        return ArchiveImage(id: id, platform: platform.description, configuration: configuration, layers: layers)
    }

    /// The manifest a docker-archive's image is named by (see `dockerImage`).
    static func synthesisedManifest(config: String, layers: [String]) -> String {
        let layerList = layers.map { #"{"digest":"\#($0)"}"# }.joined(separator: ",")
        return #"{"schemaVersion":2,"mediaType":"application/vnd.shifter.docker-archive.manifest.v1+json","config":{"digest":"\#(config)"},"layers":[\#(layerList)]}"#
    }

    /// The path in the archive of blob `digest` of an OCI layout.
    private func blobPath(_ digest: String) throws(ImageImportError) -> String {
        guard let id = ImageID(digest), digest.hasPrefix("sha256:") else {
            throw ImageImportError(.invalidManifest, "\(name): digest \(displayQuoted(digest)) is not a sha256 digest")
        }
        return try resolve("blobs/sha256/" + id.hex)
    }

    /// `path` with links followed (a few levels), as a regular file of the unpacked archive.
    private func resolve(_ path: String) throws(ImageImportError) -> String {
        guard var current = ArchiveUnpacker.normalised(path), !current.isEmpty else {
            throw ImageImportError(.unsafePath, "\(name): \(displayQuoted(path)) leaves the archive")
        }
        for _ in 0..<8 {
            if let target = links[current] {
                current = target
                continue
            }
            guard exists(current) else { break }
            return current
        }
        throw ImageImportError(.invalidManifest, "\(name): names \(displayQuoted(path)), which the archive does not hold")
    }

    private func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(root + "/" + path, &status) == 0 && status.st_mode & S_IFMT == S_IFREG
    }

    private func fileDigest(_ path: String) throws(ImageImportError) -> String {
        if let known = digests[path] { return known }
        let digest = try computeDigest(path)
        digests[path] = digest
        return digest
    }

    private func computeDigest(_ path: String) throws(ImageImportError) -> String {
        let input = open(root + "/" + path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard input >= 0 else { throw ImageImportError(.io, "\(name): cannot read \(displayQuoted(path)): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        let hasher = try SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw ImageImportError(.io, "\(name): cannot read \(displayQuoted(path)): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return hasher.finish()
    }

    private func decode<T: Decodable>(_ path: String, as type: T.Type, digest: String? = nil) throws(ImageImportError) -> T {
        let resolved = try resolve(path)
        guard let size = FileOperations.size(root + "/" + resolved), size <= ImageArchiveImporter.documentSizeLimit,
              let data = FileManager.default.contents(atPath: root + "/" + resolved) else {
            throw ImageImportError(.invalidManifest, "\(name): \(displayQuoted(path)) is missing or larger than \(ImageArchiveImporter.documentSizeLimit) bytes")
        }
        if let digest {
            let actual = try SHA256Hasher.digest(of: [UInt8](data))
            guard actual == digest else {
                throw ImageImportError(.digestMismatch, "\(name): blob \(digest) has content with digest \(actual)")
            }
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw ImageImportError(.invalidManifest, "\(name): \(displayQuoted(path)) is not valid JSON of the expected shape")
        }
    }
}
