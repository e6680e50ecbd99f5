#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// Puts a CDI spec's device nodes and mounts into a job's root (`PlannedStep.deviceNode`,
/// `.deviceMount`). The container's `/dev`, `/proc` and `/sys` are the node's own, bound or
/// mounted, so nothing is ever created there: a file made in the container's `/dev` would be made
/// in the node's.
enum CDIDevices {
    static let nodeDirectories = ["/dev", "/proc", "/sys"]

    /// A node's type as `mknod(2)` takes it.
    static let typeBits: [String: UInt32] = ["c": UInt32(S_IFCHR), "b": UInt32(S_IFBLK), "p": UInt32(S_IFIFO)]

    static func isUnderNodeDirectory(_ path: String) -> Bool {
        nodeDirectories.contains { NormalisedPath.path(path, isWithin: $0) }
    }

    /// Binds the host's node at the node's path in the container. A node whose path is the host
    /// path under `/dev` is there already (the container's `/dev` is the host's); its type is
    /// checked. Where the spec gives the node another mode, owner, group or device number (or
    /// permissions short of `rw`), the container gets a node of its own made so
    /// (`Mounts.bindNewDeviceNode`); the node's own file never changes.
    static func bindNode(_ node: CDIDeviceNode, layout: RootLayout) throws(RuntimeError) {
        let status: FileStatus
        do { status = try FileSystem.status(node.source) } catch {
            throw RuntimeError("CDI device node \(node.source): couldn't \(error.description); is the device's driver loaded on this node?")
        }
        guard let hostType = status.nodeType else {
            throw RuntimeError("CDI device node \(node.source) is not a device node on this node")
        }
        if let type = node.type, (type == "u" ? "c" : type) != hostType {
            throw RuntimeError("CDI device node \(node.source) is of type \(hostType) on this node, not \(type) as its spec says")
        }
        let hostFile = CDINodeFile(permissions: status.mode & 0o777, uid: status.uid, gid: status.gid,
                                   major: status.deviceMajor, minor: status.deviceMinor)
        let file = node.containerFile(host: hostFile)
        if node.source == node.path && isUnderNodeDirectory(node.path) && file == hostFile { return }
        let inNodeDirectory = isUnderNodeDirectory(node.path)
        if inNodeDirectory && (try? ContainedPath(root: layout.root, path: node.path, followFinal: false)) == nil {
            throw RuntimeError("CDI device node \(node.path): the node's \(node.path) does not exist, and the container's /dev is the node's; give the device a path that exists there")
        }
        do throws(SystemError) {
            let source = try ContainedPath(hostPath: node.source)
            let target = inNodeDirectory ? try ContainedPath(root: layout.root, path: node.path, followFinal: false)
                                         : try ContainedPath.makingFile(root: layout.root, path: node.path)
            if file == hostFile {
                try Mounts.bind(from: source, onto: target, recursive: false, attributes: [.noSetuid])
            } else {
                try Mounts.bindNewDeviceNode(onto: target, mode: typeBits[hostType, default: 0] | file.permissions,
                                             major: file.major, minor: file.minor, uid: file.uid, gid: file.gid)
            }
        } catch {
            throw RuntimeError("CDI device node \(node.path): couldn't \(error.description)")
        }
    }

    /// Binds a host path into the container, with the spec's `ro`, `nodev`, `noexec` and `rbind`;
    /// always `nosuid`.
    static func bindMount(_ mount: CDIMount, layout: RootLayout) throws(RuntimeError) {
        if isUnderNodeDirectory(mount.containerPath) {
            throw RuntimeError("CDI mount \(mount.containerPath): a container's /dev, /proc and /sys are the node's own; a spec mounts nothing there (a device node is a deviceNode)")
        }
        let exists = (try? ContainedPath(root: layout.root, path: mount.containerPath)) != nil
        var attributes: BindAttributes = [.noSetuid]
        if mount.readOnly { attributes.insert(.readOnly) }
        if mount.options.contains("nodev") { attributes.insert(.noDevices) }
        if mount.options.contains("noexec") { attributes.insert(.noExec) }
        do throws(SystemError) {
            let source = try ContainedPath(hostPath: mount.hostPath)
            let isDirectory = try source.status().kind == .directory
            let target = exists ? try ContainedPath(root: layout.root, path: mount.containerPath)
                : isDirectory ? try ContainedPath.makingDirectories(root: layout.root, path: mount.containerPath)
                : try ContainedPath.makingFile(root: layout.root, path: mount.containerPath)
            try Mounts.bind(from: source, onto: target, recursive: mount.recursive, attributes: attributes)
        } catch {
            throw RuntimeError("CDI mount \(mount.hostPath) on \(mount.containerPath): couldn't \(error.description)")
        }
    }
}
