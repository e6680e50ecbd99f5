#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// A per-node write cache: local-disk-like storage for one node, kept as a sparse file on the
/// parallel filesystem. The file is formatted, loop-mounted at the volume's target with its root
/// owned by the user, and unlinked at once: the open loop device keeps it alive, and it vanishes
/// when the root is torn down. The site's size and filesystem rules were checked before this runs.
struct PerNodeCache {
    let layout: RootLayout
    let user: ContainerUser

    /// The name prefix of the backing files of root `name`'s caches: `shifter-job-12-`.
    static func filePrefix(root name: String) -> String { "shifter-\(name)-" }
    static let fileSuffix = ".xfs"

    /// How old a cache file of a `shifter` run outside any job must be to count as abandoned: such
    /// a file lives only while mkfs.xfs runs, which is killed after `ProgramRunner.defaultTimeLimit`.
    static let abandonedPrivateFileAge: Int64 = 600

    /// Cache files of `shifter` runs outside any job that such a run, killed while it formatted
    /// the file, left in `directory` (`shifter-private-*.xfs` older than ten minutes).
    static func abandonedPrivateFiles(in directory: String, now: Int64) -> [(path: String, status: FileStatus)] {
        let prefix = filePrefix(root: "private")
        var found: [(path: String, status: FileStatus)] = []
        for name in ((try? FileSystem.directoryEntries(directory)) ?? []).sorted() where name.hasPrefix(prefix) && name.hasSuffix(fileSuffix) {
            let path = directory + "/" + name
            guard let status = try? FileSystem.linkStatus(path), status.kind == .regular,
                  status.modificationTime <= now &- abandonedPrivateFileAge else { continue }
            found.append((path, status))
        }
        return found
    }

    /// The job whose per-node cache file is named `name` (`shifter-job-12-XXXXXX.xfs`, or
    /// `shifter-job-12.step-3-XXXXXX.xfs` for a step's own root), or nil.
    static func jobID(inFileName name: String) -> UInt32? {
        guard name.hasPrefix("shifter-job-"), name.hasSuffix(fileSuffix) else { return nil }
        let rest = name.dropFirst("shifter-".count).dropLast(fileSuffix.count)
        guard let dash = rest.lastIndex(of: "-"), rest.index(after: dash) != rest.endIndex else { return nil }
        let rootName = String(rest[..<dash])
        // A root's own name only, never that of its failure note or entry.
        guard let root = NodeInventory.rootName(rootName),
              rootName == RootLayout.name(job: root.job, step: root.step) else { return nil }
        return root.job
    }

    /// Removes backing files of root `layout`'s caches that are still in `directory` under their
    /// names. `create` unlinks each file as soon as it is mounted, or on failure; only a prolog
    /// killed in between (mkfs.xfs can take seconds) leaves one, as large as the cache. Call it only
    /// once the job has ended: the directory is shared by every node, whose prologs of the same
    /// job each create a file of their own. Returns what could not be removed.
    static func removeAbandonedFiles(of layout: RootLayout, in directory: String) -> [String] {
        let prefix = filePrefix(root: layout.name)
        guard let names = try? FileSystem.directoryEntries(directory) else { return [] }
        var left: [String] = []
        for name in names where name.hasPrefix(prefix) && name.hasSuffix(fileSuffix) {
            let path = directory + "/" + name
            // Whoever owns it (the job's user, to whom it is charged): only root can write in the
            // directory, so every regular file there of this name is a prolog's.
            guard let status = try? FileSystem.linkStatus(path), status.kind == .regular else { continue }
            do throws(SystemError) {
                try FileSystem.removeFile(path)
            } catch {
                left.append(error.description)
            }
        }
        return left
    }

    func create(_ volume: VolumeSpec, directory: String, mkfs: String) throws(RuntimeError) {
        guard let cache = volume.perNodeCache else { return }
        let describe = { (reason: String) in RuntimeError("per-node cache \"\(volume.canonical)\": \(reason)") }
        guard cache.filesystem == "xfs" else { throw describe("only xfs caches can be created") }
        try VolumeTargetAccess.check(volume, layout: layout, user: user)
        guard ProcessControl.isExecutableByRoot(mkfs) else {
            throw describe("\(mkfs) is missing or not executable (set mkfsXfsPath in udiRoot.conf)")
        }
        let file: String, descriptor: Int32
        do {
            try FileSystem.makeDirectories(directory, mode: 0o700)
            // Root formats and attaches the file: nobody else may be able to swap it.
            let status = try FileSystem.linkStatus(directory)
            guard status.kind == .directory, status.uid == 0, status.mode & 0o022 == 0 else {
                throw describe("perNodeCachePath \(directory) must be a directory owned by root and writable by root only")
            }
            // Before the file exists: a prolog killed from here on leaves the epilog a note to look.
            try FileSystem.writeFile(layout.cacheMarkerFile, [], mode: 0o600)
            (file, descriptor) = try FileSystem.createUniqueFile(in: directory, prefix: Self.filePrefix(root: layout.name),
                                                                 suffix: Self.fileSuffix, size: Int64(clamping: cache.size))
        } catch {
            throw RuntimeError.from(error, describe)
        }
        // Whatever happens next, the file must not outlive this call under its name.
        defer {
            _ = try? FileSystem.removeFile(file)
            // The space is the user's: the file is charged to the user's quota on the parallel
            // filesystem (where the filesystem lets root give it away). Only once its name is
            // gone: the user must never open the backing store of a filesystem the kernel mounts.
            _ = fchown(descriptor, user.uid, user.gid)
            close(descriptor)
        }
        // mkfs and the loop device work on the file created above, through its descriptor, never
        // through its name again.
        var arguments = ["-q", "-f"]
        if let blockSize = cache.blockSize { arguments += ["-b", "size=\(blockSize)"] }
        // mkfs.xfs refuses a /proc/self/fd link as a device, but takes it as a file name.
        arguments += ["-d", "file=1,name=/proc/self/fd/\(ProgramRunner.inheritedDescriptorNumber),size=\(cache.size)"]
        do {
            let outcome = try ProgramRunner.run(mkfs, arguments, inheriting: descriptor)
            if outcome.timedOut {
                throw describe("\(mkfs) did not finish within \(ProgramRunner.defaultTimeLimit.components.seconds) s and was killed; check the filesystem of perNodeCachePath")
            }
            if outcome.status != 0 {
                let detail = outcome.output.split(separator: "\n").first.map(String.init) ?? ""
                throw describe("\(mkfs) failed with status \(outcome.status): \(detail)")
            }
        } catch {
            throw RuntimeError.from(error, describe)
        }
        do throws(SystemError) {
            let device = try LoopDevice.attach(descriptor: descriptor, name: file, readOnly: false, directIO: true)
            do throws(SystemError) {
                let target = try ContainedPath.makingDirectories(root: layout.root, path: volume.target, strict: true)
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
        try Mounts.mountNewFilesystem(type: "xfs", device: device, onto: target, attributes: [.noSetuid, .noDevices],
                                      uid: user.uid, gid: user.gid)
    }
}
