import CArchive
import CGzipStream

#if canImport(Glibc)
import Glibc
#endif

/// Reads the entries of one layer blob (a tar, plain or compressed with gzip, zstd, xz or bzip2)
/// as a stream, with libarchive.
///
/// Only the tar formats are enabled: a layer in any other archive format is an error, not
/// something to guess at. Compression is detected from the data, not from a media type, because
/// registries are known to label zstd layers as gzip and the other way round.
///
/// gzip, the compression of nearly every layer, is not left to libarchive's zlib: ISA-L's igzip
/// inflates it several times faster, on a thread of its own a few megabytes ahead of the tar
/// parsing (`GzipStream`), and libarchive reads the tar from it.
final class TarLayerReader {
    /// The layer as named in error messages.
    let name: String
    private let archive: OpaquePointer
    private var entry: OpaquePointer?
    private var isOpen = false
    private var gzip: OpaquePointer?

    /// How gzip layers are inflated: by ISA-L on a thread of its own (the default), or by
    /// libarchive's zlib on the reading thread.
    enum GzipInflater: Sendable { case isal, zlib }

    /// Opens the layer blob at `path` for reading.
    init(path: String, name: String, gzip inflater: GzipInflater = .isal) throws(ImageImportError) {
        self.name = name
        guard let archive = archive_read_new() else {
            throw ImageImportError(.invalidLayer, "\(name): cannot create a libarchive reader")
        }
        self.archive = archive
        for enable in [archive_read_support_filter_gzip, archive_read_support_filter_zstd,
                       archive_read_support_filter_xz, archive_read_support_filter_bzip2,
                       archive_read_support_format_tar, archive_read_support_format_gnutar] {
            if enable(archive) != ARCHIVE_OK {
                throw ImageImportError(.invalidLayer, "\(name): libarchive: \(lastError)")
            }
        }
        if inflater == .isal, let stream = try Self.openGzip(path: path, name: name) {
            gzip = stream
            let opened = archive_read_open(archive, UnsafeMutableRawPointer(stream), nil, { _, client, buffer in
                guard let client, let buffer else { return -1 }
                return shifter_gzip_read(OpaquePointer(client), buffer)
            }, nil)
            if opened != ARCHIVE_OK {
                throw ImageImportError(.invalidLayer, "\(name): not a readable tar: \(lastError)")
            }
        } else if archive_read_open_filename(archive, path, 1 << 20) != ARCHIVE_OK {
            throw ImageImportError(.invalidLayer, "\(name): not a readable tar: \(lastError)")
        }
        isOpen = true
    }

    deinit {
        archive_read_free(archive)
        shifter_gzip_close(gzip)
    }

