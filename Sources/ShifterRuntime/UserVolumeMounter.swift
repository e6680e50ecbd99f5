#if canImport(Glibc)
import Glibc
#endif
import CShifterSys
import ShifterCore
import ShifterSystem

/// Mounts a user's `--volume`. FROM is looked up inside the container (the image and the site
/// mounts) with the user's own credentials, so a user can mount only what they can already reach
/// there; the mount is always `nosuid,nodev`.
struct UserVolumeMounter {
    let layout: RootLayout
    let user: ContainerUser
    /// The site's propagation, for volumes that ask for none.
    let propagation: MountPropagation

    func mount(_ volume: VolumeSpec) throws(RuntimeError) {
        let describe = { (reason: String) in RuntimeError("volume \"\(volume.canonical)\": \(reason)") }
        let source: ContainedPath
        do {
            source = try ContainedPath(root: layout.root, path: volume.source)
        } catch where error.errno == ENOENT {
            throw describe("source \(volume.source) does not exist in the container")
        } catch {
            throw describe("couldn't open source \(volume.source) in the container: \(error.reason)")
        }
        guard let status = try? source.status(), status.kind == .directory else {
            throw describe("source \(volume.source) is not a directory")
        }
        var device: UInt64 = 0, inode: UInt64 = 0
        let groups = user.groups.map { gid_t($0) }
        let result = groups.withUnsafeBufferPointer { buffer in
            cshifter_check_directory_access(user.uid, user.gid, buffer.count, buffer.baseAddress,
                                            layout.root, volume.source, &device, &inode)
        }
        if result < 0 {
            throw describe("user \(user.name) may not open source \(volume.source): \(String(cString: strerror(-result)))")
        }
        // The user checked one directory and we are about to bind another: someone swapped a path.
        guard device == status.device, inode == status.inode else {
            throw describe("source \(volume.source) changed while it was being checked")
        }
        do {
            let target = try ContainedPath.makingDirectories(root: layout.root, path: volume.target, strict: true)
            guard try target.status().kind == .directory else {
                throw describe("target \(volume.target) exists in the image and is not a directory")
            }
            var attributes: BindAttributes = [.noSetuid, .noDevices]
            if volume.readOnly { attributes.insert(.readOnly) }
            try Mounts.bind(from: source, onto: target, recursive: volume.recursive, attributes: attributes,
                            propagation: BindPropagation(volume.propagation ?? propagation))
        } catch {
            throw RuntimeError.from(error, describe)
        }
    }
}
