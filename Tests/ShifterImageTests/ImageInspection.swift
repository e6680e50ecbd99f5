import CArchive
import Foundation
@testable import ShifterImage

#if canImport(Glibc)
import Glibc
#endif

/// A scratch directory removed when the test ends.
final class ScratchDirectory {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/shifterimage-test-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw TarBuilder.Failure(description: "mkdtemp failed") }
        path = String(cString: made)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    func file(_ name: String) -> String { path + "/" + name }
}

/// One path in an image, as squashfs-tools' `unsquashfs` reads it back.
struct InspectedEntry: Equatable {
    /// `-`, `d`, `l`, `p`, `s`, `c`, `b`.
    var type: Character
    /// The `ls -l` permission string, such as `rwsr-xr-x`.
    var permissions: String
    var owner: String
    var linkTarget: String?
    var content: Data?
    var inode: UInt64
    var xattrs: [String: [UInt8]]
}

/// Whether squashfs-tools is installed; the image tests read images back with it.
let unsquashfsPath: String? = ["/usr/bin/unsquashfs", "/usr/sbin/unsquashfs", "/bin/unsquashfs"]
    .first { FileManager.default.isExecutableFile(atPath: $0) }

/// Runs a program and returns its standard output; throws with its standard error if it fails.
@discardableResult
func run(_ executable: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let outData = output.fileHandleForReading.readDataToEndOfFile()
    let errData = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TarBuilder.Failure(
            description: "\(executable) \(arguments.joined(separator: " ")) failed: " + (String(data: errData, encoding: .utf8) ?? ""))
    }
    return String(decoding: outData, as: UTF8.self)
}

/// Reads a squashfs image back with `unsquashfs`: a listing for types, modes and owners, and an
/// extraction for contents, hard links and xattrs.
func inspect(_ image: String, scratch: ScratchDirectory) throws -> [String: InspectedEntry] {
    guard let unsquashfs = unsquashfsPath else { throw TarBuilder.Failure(description: "unsquashfs is not installed") }
    let listing = try run(unsquashfs, ["-lln", "-d", "", image])
    let root = scratch.file("extracted-\(UUID().uuidString)")
    try run(unsquashfs, ["-no-progress", "-quiet", "-no-xattrs", "-d", root, image])
    let tarred = try readThroughSqfs2tar(image, scratch: scratch)
    var entries: [String: InspectedEntry] = [:]
    for line in listing.split(separator: "\n") {
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        // The root is listed with an empty path, so its line has one field less.
        guard fields.count >= 5, let modeField = fields.first, modeField.count == 10 else { continue }
        var path = fields.count == 6 ? String(fields[5]) : ""
        var target: String?
        if modeField.first == "l", let arrow = path.range(of: " -> ") {
            target = String(path[arrow.upperBound...])
            path = String(path[..<arrow.lowerBound])
        }
        if path.isEmpty { path = "/" }
        let onDisk = root + (path == "/" ? "" : path)
        var status = stat()
        guard lstat(onDisk, &status) == 0 else { throw TarBuilder.Failure(description: "extracted \(path) is missing") }
        var content: Data?
        if modeField.first == "-" { content = FileManager.default.contents(atPath: onDisk) }
        entries[path] = InspectedEntry(
            type: modeField.first ?? "?", permissions: String(modeField.dropFirst()), owner: String(fields[1]),
            linkTarget: target, content: content, inode: UInt64(status.st_ino), xattrs: tarred[path]?.xattrs ?? [:])
    }
    return entries
}

/// A path as `sqfs2tar` (libsquashfs' own reader) gives it back.
struct TarredEntry {
    var content: Data
    var xattrs: [String: [UInt8]]
}

/// Reads an image back through `sqfs2tar`'s pax output, which keeps xattrs of every namespace (an
/// extraction as a normal user could not set `trusted.` or `security.` ones).
func readThroughSqfs2tar(_ image: String, scratch: ScratchDirectory) throws -> [String: TarredEntry] {
    let tarPath = scratch.file("xattrs-\(UUID().uuidString).tar")
    try run("/bin/sh", ["-c", "sqfs2tar \"$1\" > \"$2\"", "sh", image, tarPath])
    guard let archive = archive_read_new() else { throw TarBuilder.Failure(description: "archive_read_new failed") }
    defer { archive_read_free(archive) }
    archive_read_support_format_all(archive)
    guard archive_read_open_filename(archive, tarPath, 1 << 16) == ARCHIVE_OK else {
        throw TarBuilder.Failure(description: "cannot read \(tarPath)")
    }
    var result: [String: TarredEntry] = [:]
    var entry: OpaquePointer?
    while archive_read_next_header(archive, &entry) == ARCHIVE_OK, let entry {
        guard let name = archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry) else { continue }
        var path = String(cString: name)
        while path.hasSuffix("/") { path.removeLast() }
        if path.hasPrefix("./") { path.removeFirst(2) }
        path = "/" + path
        if path == "/." { path = "/" }
        var attributes: [String: [UInt8]] = [:]
        if archive_entry_xattr_reset(entry) > 0 {
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK, let name {
                attributes[String(cString: name)] = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
            }
        }
        var content = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = archive_read_data(archive, &buffer, buffer.count)
            if count <= 0 { break }
            content.append(contentsOf: buffer[..<count])
        }
        result[path] = TarredEntry(content: content, xattrs: attributes)
    }
    return result
}

/// Writes each layer (bottom first) as a tar and flattens them into an image.
func flatten(
    _ layers: [[TarEntry]], scratch: ScratchDirectory, compression: TarBuilder.Compression = .gzip,
    options: SquashfsOptions = SquashfsOptions(workerCount: 2)
) throws -> (image: String, summary: FlattenSummary) {
    var blobs: [LayerBlob] = []
    for (index, entries) in layers.enumerated() {
        let path = scratch.file("layer\(index).tar")
        try TarBuilder.write(entries, to: path, compression: compression)
        blobs.append(LayerBlob(path: path, name: "L\(index)"))
    }
    let image = scratch.file("image-\(UUID().uuidString).squashfs")
    let summary = try LayerFlattener.flatten(layers: blobs, into: image, options: options)
    return (image, summary)
}

extension InspectedEntry {
    var text: String? { content.map { String(decoding: $0, as: UTF8.self) } }
}
