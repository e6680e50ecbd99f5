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
/// as a tar (oci-archive: `oci-layout`, `index.json`, `blobs/sha256/...`), gzip-, zstd- or
/// xz-compressed or not.
///
/// The archive is read with libarchive, in passes, before anything is written: the first reads its
/// headers and its index (`manifest.json` or `index.json`), the next the manifests the index names,
/// and only the last writes, into a staging directory of the store, exactly the configuration and
/// layers the image needs, each size checked before its data is written. An archive that holds no
/// image, sparse files, too many entries, or blobs larger than their descriptors or the limits say
/// is refused with nothing written. Digests are checked where the format names them, and the layers
/// converted by the same flattener, checks and limits as a pull. Entries are files under the
/// archive's root only: a path that leaves it, and a link that points outside it, are refused.
public struct ImageArchiveImporter: Sendable {
    /// How much of an archive one import reads and writes before its layers are flattened; how far
    /// the layers may then expand is the store's `importLimits`.
    public struct Limits: Sendable, Equatable {
        /// The most bytes one import writes to its staging directory: the files the archive's index
        /// names (the configuration and the layers), each counted before its data is written.
        public var maximumBlobBytes: UInt64
        /// The most entries the archive itself may hold (its layers' entries are `ImportLimits`').
        public var maximumEntries: Int

        /// 32 GiB and 64 Ki entries. `docker save` writes layers uncompressed, so an archive is about
        /// as large as its image: 32 GiB is above the images in common use (tens of GB at most) and
        /// bounds what one import puts on the store's filesystem. An image archive holds a few entries
        /// per layer, and an image at most `ArchiveContents.layerLimit` layers, so 64 Ki leaves room
        /// for a multi-platform layout while a flood of entries costs a second or so of headers.
        public static let standard = Limits(maximumBlobBytes: 32 << 30, maximumEntries: 64 << 10)

        /// Creates limits.
        public init(maximumBlobBytes: UInt64, maximumEntries: Int) {
            self.maximumBlobBytes = maximumBlobBytes
            self.maximumEntries = max(1, maximumEntries)
        }
    }

    /// The store images go into.
    public let store: ImageStore
    /// The import settings (platform, squashfs, access lists); the transport is unused.
    public var options: ImportOptions
    /// How much of the archive one import reads and writes.
    public var limits: Limits

    /// The largest `manifest.json`, `index.json` or `oci-layout`, read in the first pass.
    static let indexSizeLimit = 1 << 20
    /// The largest manifest or configuration read into memory.
    static let documentSizeLimit = 16 * 1024 * 1024

    /// An importer into `store`.
    public init(store: ImageStore, options: ImportOptions = ImportOptions(), limits: Limits = .standard) {
        self.store = store
        self.options = options
        self.limits = limits
    }

