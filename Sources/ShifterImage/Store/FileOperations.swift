#if canImport(Glibc)
import Glibc
#endif

/// The few file operations the store needs that Foundation does not offer: fsync of files and
/// directories, and renames that report errno. Each names the C call it wraps.
enum FileOperations {
    /// The text of the current `errno`.
    static var lastErrorText: String { String(cString: strerror(errno)) }

    /// Flushes a file's data and metadata to stable storage; the corresponding C call is `fsync(2)`.
    static func sync(_ path: String, directory: Bool = false) throws(ImageImportError) {
        let flags = O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0)
        let descriptor = retryingOnInterrupt { open(path, flags) }
        guard descriptor >= 0 else {
            throw ImageImportError(.io, "\(displayQuoted(path)): cannot open to sync: \(lastErrorText)")
        }
        defer { close(descriptor) }
        guard retryingOnInterrupt({ fsync(descriptor) }) == 0 else {
            throw ImageImportError(.io, "\(displayQuoted(path)): fsync failed: \(lastErrorText)")
        }
    }

    /// Writes all of `bytes` to `descriptor`, going on after short writes and `EINTR`; returns the
    /// errno text of a failed `write(2)`, or nil.
    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> String? {
        var offset = 0
        while offset < bytes.count {
            let count = write(descriptor, bytes.baseAddress.map { $0 + offset }, bytes.count - offset)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return lastErrorText }
            offset += count
        }
        return nil
    }

    /// Writes `bytes` to a new file at `path` with `mode`, and syncs it.
    static func writeSynced(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(ImageImportError) {
        let descriptor = retryingOnInterrupt { open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode) }
        guard descriptor >= 0 else {
            throw ImageImportError(.io, "\(displayQuoted(path)): cannot create: \(lastErrorText)")
        }
        defer { close(descriptor) }
        if let failure = bytes.withUnsafeBytes({ writeAll(descriptor, $0) }) {
            throw ImageImportError(.io, "\(displayQuoted(path)): write failed: \(failure)")
        }
        guard fchmod(descriptor, mode) == 0, retryingOnInterrupt({ fsync(descriptor) }) == 0 else {
            throw ImageImportError(.io, "\(displayQuoted(path)): cannot finish writing: \(lastErrorText)")
        }
    }

    /// Renames within one filesystem, replacing `destination`; the corresponding C call is `rename(2)`.
    static func rename(_ source: String, to destination: String) throws(ImageImportError) {
        guard Glibc.rename(source, destination) == 0 else {
            throw ImageImportError(.io, "cannot rename \(displayQuoted(source)) to \(displayQuoted(destination)): \(lastErrorText)")
        }
    }

    /// Sets permission bits; the corresponding C call is `chmod(2)`.
    static func setMode(_ path: String, _ mode: mode_t) throws(ImageImportError) {
        guard chmod(path, mode) == 0 else {
            throw ImageImportError(.io, "\(displayQuoted(path)): cannot set mode: \(lastErrorText)")
        }
    }

    /// Removes a file; a missing file is not an error. The corresponding C call is `unlink(2)`.
    static func removeFile(_ path: String) throws(ImageImportError) {
        guard unlink(path) == 0 || errno == ENOENT else {
            throw ImageImportError(.io, "\(displayQuoted(path)): cannot remove: \(lastErrorText)")
        }
    }

    /// Whether a path exists, without following a final symbolic link.
    static func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    /// The size in bytes of a file, without following a final symbolic link; `nil` when it cannot
    /// be told. The corresponding C call is `lstat(2)`.
    static func size(_ path: String) -> Int64? {
        var status = stat()
        guard lstat(path, &status) == 0 else { return nil }
        return Int64(status.st_size)
    }

    /// Creates a private directory (mode 0700); the corresponding C call is `mkdir(2)`.
    static func makeDirectory(_ path: String, mode: mode_t = 0o700) throws(ImageImportError) {
        guard mkdir(path, mode) == 0 else {
            throw ImageImportError(.io, "\(displayQuoted(path)): cannot create directory: \(lastErrorText)")
        }
    }

    /// The names in a directory, without `.` and `..`.
    static func directoryEntries(_ path: String) throws(ImageImportError) -> [String] {
        guard let directory = opendir(path) else {
            throw ImageImportError(.io, "\(displayQuoted(path)): cannot list: \(lastErrorText)")
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Removes a directory tree this process created (it holds only plain files and directories).
    static func removeTree(_ path: String) {
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        if status.st_mode & S_IFMT == S_IFDIR {
            for name in (try? directoryEntries(path)) ?? [] { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    private static func retryingOnInterrupt<T: BinaryInteger>(_ call: () -> T) -> T {
        while true {
            let result = call()
            if result < 0 && errno == EINTR { continue }
            return result
        }
    }
}
