#if canImport(Glibc)
import Glibc
#endif
import CShifterSys

/// A loop device bound to a backing file. Devices are bound with autoclear, so the kernel unbinds
/// one as soon as its last mount goes away and nothing is left to detach by hand.
public struct LoopDevice: Sendable {
    /// The device node, e.g. `/dev/loop3`.
    public let path: String
    /// An open descriptor on the device; close it with `release()` once the device is mounted.
    public let descriptor: Int32

    /// Binds `file` to a free loop device, found through `/dev/loop-control` (never a fixed
    /// number). A device another process grabs between the lookup and the bind is skipped.
    ///
    /// With `directIO` the device reads and writes its file with `O_DIRECT`: no second copy of the
    /// file in the page cache, but every request the filesystem above makes becomes one request to
    /// the file's filesystem. Without it, the file's page cache and read-ahead sit between them, so
    /// a squashfs image on a parallel filesystem is read in large requests. Where the file's
    /// filesystem refuses `O_DIRECT` (tmpfs), the device falls back to buffered I/O.
    public static func attach(file: String, readOnly: Bool = true, directIO: Bool = false) throws(SystemError) -> LoopDevice {
        let backing = try check("open image", file) { open(file, (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC) }
        defer { close(backing) }
        return try attach(descriptor: backing, name: file, readOnly: readOnly, directIO: directIO)
    }

    /// Binds the open file `backing` (named `name` in messages) to a free loop device.
    public static func attach(descriptor backing: Int32, name file: String, readOnly: Bool,
                              directIO: Bool) throws(SystemError) -> LoopDevice {
        let control = try check("open", "/dev/loop-control") { open("/dev/loop-control", O_RDWR | O_CLOEXEC) }
        defer { close(control) }
        var lastError: SystemError = SystemError("attach loop device for", file, errno: EBUSY)
        // The kernel names the lowest free device to everyone who asks at once, and only one of
        // them binds it: the others ask again. Prologs of several nodes of one host, or many ranks
        // each building their own root on a node, are that many at once; a random pause of up to
        // a millisecond spreads them.
        for attempt in 0..<attachAttempts {
            if attempt > 0 { usleep(UInt32.random(in: 0...1000)) }
            let index = try checkShim("find a free loop device for", file, cshifter_loop_get_free(control))
            let path = "/dev/loop\(index)"
            let device = try openDevice(path, index: index, readOnly: readOnly)
            let result = cshifter_loop_attach(device, backing, readOnly ? 1 : 0, directIO ? 1 : 0)
            if result == 0 { return LoopDevice(path: path, descriptor: device) }
            close(device)
            lastError = SystemError("attach loop device \(path) to", file, errno: -result)
            if -result != EBUSY { break }
        }
        throw lastError
    }

    /// How many times a bind that another process won is tried again with the next free device.
    static let attachAttempts = 256

    /// Closes the descriptor; with autoclear the binding lives on while the device is mounted.
    public func release() {
        close(descriptor)
    }

    /// Unbinds the device now (used when a mount failed after the bind) and closes it.
    public func detach() {
        _ = cshifter_loop_detach(descriptor)
        close(descriptor)
    }

    /// The node may be missing where /dev is static; LOOP_CTL_GET_FREE created the device itself.
    private static func openDevice(_ path: String, index: Int32, readOnly: Bool) throws(SystemError) -> Int32 {
        let flags = (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC
        let (fd, error) = retryingInterrupts { open(path, flags) }
        if fd >= 0 { return fd }
        guard error == ENOENT else { throw SystemError("open", path, errno: error) }
        let device = makedev(7, UInt32(index))
        try check("create device node", path) { mknod(path, S_IFBLK | 0o660, device) }
        return try check("open", path) { open(path, flags) }
    }
}

/// `makedev(3)` is a macro in glibc.
private func makedev(_ major: UInt32, _ minor: UInt32) -> dev_t {
    let major64 = UInt64(major), minor64 = UInt64(minor)
    return dev_t((major64 & 0xfffff000) << 32 | (major64 & 0xfff) << 8 | (minor64 & 0xffffff00) << 12 | (minor64 & 0xff))
}

/// What a loop device is bound to now, as sysfs shows it.
public struct LoopBinding: Sendable, Equatable {
    /// The device node, e.g. `/dev/loop3`.
    public var device: String
    /// The backing file's path (with " (deleted)" once it has no name).
    public var backingFile: String
    /// The disk sequence number (`diskseq`, Linux 5.15), which the kernel raises each time the
    /// device is bound: the same number means the same binding, not a later one to the same file.
    public var sequence: UInt64?

    /// The binding of `device` (`/dev/loopN`), or nil when it is bound to nothing or is no loop device.
    public static func current(_ device: String) -> LoopBinding? {
        guard device.hasPrefix("/dev/loop"), let index = UInt32(device.dropFirst("/dev/loop".count)) else { return nil }
        let directory = "/sys/block/loop\(index)"
        func line(_ path: String) -> String? {
            (try? FileSystem.readFile(path, limit: 8192)).flatMap { bytes in
                String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map(String.init)
            }
        }
        guard let backing = line(directory + "/loop/backing_file") else { return nil }
        return LoopBinding(device: device, backingFile: backing, sequence: line(directory + "/diskseq").flatMap { UInt64($0) })
    }
}