    /// Imports the archive open at `descriptor` (a regular file, read from its current offset, more
    /// than once; named `name` in messages) as `reference`.
    public func importArchive(
        _ descriptor: Int32, name: String, as reference: ImageReference, events: (@Sendable (ImportEvent) -> Void)? = nil
    ) throws(ImageImportError) -> ImportResult {
        let scanner = try ArchiveScanner(descriptor: descriptor, name: name, maximumEntries: limits.maximumEntries)
        // Headers and the index first: an archive that is no image, or that is mostly what its index
        // does not name, costs reading and nothing written.
        let contents = ArchiveContents(name: name, listing: try scanner.list(), scanner: scanner)
        let plan = try contents.plan(platform: options.platform, byteLimit: limits.maximumBlobBytes)
        let staging = try store.makeStagingDirectory()
        defer { FileOperations.removeTree(staging) }
        let root = staging + "/archive"
        try FileOperations.makeDirectory(root)
        let digests = try scanner.extract(plan.files, into: root, byteLimit: limits.maximumBlobBytes)
        let image = try contents.image(plan, root: root, digests: digests)
        events?(.resolved(imageID: image.id.digest, platform: image.platform, layers: image.layers.map {
            LayerDescription(digest: $0.digest, size: FileOperations.size($0.path) ?? 0)
        }))
        let converted = try store.withConversionLock(image.id) { () throws(ImageImportError) -> ImportResult? in
            if store.contains(image.id) { return nil }
            return try convert(image, name: name, staging: staging, reference: reference, events: events)
        }
        if let converted { return converted }
        let metadata = try store.admit(image.id, as: reference, userACL: options.userACL, groupACL: options.groupACL)
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

/// Reads an archive with libarchive, one pass at a time from where it starts in its file. It is a
/// regular file, so a pass over an uncompressed tar seeks past the data it skips. Every pass checks
/// each header before its caller sees it, so a pass over a file changed since the last is held to
/// the same rules: the number of entries, paths under the archive's root, files, directories and
/// links only, and no sparse files, which no image archive holds and which let a few kilobytes of
/// archive stand for gigabytes of staging.
struct ArchiveScanner {
    /// What an entry is, as far as finding an image in the archive goes.
    enum Kind: Equatable {
        case file
        case directory
        /// A symbolic or hard link, with its target as a path from the archive's root.
        case link(String)
    }

    /// One entry's header, checked.
    struct Header {
        /// Relative to the archive's root, without `.` and `..`.
        var path: String
        var kind: Kind
        /// The bytes of a file's data.
        var size: Int64
    }

    let name: String
    let descriptor: Int32
    /// Where the archive starts in its file; every pass starts there.
    let start: off_t
    let maximumEntries: Int

    static let bufferSize = 1 << 20

    init(descriptor: Int32, name: String, maximumEntries: Int) throws(ImageImportError) {
        let start = lseek(descriptor, 0, SEEK_CUR)
        guard start >= 0 else {
            throw ImageImportError(.io, "\(name): the archive is read more than once, so it must be a regular file: \(String(cString: strerror(errno)))")
        }
        self.name = name
        self.descriptor = descriptor
        self.start = start
        self.maximumEntries = maximumEntries
    }

    /// The first pass: every entry's header, and the bytes of the index files at the archive's root.
    /// Writes nothing.
    func list() throws(ImageImportError) -> ArchiveListing {
        var listing = ArchiveListing()
        try scan { (header: Header, data: ArchiveEntryData) throws(ImageImportError) in
            guard listing.add(header) else {
                throw ImageImportError(.invalidManifest, "\(name): entry \(displayQuoted(header.path)) appears twice in the archive")
            }
            guard header.kind == .file, ArchiveListing.indexNames.contains(header.path) else { return }
            guard header.size <= ImageArchiveImporter.indexSizeLimit else {
                throw ImageImportError(
                    .invalidManifest,
                    "\(name): entry \(displayQuoted(header.path)) is \(header.size) bytes, more than an archive's index may be (\(ImageArchiveImporter.indexSizeLimit))")
            }
            listing.indexes[header.path] = try data.bytes(limit: ImageArchiveImporter.indexSizeLimit)
        }
        return listing
    }

    /// The bytes of the files at `paths` (from the archive's root, links resolved), each at most
    /// `limit` bytes, in one pass; those the archive does not hold are missing. Writes nothing.
    func documents(_ paths: Set<String>, limit: Int) throws(ImageImportError) -> [String: [UInt8]] {
        var documents: [String: [UInt8]] = [:]
        try scan { (header: Header, data: ArchiveEntryData) throws(ImageImportError) in
            guard header.kind == .file, paths.contains(header.path), documents[header.path] == nil else { return }
            guard header.size <= limit else {
                throw ImageImportError(.invalidManifest, "\(name): entry \(displayQuoted(header.path)) is \(header.size) bytes, more than a manifest may be (\(limit))")
            }
            documents[header.path] = try data.bytes(limit: limit)
        }
        return documents
    }

    /// The last pass: writes the files at the paths of `files` (with their sizes as the first pass
    /// found them) under `root`, and returns their sha256 digests. An entry whose size is not the
    /// one expected, or that would take the bytes written past `byteLimit`, is refused before any
    /// of its data is written.
    func extract(_ files: [String: Int64], into root: String, byteLimit: UInt64) throws(ImageImportError) -> [String: String] {
        var digests: [String: String] = [:]
        var written: UInt64 = 0
        try scan { (header: Header, data: ArchiveEntryData) throws(ImageImportError) in
            guard header.kind == .file, let expected = files[header.path], digests[header.path] == nil else { return }
            // The file is the user's: it may have changed since the first pass.
            guard header.size == expected else {
                throw ImageImportError(
                    .invalidManifest, "\(name): entry \(displayQuoted(header.path)) is \(header.size) bytes, \(expected) when the archive was first read")
            }
            let (total, overflow) = written.addingReportingOverflow(UInt64(header.size))
            guard !overflow, total <= byteLimit else { throw Self.overLimit(name, entry: header.path, bytes: total, limit: byteLimit) }
            written = total
            digests[header.path] = try writeFile(data, of: header, to: root + "/" + header.path, root: root)
        }
        if let missing = files.keys.sorted().first(where: { digests[$0] == nil }) {
            throw ImageImportError(.invalidManifest, "\(name): names \(displayQuoted(missing)), which the archive does not hold")
        }
        return digests
    }

    /// The refusal of an import whose files add up to more than the limit.
    static func overLimit(_ name: String, entry: String, bytes: UInt64, limit: UInt64) -> ImageImportError {
        ImageImportError(
            .tooLarge,
            "\(name): entry \(displayQuoted(entry)) takes the files the archive's index names to \(bytes) bytes, more than \(limit), the limit for an import (archiveImportSizeLimit)")
    }

    /// One pass over the archive from its start: `visit` gets each entry's header, checked, and may
    /// read its data.
    private func scan(_ visit: (Header, ArchiveEntryData) throws(ImageImportError) -> Void) throws(ImageImportError) {
        guard lseek(descriptor, start, SEEK_SET) == start else {
            throw ImageImportError(.io, "\(name): cannot read the archive again from its start: \(String(cString: strerror(errno)))")
        }
        guard let archive = archive_read_new() else { throw ImageImportError(.io, "\(name): cannot create a libarchive reader") }
        defer { archive_read_free(archive) }
        for enable in [archive_read_support_filter_gzip, archive_read_support_filter_zstd, archive_read_support_filter_xz,
                       archive_read_support_format_tar, archive_read_support_format_gnutar] where enable(archive) != ARCHIVE_OK {
            throw ImageImportError(.io, "\(name): libarchive: \(Self.lastError(archive))")
        }
        guard archive_read_open_fd(archive, descriptor, Self.bufferSize) == ARCHIVE_OK else {
            throw ImageImportError(.invalidLayer, "\(name): not a tar archive: \(Self.lastError(archive))")
        }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        var entries = 0
        while true {
            var entry: OpaquePointer?
            let status = archive_read_next_header(archive, &entry)
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                throw ImageImportError(.invalidLayer, "\(name): not a readable tar archive: \(Self.lastError(archive))")
            }
            entries += 1
            guard entries <= maximumEntries else {
                throw ImageImportError(.tooLarge, "\(name): more than \(maximumEntries) entries, the limit for an image archive (archiveImportEntryLimit)")
            }
            guard let raw = archive_entry_pathname(entry) else { continue }
            let text = String(cString: raw)
            guard let path = Self.normalised(text) else {
                throw ImageImportError(.unsafePath, "\(name): entry \(displayQuoted(text)) leaves the archive")
            }
            if path.isEmpty { continue }
            guard let kind = try entryKind(of: entry, path: path, text: text) else { continue }
            let size = archive_entry_size_is_set(entry) != 0 ? max(0, archive_entry_size(entry)) : 0
            try visit(Header(path: path, kind: kind, size: size), ArchiveEntryData(archive: archive, buffer: buffer, name: name, entry: text))
        }
    }

    /// What `entry` is: nil for a symbolic link without a target, which is skipped.
    private func entryKind(of entry: OpaquePointer, path: String, text: String) throws(ImageImportError) -> Kind? {
        // A hard link names an earlier entry of the archive, by its path from the root.
        if let target = archive_entry_hardlink(entry) {
            guard let resolved = Self.normalised(String(cString: target)), !resolved.isEmpty else {
                throw ImageImportError(.unsafePath, "\(name): link \(displayQuoted(text)) points outside the archive")
            }
            return .link(resolved)
        }
        // The AE_IF* macros carry casts Swift cannot import; their values are the POSIX ones.
        switch archive_entry_filetype(entry) & 0o170000 {
        case 0o040000:
            return .directory
        case 0o120000:
            guard let raw = archive_entry_symlink(entry) else { return nil }
            let target = String(cString: raw)
            let parent = path.split(separator: "/").dropLast().joined(separator: "/")
            let joined = target.hasPrefix("/") ? target : (parent.isEmpty ? "" : parent + "/") + target
            guard let resolved = Self.normalised(joined) else {
                throw ImageImportError(.unsafePath, "\(name): link \(displayQuoted(text)) points outside the archive")
            }
            return .link(resolved)
        case 0o100000:
            // A sparse entry's holes are not in the archive: a few kilobytes could make gigabytes
            // of zeros in staging. No tool that writes image archives makes one.
            guard archive_entry_sparse_count(entry) == 0 else {
                throw ImageImportError(.invalidLayer, "\(name): entry \(displayQuoted(text)) is a sparse file, which no image archive holds")
            }
            return .file
        default:
            throw ImageImportError(.invalidLayer, "\(name): entry \(displayQuoted(text)) is neither a file, a directory nor a link")
        }
    }

    /// Writes the data of the file `header` to `destination`, a new file, and returns its sha256
    /// digest; never more bytes than its header says.
    private func writeFile(_ data: ArchiveEntryData, of header: Header, to destination: String, root: String) throws(ImageImportError) -> String {
        try makeParents(of: header.path, under: root)
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard output >= 0 else {
            throw ImageImportError(.io, "\(name): cannot write \(displayQuoted(header.path)) to the staging directory: \(String(cString: strerror(errno)))")
        }
        defer { close(output) }
        let hasher = try SHA256Hasher()
        var count: Int64 = 0
        try data.read { (chunk: UnsafeRawBufferPointer) throws(ImageImportError) in
            count += Int64(chunk.count)
            guard count <= header.size else {
                throw ImageImportError(.invalidLayer, "\(name): entry \(displayQuoted(header.path)) holds more data than its header's \(header.size) bytes")
            }
            hasher.update(chunk)
            if let failure = FileOperations.writeAll(output, chunk) {
                throw ImageImportError(.io, "\(name): cannot write \(displayQuoted(header.path)) to the staging directory: \(failure)")
            }
        }
        return hasher.finish()
    }

    private func makeParents(of path: String, under root: String) throws(ImageImportError) {
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

/// The data of the entry a pass is at.
struct ArchiveEntryData {
    let archive: OpaquePointer
    let buffer: UnsafeMutableRawPointer
    /// The archive's and the entry's names, for messages.
    let name: String
    let entry: String

    /// Reads the data, a chunk at a time.
    func read(_ chunk: (UnsafeRawBufferPointer) throws(ImageImportError) -> Void) throws(ImageImportError) {
        while true {
            let count = archive_read_data(archive, buffer, ArchiveScanner.bufferSize)
            if count == 0 { return }
            guard count > 0 else {
                throw ImageImportError(.invalidLayer, "\(name): reading \(displayQuoted(entry)): \(ArchiveScanner.lastError(archive))")
            }
            try chunk(UnsafeRawBufferPointer(start: buffer, count: count))
        }
    }

    /// The data, at most `limit` bytes.
    func bytes(limit: Int) throws(ImageImportError) -> [UInt8] {
        var bytes: [UInt8] = []
        try read { (chunk: UnsafeRawBufferPointer) throws(ImageImportError) in
            guard bytes.count + chunk.count <= limit else {
                throw ImageImportError(.invalidManifest, "\(name): entry \(displayQuoted(entry)) holds more than \(limit) bytes")
            }
            bytes.append(contentsOf: chunk)
        }
        return bytes
    }
}

/// What the first pass over an archive found: its entries by path, and its index files' bytes.
struct ArchiveListing {
    /// The index files at the archive's root, read in the first pass.
    static let indexNames: Set<String> = ["manifest.json", "index.json", "oci-layout"]

    /// Regular files, with their sizes.
    var files: [String: Int64] = [:]
    var directories: Set<String> = []
    /// Symbolic and hard links, with their targets as paths from the archive's root.
    var links: [String: String] = [:]
    /// The bytes of the index files the archive holds.
    var indexes: [String: [UInt8]] = [:]

    /// Adds `header`; false when its path is there already (but as a directory twice).
    mutating func add(_ header: ArchiveScanner.Header) -> Bool {
        let path = header.path
        if header.kind == .directory, directories.contains(path) { return true }
        guard files[path] == nil, links[path] == nil, !directories.contains(path) else { return false }
        switch header.kind {
        case .file: files[path] = header.size
        case .directory: directories.insert(path)
        case .link(let target): links[path] = target
        }
        return true
    }
}

/// An image found in an archive.
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

/// The image an archive's index names: first the plan of which files to extract (from the first
/// pass's listing and the manifests, before anything is written), then the image they make.
final class ArchiveContents {
    /// The files of the image in the archive, found through its index.
    struct Plan {
        enum Format {
            /// An OCI layout's image, named by its manifest's digest, for `platform`.
            case oci(manifestDigest: String, platform: String)
            case docker
        }

        struct Layer {
            /// From the archive's root, links resolved.
            var path: String
            /// The digest the manifest names it by (an OCI layout's), or nil (docker save's).
            var digest: String?
        }

        var format: Format
        var configPath: String
        /// The digest the manifest names the configuration by (an OCI layout's), or nil.
        var configDigest: String?
        /// Bottom first.
        var layers: [Layer]
        /// Every file to extract, with its size.
        var files: [String: Int64]
    }

    let name: String
    let listing: ArchiveListing
    let scanner: ArchiveScanner
    /// The most layers an image may have (the kernel's overlay limit is far lower; a registry
    /// image with more does not exist in practice).
    static let layerLimit = 1000

    init(name: String, listing: ArchiveListing, scanner: ArchiveScanner) {
        self.name = name
        self.listing = listing
        self.scanner = scanner
    }

    /// What to extract for the archive's image: an OCI layout's (by `index.json`) or a
    /// docker-archive's (by `manifest.json`); refused when the files add up to more than `byteLimit`.
    func plan(platform: ImagePlatform, byteLimit: UInt64) throws(ImageImportError) -> Plan {
        let has = { (name: String) in self.listing.indexes[name] != nil }
        let plan: Plan
        if has("oci-layout") || has("index.json") && !has("manifest.json") {
            plan = try ociPlan(platform: platform)
        } else if has("manifest.json") {
            plan = try dockerPlan()
        } else {
            throw ImageImportError(
                .invalidManifest, "\(name): has neither index.json (an OCI image layout) nor manifest.json (docker save); is it an image archive?")
        }
        var total: UInt64 = 0
        for path in plan.files.keys.sorted() {
            let (sum, overflow) = total.addingReportingOverflow(UInt64(plan.files[path] ?? 0))
            guard !overflow, sum <= byteLimit else { throw ArchiveScanner.overLimit(name, entry: path, bytes: sum, limit: byteLimit) }
            total = sum
        }
        return plan
    }

    private func ociPlan(platform: ImagePlatform) throws(ImageImportError) -> Plan {
        guard let indexBytes = listing.indexes["index.json"] else {
            throw ImageImportError(.invalidManifest, "\(name): has oci-layout but no index.json")
        }
        let index = try decode(indexBytes, named: "index.json", as: ManifestDocument.self)
        var manifestDigest: String?
        var chosen = platform.description
        var document = index
        var source = "index.json"
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
            let path = try blobPath(entry.digest)
            try checkSize(of: path, entry, source: source, limit: ImageArchiveImporter.documentSizeLimit)
            guard let bytes = try scanner.documents([path], limit: ImageArchiveImporter.documentSizeLimit)[path] else {
                throw ImageImportError(.invalidManifest, "\(name): names \(displayQuoted(path)), which the archive does not hold")
            }
            document = try decode(bytes, named: path, as: ManifestDocument.self, digest: entry.digest)
            manifestDigest = entry.digest
            source = "manifest \(entry.digest)"
        }
        guard let manifestDigest, ImageID(manifestDigest) != nil else {
            throw ImageImportError(.invalidManifest, "\(name): index.json names no image manifest")
        }
        guard let config = document.config, let layers = document.layers, !layers.isEmpty else {
            throw ImageImportError(.invalidManifest, "\(name): manifest \(manifestDigest) has no config or no layers")
        }
        guard layers.count <= Self.layerLimit else {
            throw ImageImportError(.tooLarge, "\(name): manifest \(manifestDigest) lists \(layers.count) layers, over the limit of \(Self.layerLimit)")
        }
        let configPath = try blobPath(config.digest)
        try checkSize(of: configPath, config, source: source, limit: ImageArchiveImporter.documentSizeLimit)
        var files = [configPath: config.size]
        var result: [Plan.Layer] = []
        for layer in layers {
            if layer.mediaType?.contains("encrypted") == true {
                throw ImageImportError(.invalidManifest, "\(name): layer \(layer.digest) is encrypted, which is not supported")
            }
            let path = try blobPath(layer.digest)
            try checkSize(of: path, layer, source: source)
            files[path] = layer.size
            result.append(Plan.Layer(path: path, digest: layer.digest))
        }
        return Plan(
            format: .oci(manifestDigest: manifestDigest, platform: chosen), configPath: configPath, configDigest: config.digest, layers: result,
            files: files)
    }

    private struct DockerArchiveEntry: Decodable {
        var Config: String
        var RepoTags: [String]?
        var Layers: [String]
    }

    private func dockerPlan() throws(ImageImportError) -> Plan {
        let entries = try decode(listing.indexes["manifest.json"] ?? [], named: "manifest.json", as: [DockerArchiveEntry].self)
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
        let configSize = listing.files[configPath] ?? 0
        guard configSize <= ImageArchiveImporter.documentSizeLimit else {
            throw ImageImportError(
                .invalidManifest,
                "\(name): entry \(displayQuoted(configPath)) is \(configSize) bytes, more than a configuration may be (\(ImageArchiveImporter.documentSizeLimit))")
        }
        var files = [configPath: configSize]
        var layers: [Plan.Layer] = []
        for layer in entry.Layers {
            let path = try resolve(layer)
            files[path] = listing.files[path] ?? 0
            layers.append(Plan.Layer(path: path, digest: nil))
        }
        return Plan(format: .docker, configPath: configPath, configDigest: nil, layers: layers, files: files)
    }

    /// The image the extracted files of `plan` make, under `root`, with their `digests`.
    func image(_ plan: Plan, root: String, digests: [String: String]) throws(ImageImportError) -> ArchiveImage {
        let configDigest = digests[plan.configPath] ?? ""
        if let expected = plan.configDigest, configDigest != expected {
            throw ImageImportError(.digestMismatch, "\(name): blob \(expected) has content with digest \(configDigest)")
        }
        let configBytes = FileManager.default.contents(atPath: root + "/" + plan.configPath).map { [UInt8]($0) }
        let configuration = try decode(configBytes ?? [], named: plan.configPath, as: ImageConfigurationDocument.self)
        var layers: [ArchiveImage.Layer] = []
        for layer in plan.layers {
            let digest = digests[layer.path] ?? ""
            if let expected = layer.digest, digest != expected {
                throw ImageImportError(.digestMismatch, "\(name): layer \(expected) has content with digest \(digest)")
            }
            layers.append(ArchiveImage.Layer(digest: digest, path: root + "/" + layer.path))
        }
        switch plan.format {
        case .oci(let manifestDigest, let platform):
            guard let id = ImageID(manifestDigest) else {
                throw ImageImportError(.invalidManifest, "\(name): index.json names no image manifest")
            }
            return ArchiveImage(id: id, platform: platform, configuration: configuration, layers: layers)
        case .docker:
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
    }

    /// The manifest a docker-archive's image is named by (see `image`).
    static func synthesisedManifest(config: String, layers: [String]) -> String {
        let layerList = layers.map { #"{"digest":"\#($0)"}"# }.joined(separator: ",")
        return #"{"schemaVersion":2,"mediaType":"application/vnd.shifter.docker-archive.manifest.v1+json","config":{"digest":"\#(config)"},"layers":[\#(layerList)]}"#
    }

    /// Refuses the file at `path` unless it is as large as `descriptor` (named in `source`) says,
    /// and, with `limit`, at most that large.
    private func checkSize(of path: String, _ descriptor: ContentDescriptor, source: String, limit: Int? = nil) throws(ImageImportError) {
        let size = listing.files[path] ?? 0
        guard size == descriptor.size else {
            throw ImageImportError(
                .digestMismatch, "\(name): entry \(displayQuoted(path)) is \(size) bytes, but \(source) says \(descriptor.size) for blob \(descriptor.digest)")
        }
        if let limit, size > limit {
            throw ImageImportError(.invalidManifest, "\(name): blob \(descriptor.digest) is \(size) bytes, more than a manifest or configuration may be (\(limit))")
        }
    }

    /// The path in the archive of blob `digest` of an OCI layout.
    private func blobPath(_ digest: String) throws(ImageImportError) -> String {
        guard let id = ImageID(digest), digest.hasPrefix("sha256:") else {
            throw ImageImportError(.invalidManifest, "\(name): digest \(displayQuoted(digest)) is not a sha256 digest")
        }
        return try resolve("blobs/sha256/" + id.hex)
    }

    /// `path` with links followed (a few levels), as a regular file of the archive.
    private func resolve(_ path: String) throws(ImageImportError) -> String {
        guard var current = ArchiveScanner.normalised(path), !current.isEmpty else {
            throw ImageImportError(.unsafePath, "\(name): \(displayQuoted(path)) leaves the archive")
        }
        for _ in 0..<8 {
            if let target = listing.links[current] {
                current = target
                continue
            }
            if listing.files[current] != nil { return current }
            if listing.directories.contains(current) {
                throw ImageImportError(.invalidManifest, "\(name): names \(displayQuoted(path)), which is a directory in the archive, not a file")
            }
            break
        }
        throw ImageImportError(.invalidManifest, "\(name): names \(displayQuoted(path)), which the archive does not hold")
    }

    private func decode<T: Decodable>(_ bytes: [UInt8], named path: String, as type: T.Type, digest: String? = nil) throws(ImageImportError) -> T {
        if let digest {
            let actual = try SHA256Hasher.digest(of: bytes)
            guard actual == digest else {
                throw ImageImportError(.digestMismatch, "\(name): blob \(digest) has content with digest \(actual)")
            }
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw ImageImportError(.invalidManifest, "\(name): \(displayQuoted(path)) is not valid JSON of the expected shape")
        }
    }
}
