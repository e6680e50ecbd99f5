#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// Where a user's volume (a bind, a tmpfs, a per-node cache) may go. Root makes the target and
/// mounts on it, but only once the user's own process has looked into the target's directory in
/// the container (search permission on it and on every directory on the way): an answer about a target inside a
/// directory the user may not enter (another user's, reached through a host volume or `/tmp`)
/// would tell whether a file or a directory is there. A missing directory, or a file on the way,
/// is an answer the user's own process gets only where it may look.
enum VolumeTargetAccess {
    static func check(_ volume: VolumeSpec, layout: RootLayout, user: ContainerUser) throws(RuntimeError) {
        let target = volume.target
        guard let slash = target.lastIndex(of: "/") else { return }
        let directory = slash == target.startIndex ? "/" : String(target[..<slash])
        do {
            // "/." : a name is looked up in the directory itself, which takes search permission
            // on it as well as on the way there.
            _ = try UserAccess.reachDirectory(directory + "/.", root: layout.root, uid: user.uid, gid: user.gid,
                                              groups: user.groups + [user.gid])
        } catch where error.errno == ENOENT || error.errno == ENOTDIR {
            // Made, or refused, by root in the container's own layer, as the user could see.
        } catch where error.errno == ETIMEDOUT {
            throw RuntimeError("volume \"\(volume.canonical)\": target \(target): its directory did not answer within \(UserAccess.timeLimit.components.seconds) s when user \(user.name) looked (a filesystem that does not respond?)")
        } catch {
            throw RuntimeError("volume \"\(volume.canonical)\": user \(user.name) may not reach target \(target): \(error.reason)", kind: .permission)
        }
    }
}
