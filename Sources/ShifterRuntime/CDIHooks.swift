import ShifterCore
import ShifterSystem

/// A CDI spec's hooks, run while the job's root is built, once it is complete, or in the epilog
/// (`CDIHook.stage`). NVIDIA's (`nvidia-cdi-hook SUBCOMMAND`,
/// or the older `nvidia-ctk hook SUBCOMMAND`) are done here, so a node needs no NVIDIA container
/// toolkit when jobs run: `create-symlinks`, `update-ldcache`, `enable-cuda-compat` and
/// `disable-device-node-modification`. Any other hook runs as its spec says: as root, with the OCI
/// state on its standard input, for no longer than its timeout.
enum CDIHooks {
    /// The host's ldconfig, run with `-r` on the job's root.
    static let ldconfig = "/sbin/ldconfig"
    /// How long a hook may run when its spec gives no timeout.
    static let defaultTimeLimit: Duration = .seconds(30)

    /// NVIDIA's subcommand and its arguments, when `hook` is one of NVIDIA's.
    static func nvidiaSubcommand(_ hook: CDIHook) -> (String, [String])? {
        let arguments = hook.arguments.isEmpty ? [hook.path] : hook.arguments
        let program = String(arguments[0].split(separator: "/").last ?? "")
        if program == "nvidia-cdi-hook", arguments.count >= 2 { return (arguments[1], Array(arguments.dropFirst(2))) }
        if program == "nvidia-ctk", arguments.count >= 3, arguments[1] == "hook" {
            return (arguments[2], Array(arguments.dropFirst(3)))
        }
        return nil
    }

    /// Whether `hook` works on the container's /proc (NVIDIA's disable-device-node-modification),
    /// and so runs once /proc is mounted, after the other hooks.
    static func needsProc(_ hook: CDIHook) -> Bool {
        nvidiaSubcommand(hook)?.0 == "disable-device-node-modification"
    }

