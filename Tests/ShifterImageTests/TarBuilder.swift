import CArchive
import Foundation

/// One entry of a tar that a test builds.
struct TarEntry {
    enum Kind {
        case file(Data)
        case directory
        case symlink(String)
        case hardlink(String)
        case fifo
        case characterDevice
    }

    var path: String
    var kind: Kind
    var mode: UInt32
    var uid: Int64 = 0
    var gid: Int64 = 0
    var mtime: Int = 1_700_000_000
    var xattrs: [(String, [UInt8])] = []

    static func file(_ path: String, _ text: String, mode: UInt32 = 0o644, uid: Int64 = 0, gid: Int64 = 0,
                     xattrs: [(String, [UInt8])] = []) -> TarEntry {
        TarEntry(path: path, kind: .file(Data(text.utf8)), mode: mode, uid: uid, gid: gid, xattrs: xattrs)
    }

    static func file(_ path: String, data: Data, mode: UInt32 = 0o644) -> TarEntry {
        TarEntry(path: path, kind: .file(data), mode: mode)
    }

    static func directory(_ path: String, mode: UInt32 = 0o755, uid: Int64 = 0, gid: Int64 = 0, mtime: Int = 1_700_000_000) -> TarEntry {
        TarEntry(path: path, kind: .directory, mode: mode, uid: uid, gid: gid, mtime: mtime)
    }

    static func symlink(_ path: String, to target: String, mode: UInt32 = 0o777) -> TarEntry {
        TarEntry(path: path, kind: .symlink(target), mode: mode)
    }

    static func hardlink(_ path: String, to target: String) -> TarEntry {
        TarEntry(path: path, kind: .hardlink(target), mode: 0o644)
    }

    static func fifo(_ path: String) -> TarEntry {
        TarEntry(path: path, kind: .fifo, mode: 0o600)
    }

    static func device(_ path: String) -> TarEntry {
        TarEntry(path: path, kind: .characterDevice, mode: 0o666)
    }

    static func whiteout(_ path: String) -> TarEntry {
        let url = URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: "/"))
        let parent = url.deletingLastPathComponent().path.dropFirst()
        let name = ".wh." + url.lastPathComponent
        return .file(parent.isEmpty ? name : parent + "/" + name, "")
    }

    static func opaque(_ directory: String) -> TarEntry {
        .file(directory + "/.wh..wh..opq", "")
    }
}

/// Writes tars for tests with libarchive, including entries no well-behaved tool would write.
enum TarBuilder {
    enum Compression { case none, gzip, zstd }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func write(_ entries: [TarEntry], to path: String, compression: Compression = .gzip) throws {
        guard let archive = archive_write_new() else { throw Failure(description: "archive_write_new failed") }
        defer { archive_write_free(archive) }
        archive_write_set_format_pax_restricted(archive)
        switch compression {
        case .none: break
        case .gzip: archive_write_add_filter_gzip(archive)
        case .zstd: archive_write_add_filter_zstd(archive)
        }
        guard archive_write_open_filename(archive, path) == ARCHIVE_OK else {
            throw Failure(description: "cannot open \(path): " + String(cString: archive_error_string(archive)))
        }
        for item in entries {
            guard let entry = archive_entry_new() else { throw Failure(description: "archive_entry_new failed") }
            defer { archive_entry_free(entry) }
            archive_entry_copy_pathname(entry, item.path)
            archive_entry_set_perm(entry, item.mode)
            archive_entry_set_uid(entry, item.uid)
            archive_entry_set_gid(entry, item.gid)
            archive_entry_set_mtime(entry, item.mtime, 0)
            for (name, value) in item.xattrs {
                value.withUnsafeBytes { archive_entry_xattr_add_entry(entry, name, $0.baseAddress, $0.count) }
            }
            var data = Data()
            switch item.kind {
            case .file(let content):
                archive_entry_set_filetype(entry, 0o100000)
                archive_entry_set_size(entry, Int64(content.count))
                data = content
            case .directory:
                archive_entry_set_filetype(entry, 0o040000)
            case .symlink(let target):
                archive_entry_set_filetype(entry, 0o120000)
                archive_entry_copy_symlink(entry, target)
            case .hardlink(let target):
                archive_entry_set_filetype(entry, 0o100000)
                archive_entry_copy_hardlink(entry, target)
                archive_entry_set_size(entry, 0)
            case .fifo:
                archive_entry_set_filetype(entry, 0o010000)
            case .characterDevice:
                archive_entry_set_filetype(entry, 0o020000)
            }
            guard archive_write_header(archive, entry) == ARCHIVE_OK else {
                throw Failure(description: "writing header \(item.path): " + String(cString: archive_error_string(archive)))
            }
            if !data.isEmpty {
                let written = data.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) }
                guard written == data.count else { throw Failure(description: "writing data of \(item.path)") }
            }
        }
        guard archive_write_close(archive) == ARCHIVE_OK else {
            throw Failure(description: "closing \(path): " + String(cString: archive_error_string(archive)))
        }
    }
}
