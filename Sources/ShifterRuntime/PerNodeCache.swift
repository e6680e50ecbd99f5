#if canImport(Glibc)
import Glibc
#endif
import CShifterSys
import ShifterCore
import ShifterSystem

/// A per-node write cache: local-disk-like storage for one node, kept as a sparse file on the
/// parallel filesystem. The file is formatted, loop-mounted at the volume's target with its root
/// owned by the user, and unlinked at once: the open loop device keeps it alive, and it vanishes
/// when the root is torn down. The site's size and filesystem rules were checked before this runs.
struct PerNodeCache {
    let layout: RootLayout
    let user: ContainerUser

    func create(_ volume: VolumeSpec, directory: String, mkfs: String) throws(RuntimeError) {
        guard let cache = volume.perNodeCache else { return }
        let describe = { (reason: String) in RuntimeError("per-node cache \"\(volume.canonical)\": \(reason)") }
        guard cache.filesystem == "xfs" else { throw describe("only xfs caches can be created") }
        guard ProcessControl.isExecutableByRoot(mkfs) else {
            throw describe("\(mkfs) is missing or not executable (set mkfsXfsPath in udiRoot.conf)")
        }
        let file: String
        do {
            try FileSystem.makeDirectories(directory, mode: 0o700)
            file = try FileSystem.createUniqueFile(in: directory, prefix: "shifter-\(layout.name)-", suffix: ".xfs",
                                                   size: Int64(clamping: cache.size))
        } catch {
            throw describe("couldn't \(error.description)")
        }
        // Whatever happens next, the file must not outlive this call under its name.
        defer { _ = try? FileSystem.removeFile(file) }
        var arguments = ["-q", "-f"]
        if let blockSize = cache.blockSize { arguments += ["-b", "size=\(blockSize)"] }
        arguments.append(file)
        do {
            let outcome = try ProgramRunner.run(mkfs, arguments)
            if outcome.status != 0 {
                let detail = outcome.output.split(separator: "\n").first.map(String.init) ?? ""
                throw describe("\(mkfs) failed with status \(outcome.status): \(detail)")
            }
        } catch let error as SystemError {
            throw describe("couldn't \(error.description)")
        } catch let error as RuntimeError {
            throw error
        } catch {
            throw describe("\(error)")
        }
        do throws(SystemError) {
            let device = try LoopDevice.attach(file: file, readOnly: false)
            do throws(SystemError) {
                let target = try ContainedPath.makingDirectories(root: layout.root, path: volume.target)
                try checkedMount(device: device.path, target: target)
            } catch {
                device.detach()
                throw error
            }
            device.release()
        } catch {
            throw describe("couldn't \(error.description)")
        }
    }

    private func checkedMount(device: String, target: borrowing ContainedPath) throws(SystemError) {
        let result = cshifter_mount_new_filesystem("xfs", device, target.descriptor,
                                                   Int32(CSHIFTER_BIND_NOSUID) | Int32(CSHIFTER_BIND_NODEV),
                                                   user.uid, user.gid)
        if result < 0 { throw SystemError("mount xfs \(device) on", target.path, errno: -result) }
    }
}