    /// The values of `--name VALUE` and `--name=VALUE` in `arguments`, in order.
    static func values(of name: String, in arguments: [String]) -> [String] {
        var result: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == name, index + 1 < arguments.count {
                result.append(arguments[index + 1])
                index += 1
            } else if argument.hasPrefix(name + "=") {
                result.append(String(argument.dropFirst(name.count + 1)))
            }
            index += 1
        }
        return result
    }

    /// Runs `hook`; a poststart or poststop hook's failure is a warning (the job has its
    /// container, or is done with it), as OCI says.
    static func runInStage(_ hook: CDIHook, index: Int, layout: RootLayout, warn: (String) -> Void) throws(RuntimeError) {
        do {
            try run(hook, index: index, layout: layout, warn: warn)
        } catch {
            guard hook.failureOnlyWarns else { throw error }
            warn(error.message)
        }
    }

    static func run(_ hook: CDIHook, index: Int, layout: RootLayout, warn: (String) -> Void) throws(RuntimeError) {
        guard let (subcommand, arguments) = nvidiaSubcommand(hook) else {
            try runProgram(hook, layout: layout)
            return
        }
        switch subcommand {
        case "create-symlinks": try createSymlinks(values(of: "--link", in: arguments), layout: layout, warn: warn)
        case "update-ldcache": try updateLinkerCache(folders: values(of: "--folder", in: arguments), index: index, layout: layout)
        case "enable-cuda-compat":
            try enableCUDACompat(hostDriverVersion: values(of: "--host-driver-version", in: arguments).first, index: index,
                                 layout: layout)
        case "disable-device-node-modification": try disableDeviceNodeModification(layout: layout)
        default:
            // update-application-profile (graphics settings) and chmod (which would change the
            // node's own /dev, the container's) are left out, and said so.
            warn("CDI hook \(hook.path) \(subcommand) is not done by Shifter (it does create-symlinks, update-ldcache, enable-cuda-compat and disable-device-node-modification); skipped")
        }
    }

    /// `--link TARGET::LINK`: a symlink at LINK in the container pointing to TARGET; a file the
    /// image has at LINK is kept.
    static func createSymlinks(_ links: [String], layout: RootLayout, warn: (String) -> Void) throws(RuntimeError) {
        for link in links {
            let bytes = Array(link.utf8)
            guard let colon = bytes.indices.dropLast().first(where: { bytes[$0] == UInt8(ascii: ":") && bytes[$0 + 1] == UInt8(ascii: ":") }) else {
                throw RuntimeError("CDI hook create-symlinks: --link \(link) is not TARGET::/PATH")
            }
            let parts = [String(decoding: bytes[..<colon], as: UTF8.self), String(decoding: bytes[(colon + 2)...], as: UTF8.self)]
            guard !parts[0].isEmpty, parts[1].hasPrefix("/") else {
                throw RuntimeError("CDI hook create-symlinks: --link \(link) is not TARGET::/PATH")
            }
            // The container's /dev is the node's, which has its own links (/dev/dri/by-path): a
            // link there would be made on the node.
            if CDIDevices.isUnderNodeDirectory(parts[1]) { continue }
            do throws(SystemError) {
                if try !ContainedPath.makeSymlink(root: layout.root, path: parts[1], target: parts[0]) {
                    warn("CDI hook create-symlinks: the image has a file at \(parts[1]); it is kept")
                }
            } catch {
                throw RuntimeError("CDI hook create-symlinks: couldn't \(error.description)")
            }
        }
    }

    /// The folders in an `ld.so.conf.d` file of their own, then the root's linker cache made anew
    /// with the host's ldconfig (`-r`: it works inside the root, and writes the root's
    /// `/etc/ld.so.cache`).
    static func updateLinkerCache(folders: [String], index: Int, layout: RootLayout) throws(RuntimeError) {
        if !folders.isEmpty {
            let text = folders.joined(separator: "\n") + "\n"
            do throws(SystemError) {
                try ContainedPath.writeFile(root: layout.root, path: "/etc/ld.so.conf.d/00-shifter-cdi-\(index).conf", Array(text.utf8))
            } catch {
                throw RuntimeError("CDI hook update-ldcache: couldn't \(error.description)")
            }
            // An image without /etc/ld.so.conf (busybox, distroless) reads the folders from one
            // that includes the directory.
            if (try? ContainedPath(root: layout.root, path: "/etc/ld.so.conf")) == nil {
                do throws(SystemError) {
                    try ContainedPath.writeFile(root: layout.root, path: "/etc/ld.so.conf", Array("include /etc/ld.so.conf.d/*.conf\n".utf8))
                } catch {
                    throw RuntimeError("CDI hook update-ldcache: couldn't \(error.description)")
                }
            }
        }
        let outcome: ProgramRunner.Outcome
        do throws(SystemError) {
            // The folders on the command line too: an image's own /etc/ld.so.conf may not include
            // ld.so.conf.d.
            outcome = try ProgramRunner.run(ldconfig, ["-r", layout.root] + folders, timeLimit: defaultTimeLimit)
        } catch {
            throw RuntimeError("CDI hook update-ldcache: couldn't \(error.description)")
        }
        guard outcome.status == 0 else {
            throw RuntimeError("CDI hook update-ldcache: ldconfig failed (status \(outcome.status)): \(lastLine(outcome.output))")
        }
    }

    /// Where CUDA's forward-compatibility libraries are in an image.
    static let cudaCompatDirectory = "/usr/local/cuda/compat"

    /// An image's CUDA compatibility libraries go before the host's driver when they are for a
    /// newer driver than the host's (`libcuda.so.MAJOR.MINOR` above `--host-driver-version`).
    static func enableCUDACompat(hostDriverVersion: String?, index: Int, layout: RootLayout) throws(RuntimeError) {
        guard let hostDriverVersion, let hostMajor = Int(hostDriverVersion.split(separator: ".").first ?? "") else { return }
        guard let directory = try? ContainedPath(root: layout.root, path: cudaCompatDirectory),
              let names = try? FileSystem.directoryEntries(directory.procPath) else { return }
        let majors = names.compactMap { name -> Int? in
            guard name.hasPrefix("libcuda.so.") else { return nil }
            return Int(name.dropFirst("libcuda.so.".count).split(separator: ".").first ?? "")
        }
        guard let compatMajor = majors.max(), compatMajor > hostMajor else { return }
        do throws(SystemError) {
            try ContainedPath.writeFile(root: layout.root, path: "/etc/ld.so.conf.d/00-compat-\(index).conf",
                                        Array((cudaCompatDirectory + "\n").utf8))
        } catch {
            throw RuntimeError("CDI hook enable-cuda-compat: couldn't \(error.description)")
        }
    }

    /// The driver's parameters file, where the node has one, shown in the container with
    /// `ModifyDeviceFiles: 0`, so the driver's libraries do not try to make device nodes.
    static let driverParameters = "/proc/driver/nvidia/params"

    static func disableDeviceNodeModification(layout: RootLayout) throws(RuntimeError) {
        guard let bytes = try? FileSystem.readFile(driverParameters, limit: 1 << 16) else { return }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix("ModifyDeviceFiles:") ? "ModifyDeviceFiles: 0" : String(line)
        }
        let copy = layout.base + "/nvidia-params"
        do throws(SystemError) {
            try FileSystem.writeFile(copy, Array(lines.joined(separator: "\n").utf8), mode: 0o444)
            let target = try ContainedPath(root: layout.root, path: driverParameters)
            try Mounts.bind(from: try ContainedPath(hostPath: copy), onto: target, recursive: false,
                            attributes: [.readOnly, .noSetuid, .noDevices, .noExec])
        } catch {
            throw RuntimeError("CDI hook disable-device-node-modification: couldn't \(error.description)")
        }
    }

    /// Runs another hook: `path` with the spec's arguments and environment, as root, its standard
    /// input the OCI state of the container (status by the hook's stage; its bundle a directory
    /// whose `config.json` names the root).
    static func runProgram(_ hook: CDIHook, layout: RootLayout) throws(RuntimeError) {
        let bundle = layout.base + "/cdi-bundle"
        let state = JSONValue.object([
            "ociVersion": .string("1.0.2"), "id": .string(layout.name), "status": .string(hook.ociStatus),
            "bundle": .string(bundle), "annotations": .object([:]),
        ]).encoded()
        let config = JSONValue.object(["ociVersion": .string("1.0.2"), "root": .object(["path": .string(layout.root)])]).encoded()
        do throws(SystemError) {
            try FileSystem.makeDirectories(bundle, mode: 0o700)
            try FileSystem.writeFile(bundle + "/config.json", config, mode: 0o600)
            try FileSystem.writeFile(bundle + "/state.json", state, mode: 0o600)
        } catch {
            throw RuntimeError("CDI hook \(hook.path): couldn't \(error.description)")
        }
        let limit: Duration = hook.timeout.map { .seconds($0) } ?? defaultTimeLimit
        let outcome: ProgramRunner.Outcome
        do throws(SystemError) {
            outcome = try ProgramRunner.run(hook.path, Array(hook.arguments.dropFirst()), environment: hook.environment,
                                            standardInput: bundle + "/state.json", timeLimit: limit)
        } catch {
            throw RuntimeError("CDI hook \(hook.path): couldn't \(error.description)")
        }
        if outcome.timedOut {
            throw RuntimeError("CDI hook \(hook.path) did not finish within \(limit.components.seconds) s and was killed")
        }
        guard outcome.status == 0 else {
            throw RuntimeError("CDI hook \(hook.path) failed (status \(outcome.status)): \(lastLine(outcome.output))")
        }
    }

    static func lastLine(_ output: String) -> String {
        output.split(separator: "\n").last.map(String.init) ?? "no output"
    }
}