    /// The file at `path` inflated by ISA-L when it starts with the gzip magic; nil for any other.
    private static func openGzip(path: String, name: String) throws(ImageImportError) -> OpaquePointer? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ImageImportError(.invalidLayer, "\(name): cannot open \(path): \(String(cString: strerror(errno)))")
        }
        var magic: [UInt8] = [0, 0]
        guard pread(fd, &magic, 2, 0) == 2, magic == [0x1F, 0x8B] else {
            close(fd)
            return nil
        }
        // 8 buffers of 1 MiB: the inflate runs up to 8 MiB ahead of the tar parsing.
        guard let stream = shifter_gzip_open(fd, 1 << 20, 8) else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ImageImportError(.invalidLayer, "\(name): cannot start a gzip thread: \(reason)")
        }
        return stream
    }

    /// The next entry's header, or `nil` at the end of the tar. Any data of the previous entry that
    /// was not read is skipped.
    func next() throws(ImageImportError) -> LayerEntryHeader? {
        var current: OpaquePointer?
        let status = archive_read_next_header(archive, &current)
        if status == ARCHIVE_EOF { return nil }
        // ARCHIVE_WARN is a header libarchive could read but had remarks about (an unknown pax key, a
        // name it could not convert to the locale): the entry itself is usable.
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let current else {
            throw ImageImportError(.invalidLayer, "\(name): not a readable tar: \(lastError)")
        }
        entry = current
        return try header(of: current)
    }

    /// Reads the current entry's data, handing each chunk to `consume`.
    func readData(_ consume: (UnsafeRawBufferPointer) throws(ImageImportError) -> Void, path: [UInt8]) throws(ImageImportError) {
        let bufferSize = 1 << 17
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = archive_read_data(archive, buffer, bufferSize)
            if count == 0 { return }
            if count < 0 {
                throw ImageImportError(.invalidLayer, "\(name): reading the data of \(displayQuoted(path)): \(lastError)")
            }
            try consume(UnsafeRawBufferPointer(start: buffer, count: count))
        }
    }

    /// Bytes of the decompressed tar stream consumed so far; the corresponding C function is
    /// `archive_filter_bytes(a, 0)`.
    var decompressedBytes: UInt64 {
        UInt64(max(0, archive_filter_bytes(archive, 0)))
    }

    /// The data size the current entry's header declares (for a sparse file, its full size), or 0.
    var currentEntrySize: UInt64 {
        guard let entry, archive_entry_size_is_set(entry) != 0 else { return 0 }
        return UInt64(max(0, archive_entry_size(entry)))
    }

    /// libarchive's message, or the inflate thread's where it failed: libarchive only sees that
    /// its read callback returned -1.
    private var lastError: String {
        if let gzip, let message = shifter_gzip_error(gzip) { return String(cString: message) }
        if let message = archive_error_string(archive) { return String(cString: message) }
        return "unknown libarchive error"
    }

    private func header(of entry: OpaquePointer) throws(ImageImportError) -> LayerEntryHeader {
        guard let path = Self.bytes(archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry)) else {
            throw ImageImportError(.invalidLayer, "\(name): an entry has no path name")
        }
        let kind: LayerEntryHeader.Kind
        if let target = Self.bytes(archive_entry_hardlink_utf8(entry) ?? archive_entry_hardlink(entry)) {
            kind = .hardLink(target: target)
        } else {
            // The AE_IF* macros carry casts Swift cannot import; their values are the POSIX ones.
            switch archive_entry_filetype(entry) & 0o170000 {
            case 0o100000: kind = .regularFile
            case 0o040000: kind = .directory
            case 0o120000:
                kind = .symbolicLink(target: Self.bytes(archive_entry_symlink_utf8(entry) ?? archive_entry_symlink(entry)) ?? [])
            case 0o010000: kind = .fifo
            case 0o140000: kind = .socket
            case 0o020000: kind = .characterDevice
            case 0o060000: kind = .blockDevice
            default:
                throw ImageImportError(.invalidLayer, "\(name): entry \(displayQuoted(path)) has an unknown file type")
            }
        }
        let metadata = EntryMetadata(
            permissions: UInt16(truncatingIfNeeded: archive_entry_perm(entry)),
            uid: Self.clampedID(archive_entry_uid(entry)),
            gid: Self.clampedID(archive_entry_gid(entry)),
            modificationTime: UInt32(clamping: max(0, Int64(archive_entry_mtime(entry)))),
            extendedAttributes: extendedAttributes(of: entry))
        return LayerEntryHeader(path: path, kind: kind, metadata: metadata)
    }

    private func extendedAttributes(of entry: OpaquePointer) -> [ExtendedAttribute] {
        guard archive_entry_xattr_reset(entry) > 0 else { return [] }
        var attributes: [ExtendedAttribute] = []
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK {
            guard let name else { continue }
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
            let attribute = ExtendedAttribute(name: String(cString: name), value: bytes)
            // libarchive's pax writer stores each xattr twice (LIBARCHIVE.xattr and SCHILY.xattr), and
            // its reader returns both.
            if let index = attributes.firstIndex(where: { $0.name == attribute.name }) {
                attributes[index] = attribute
            } else {
                attributes.append(attribute)
            }
        }
        return attributes
    }

    private static func bytes(_ text: UnsafePointer<CChar>?) -> [UInt8]? {
        guard let text else { return nil }
        return Array(UnsafeRawBufferPointer(start: text, count: strlen(text)))
    }

    private static func clampedID(_ id: Int64) -> UInt32 {
        UInt32(clamping: max(0, id))
    }
}
