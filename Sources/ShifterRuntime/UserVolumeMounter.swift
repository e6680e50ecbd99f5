#if canImport(Glibc)
import Glibc
#endif
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
        // The user's own attempt comes first, and is all a failure reports: root's lookup would
        // tell apart a missing path, a file and a directory the user may not enter.
        let opened: (device: UInt64, inode: UInt64)
        do {
            opened = try UserAccess.openDirectory(volume.source, root: layout.root, uid: user.uid, gid: user.gid,
                                                  groups: user.groups + [user.gid])
        } catch where error.errno == ETIMEDOUT {
            throw describe("source \(volume.source) did not answer within \(UserAccess.timeLimit.components.seconds) s when user \(user.name) opened it (a filesystem that does not respond?)")
        } catch {
            throw describe("user \(user.name) may not open source \(volume.source): \(error.reason)")
        }
        // The user opened one directory and root is about to bind the one it finds: the same, or
        // someone swapped a path in between.
        let source: ContainedPath
        do {
            source = try ContainedPath(root: layout.root, path: volume.source)
        } catch {
            throw describe("source \(volume.source) changed while it was being checked")
        }
        guard let status = try? source.status(), status.kind == .directory, status.device == opened.device,
              status.inode == opened.inode else {
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
