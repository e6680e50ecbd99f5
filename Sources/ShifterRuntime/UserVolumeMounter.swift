#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// Mounts a user's `--volume`, a directory or a regular file. FROM is looked up inside the
/// container (the site mounts and earlier volumes; the image's own files are refused) or, with the
/// flag `host`, on the host, with the user's own credentials either way, so a user can mount only
/// what they can already reach there. The mount is always `nosuid,nodev`; a host directory is bound with everything mounted
/// below it (and the flags on all of it), so nothing a mount on the host hides comes to light.
struct UserVolumeMounter {
    let layout: RootLayout
    let user: ContainerUser
    /// The site's propagation, for volumes that ask for none.
    let propagation: MountPropagation

    func mount(_ volume: VolumeSpec) throws(RuntimeError) {
        let describe = { (reason: String) in RuntimeError("volume \"\(volume.canonical)\": \(reason)") }
        // The user's own attempt is all there is: a failure reports only the user's own error
        // (root's lookup would tell apart a missing path, a file and a directory the user may not
        // enter), and root binds the directory the user's process opened, by its descriptor.
        // Looked up again by path, a symlink swapped in between could lead root to the same
        // directory under another mount, with other mounts below it (another job's root).
        let lookupRoot = volume.hostSource ? "/" : layout.root
        let source: ContainedPath
        do {
            source = try UserAccess.openFileOrDirectory(volume.source, root: lookupRoot, uid: user.uid, gid: user.gid,
                                                        groups: user.groups + [user.gid])
        } catch where error.errno == ETIMEDOUT {
            throw describe("source \(volume.source) did not answer within \(UserAccess.timeLimit.components.seconds) s when user \(user.name) opened it (a filesystem that does not respond?)")
        } catch {
            // A path the container lacks may well be the host's: say how to mount that one.
            let hint = !volume.hostSource && error.errno == ENOENT
                ? " in the container; to mount the host's \(volume.source), add the flag host" : ""
            throw describe("user \(user.name) may not open source \(volume.source): \(error.reason)\(hint)")
        }
        let status: FileStatus
        do { status = try source.status() } catch { throw RuntimeError.from(error, describe) }
        // A directory, a file, or a device node of the node's own /dev; a FIFO or a socket would be
        // a way to talk to whatever serves it on the host.
        let isDevice = status.kind == .other && (status.nodeType == "c" || status.nodeType == "b")
        guard status.kind == .directory || status.kind == .regular || isDevice else {
            throw describe("source \(volume.source) is neither a directory, a regular file nor a device node (a FIFO or socket); only those are mounted")
        }
        if isDevice, let reason = Self.deviceRefusal(status, hostSource: volume.hostSource, nodeDevices: try? FileSystem.status("/dev")) {
            throw describe("source \(volume.source) is a device node \(reason)")
        }
        let what = status.kind == .directory ? "directory" : "file"
        // A file on the root's own mount (the overlay) is the image's: binding it elsewhere is
        // never what a user who named a host path meant. The mount, not the device: the overlay's
        // regular files report the device of the image below it.
        if !volume.hostSource {
            guard let rootMount = try? ContainedPath(root: layout.root, path: "/").mountID(),
                  let sourceMount = try? source.mountID() else {
                throw describe("the container's root could not be examined")
            }
            if sourceMount == rootMount {
                throw describe("source \(volume.source) is the image's own \(what), on no site filesystem (siteFs in udiRoot.conf) and no earlier volume; to mount the host's \(volume.source), add the flag host (\(volume.source):\(volume.target):host)")
            }
        }
        try VolumeTargetAccess.check(volume, layout: layout, user: user)
        do {
            let target = status.kind == .directory
                ? try ContainedPath.makingDirectories(root: layout.root, path: volume.target, strict: true)
                : try ContainedPath.makingFile(root: layout.root, path: volume.target, strict: true)
            // A device node is bound over a file, which the target is made as.
            guard try target.status().kind == (isDevice ? .regular : status.kind) else {
                throw describe(isDevice
                    ? "target \(volume.target) exists in the image and is not a file, which a device node is mounted over"
                    : "target \(volume.target) exists in the image and is not a \(what), as the source is")
            }
            // nodev on every mount but a device node's own, which would be of no use with it.
            var attributes: BindAttributes = isDevice ? [.noSetuid] : [.noSetuid, .noDevices]
            if volume.readOnly { attributes.insert(.readOnly) }
            try Mounts.bind(from: source, onto: target, recursive: volume.recursive || volume.hostSource, attributes: attributes,
                            propagation: BindPropagation(volume.propagation ?? propagation))
        } catch {
            throw RuntimeError.from(error, describe)
        }
    }

    /// Why the device node `status` may not be mounted, or nil where it may: only a node of the
    /// node's own `/dev` (`nodeDevices`, the filesystem the kernel made the nodes in), owned by
    /// root, named by its host path. A node elsewhere could be any device at all: one a user's FUSE
    /// filesystem serves, with any numbers and mode, or one of another mount of devices.
    static func deviceRefusal(_ status: FileStatus, hostSource: Bool, nodeDevices: FileStatus?) -> String? {
        guard hostSource else {
            return "in the container; only the node's own device nodes are mounted: name its host path with the flag host"
        }
        guard let nodeDevices, nodeDevices.kind == .directory, status.device == nodeDevices.device else {
            return "outside the node's /dev; only the node's own device nodes are mounted"
        }
        guard status.uid == 0 else { return "of uid \(status.uid), not root's; only the node's own device nodes are mounted" }
        return nil
    }
}
