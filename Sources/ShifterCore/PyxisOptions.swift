/// Pyxis-style `srun`/`sbatch` options (`--container-image`, `--container-mounts`, ...), which a
/// site turns on with the plugstack argument `pyxis_compat=1`, translated into Shifter's own
/// request: an image reference, volumes and, for the tasks, a working directory and the names of
/// variables whose host value wins over the image's. Job scripts written for Pyxis run unchanged:
/// each task runs inside the container, as with Pyxis, without `shifter` in front of it.
public struct PyxisOptions: Sendable, Equatable {
    /// `--container-image=[USER@][REGISTRY#]IMAGE[:TAG]|PATH`.
    public var image: String?
    /// `--container-mounts=SRC[:DST[:FLAGS]][,...]`, flags separated by `+`.
    public var mounts: String?
    /// `--container-workdir=PATH`.
    public var workdir: String?
    /// `--container-env=NAME[,NAME...]`.
    public var environment: String?
    /// `--container-mount-home` (true) or `--no-container-mount-home` (false); the last one given
    /// wins. The home directory is there when a site filesystem brings it at its own path, with
    /// either option or none (Pyxis says as much of enroot's site settings); elsewhere
    /// `--container-mount-home` mounts the host's, as Pyxis does.
    public var mountHome: Bool?
    /// `--container-remap-root`, which Shifter refuses.
    public var remapRoot = false
    /// `--container-name=NAME[:MODE]`, which Shifter refuses (named containers).
    public var name: String?
    /// `--container-save=PATH`, which Shifter refuses.
    public var save: String?
    /// `--container-writable` (true), which Shifter refuses, or `--container-readonly` (false).
    public var writable: Bool?
    /// `--container-entrypoint` (true), which Shifter refuses, or `--no-container-entrypoint`
    /// (false, the default: no entrypoint runs).
    public var entrypoint: Bool?
    /// `--container-entrypoint-log`: with no entrypoint run, there is nothing to show.
    public var entrypointLog = false
    /// `--container-unshare=NS[,NS...]`, which Shifter refuses.
    public var unshare: String?

    /// Creates options; every field is optional.
    public init(
        image: String? = nil, mounts: String? = nil, workdir: String? = nil, environment: String? = nil,
        mountHome: Bool? = nil, remapRoot: Bool = false, name: String? = nil, save: String? = nil, writable: Bool? = nil,
        entrypoint: Bool? = nil, entrypointLog: Bool = false, unshare: String? = nil
    ) {
        self.image = image
        self.mounts = mounts
        self.workdir = workdir
        self.environment = environment
        self.mountHome = mountHome
        self.remapRoot = remapRoot
        self.name = name
        self.save = save
        self.writable = writable
        self.entrypoint = entrypoint
        self.entrypointLog = entrypointLog
        self.unshare = unshare
    }

    /// Whether any Pyxis option was given.
    public var isEmpty: Bool { self == PyxisOptions() }

    /// The options the command line left unset, taken from Pyxis' variables in `variables` (an environment)
    /// (`PYXIS_CONTAINER_IMAGE`, `..._MOUNTS`, ..., see `variables`), as Pyxis reads them at
    /// submission and in each task: an option given on the command line wins, an empty variable
    /// counts as unset, and a yes-or-no one is `1`, `true`, `yes`, `y` or `0`, `false`, `no`, `n`.
    /// Where Pyxis ignores a yes-or-no value it cannot read, this refuses it, naming the variable.
    public func withEnvironmentDefaults(_ variables: [String: String]) throws(PyxisOptionsError) -> PyxisOptions {
        func text(_ name: String) -> String? {
            guard let value = variables[Self.variablePrefix + name], !value.isEmpty else { return nil }
            return value
        }
        func flag(_ name: String) throws(PyxisOptionsError) -> Bool? {
            guard let value = text(name) else { return nil }
            switch value {
            case "1", "true", "yes", "y": return true
            case "0", "false", "no", "n": return false
            default:
                throw PyxisOptionsError(option: "\(Self.variablePrefix)\(name)=\(value)",
                                        reason: "expected 1, true, yes or y, or 0, false, no or n")
            }
        }
        var options = self
        options.image = image ?? text("IMAGE")
        options.mounts = mounts ?? text("MOUNTS")
        options.workdir = workdir ?? text("WORKDIR")
        options.environment = environment ?? text("ENV")
        options.name = name ?? text("NAME")
        options.save = save ?? text("SAVE")
        options.unshare = unshare ?? text("UNSHARE")
        if mountHome == nil { options.mountHome = try flag("MOUNT_HOME") }
        if !remapRoot { options.remapRoot = try flag("REMAP_ROOT") == true }
        if entrypoint == nil { options.entrypoint = try flag("ENTRYPOINT") }
        if !entrypointLog { options.entrypointLog = try flag("ENTRYPOINT_LOG") == true }
        // As in Pyxis, PYXIS_CONTAINER_READONLY counts only where neither the command line nor
        // PYXIS_CONTAINER_WRITABLE decided (both are read, so either is refused when unreadable).
        if writable == nil {
            let writable = try flag("WRITABLE"), readOnly = try flag("READONLY")
            options.writable = writable ?? readOnly.map { !$0 }
        }
        return options
    }

    /// The prefix of Pyxis' variables, one for each option: `PYXIS_CONTAINER_IMAGE`, ...
    public static let variablePrefix = "PYXIS_CONTAINER_"
    /// The names after the prefix.
    public static let variables = ["IMAGE", "MOUNTS", "WORKDIR", "ENV", "NAME", "SAVE", "UNSHARE", "MOUNT_HOME", "REMAP_ROOT",
                                   "ENTRYPOINT", "ENTRYPOINT_LOG", "WRITABLE", "READONLY"]

    /// Refuses what can be refused without the site's configuration: the Pyxis options Shifter
    /// does not take, each with the reason and what to do, and options without an image. Returns
    /// the image as given.
    @discardableResult
    public func checkTaken() throws(PyxisOptionsError) -> String {
        if remapRoot {
            throw PyxisOptionsError(
                option: "--container-remap-root",
                reason: "Shifter runs every container as the submitting user, never as root, remapped or not; remove the option")
        }
        if let name {
            throw PyxisOptionsError(
                option: "--container-name=\(name)",
                reason: "named containers are not supported: every step of the job runs in the image as it was pulled; remove the option")
        }
        if let save {
            throw PyxisOptionsError(
                option: "--container-save=\(save)",
                reason: "saving a container is not supported; build the image with docker and import it with 'shifterimg import', or pull it from a registry")
        }
        if writable == true {
            throw PyxisOptionsError(
                option: "--container-writable",
                reason: "writable containers are not supported; write to a directory of --container-mounts, a site filesystem or /tmp")
        }
        if entrypoint == true {
            throw PyxisOptionsError(
                option: "--container-entrypoint",
                reason: "running the image's entrypoint is not supported; name it as the command (srun --container-image=IMAGE ENTRYPOINT ARGS...)")
        }
        if let unshare {
            throw PyxisOptionsError(
                option: "--container-unshare=\(unshare)",
                reason: "new namespaces are not supported: the container shares the node's network, IPC and host name, as Shifter's always do; remove the option")
        }
        guard let image, !image.isEmpty else {
            throw PyxisOptionsError(option: "--container-mounts, --container-workdir and --container-env", reason: "need --container-image")
        }
        return image
    }

    /// Shifter's request for these options.
    public struct Request: Sendable, Equatable {
        /// The image reference in Shifter's syntax (`docker:REGISTRY/IMAGE:TAG`, `local:/PATH`).
        public var image: String
        /// The volumes in Shifter's syntax, `;`-separated (may be empty).
        public var volumes: String
        /// The working directory inside the container; nil: the image's `WORKDIR`, else the current
        /// directory where the container has it, else `/`, as Pyxis does.
        public var workdir: String?
        /// Variables whose host value is set in the container over the image's, in order.
        public var environmentNames: [String]
    }

    /// Translates the options for a user whose home directory is `home`, submitting from
    /// `currentDirectory` (for relative image paths), at a site whose containers show the host
    /// directories `sitePaths` at their own paths. `isDirectory` tells whether a path is a
    /// directory, as the user sees it.
    public func request(
        home: String?, currentDirectory: String?, sitePaths: [String], isDirectory: (String) -> Bool
    ) throws(PyxisOptionsError) -> Request {
        let image = try checkTaken()
        var volumes = try Self.volumes(mounts, currentDirectory: currentDirectory)
        if mountHome == true {
            guard let home, home.hasPrefix("/") else {
                throw PyxisOptionsError(option: "--container-mount-home", reason: "the user has no absolute home directory in the passwd database")
            }
            // A home on a site filesystem is there already; any other is the host's, as in Pyxis.
            if !sitePaths.contains(where: { home == $0 || $0 == "/" || home.hasPrefix($0 + "/") }) {
                volumes.append(try Self.volume(source: home, target: home, readOnly: false, option: "--container-mount-home"))
            }
        }
        var workdir: String?
        if let requested = self.workdir {
            guard requested.hasPrefix("/") else {
                throw PyxisOptionsError(option: "--container-workdir=\(requested)", reason: "the path must be absolute")
            }
            workdir = requested
        }
        return Request(
            image: try Self.imageReference(image, currentDirectory: currentDirectory, isDirectory: isDirectory),
            volumes: volumes.joined(separator: ";"), workdir: workdir, environmentNames: try Self.environmentNames(environment))
    }

    /// `[docker://][USER@][REGISTRY#]IMAGE[:TAG]` as `docker:REGISTRY/IMAGE[:TAG]`; a path
    /// (starting with `/` or `.`) to a directory as `local:PATH`.
    static func imageReference(_ given: String, currentDirectory: String?, isDirectory: (String) -> Bool) throws(PyxisOptionsError) -> String {
        let option = "--container-image=\(given)"
        var text = given
        if text.hasPrefix("docker://") {
            text.removeFirst("docker://".count)
        } else if let colon = text.firstIndex(of: ":"), text[colon...].hasPrefix("://") {
            throw PyxisOptionsError(
                option: option,
                reason: "\(text[..<colon])://: images come from a registry through the image gateway (docker:// or no prefix); an image in a local Docker daemon cannot be reached from the nodes: push it to a registry, or save it with 'docker save' and import it with 'shifterimg import'")
        }
        if text.hasPrefix("/") || text.hasPrefix(".") {
            var path = text
            if !text.hasPrefix("/") {
                guard let currentDirectory, currentDirectory.hasPrefix("/") else {
                    throw PyxisOptionsError(option: option, reason: "a relative path needs a current directory")
                }
                path = currentDirectory + "/" + text
            }
            guard isDirectory(path) else {
                throw PyxisOptionsError(
                    option: option,
                    reason: "a path must name an unpacked image directory; import a squashfs file or image archive with shifterimg and name it by its tag")
            }
            return "local:" + path
        }
        if let at = text.firstIndex(of: "@"), !text[..<at].contains("/"), !text[..<at].contains("#"),
            !text[text.index(after: at)...].hasPrefix("sha256:")
        {
            throw PyxisOptionsError(
                option: option,
                reason: "credentials in the image name (USER@) are not taken; pull a private image once with 'shifterimg pull', which reads them, then name it without USER@")
        }
        let parts = text.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
        let name: String
        if parts.count == 2 {
            guard !parts[0].isEmpty, !parts[1].isEmpty, !parts[1].contains("#") else {
                throw PyxisOptionsError(option: option, reason: "expected REGISTRY#IMAGE[:TAG]")
            }
            name = "\(parts[0])/\(parts[1])"
        } else {
            name = text
        }
        let reference = "docker:" + name
        do {
            _ = try ImageReference.parse(reference)
        } catch {
            throw PyxisOptionsError(option: option, reason: error.reason)
        }
        return reference
    }

    /// `SRC[:DST[:FLAGS]]`, `,`-separated, flags `+`-separated, as Shifter volumes of host
    /// directories and files (the flag `host`: SRC is the host path, as in Pyxis, not the
    /// container's). A SRC starting with `.` is relative to `currentDirectory` (where srun or
    /// sbatch runs, the job's working directory), a DST starting with `.` to the container's `/`,
    /// as in Pyxis. `ro` makes a volume read-only; `rw` and the propagation flags (Shifter's mounts
    /// are private) change nothing; any other flag is refused.
    static func volumes(_ text: String?, currentDirectory: String?) throws(PyxisOptionsError) -> [String] {
        guard let text, !text.isEmpty else { return [] }
        var result: [String] = []
        for entry in text.split(separator: ",", omittingEmptySubsequences: false) {
            let option = "--container-mounts entry \"\(entry)\""
            let fields = entry.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard (1...3).contains(fields.count), !fields[0].isEmpty else {
                throw PyxisOptionsError(option: option, reason: "expected SRC[:DST[:FLAGS]]")
            }
            if fields[0] == "tmpfs" {
                result.append(try tmpfsVolume(fields, option: option))
                continue
            }
            if fields[0] == "umount" {
                guard fields.count == 2, !fields[1].isEmpty else {
                    throw PyxisOptionsError(option: option, reason: "expected umount:DST, the site mount to leave out")
                }
                do {
                    result.append(try VolumeSpec.parse("\(fields[1]):\(fields[1]):umount").canonical)
                } catch {
                    throw PyxisOptionsError(option: option, reason: error.reason)
                }
                continue
            }
            var source = fields[0]
            if source.hasPrefix(".") {
                guard let currentDirectory, currentDirectory.hasPrefix("/") else {
                    throw PyxisOptionsError(option: option, reason: "a relative source needs a current directory")
                }
                source = currentDirectory + "/" + source
            }
            var target = fields.count >= 2 && !fields[1].isEmpty ? fields[1] : fields[0]
            if target.hasPrefix(".") { target = "/" + target }
            var readOnly = false
            if fields.count == 3 {
                for flag in fields[2].split(separator: "+", omittingEmptySubsequences: false) {
                    switch flag {
                    case "ro": readOnly = true
                    case "rw": readOnly = false
                    case "private", "rprivate", "slave", "rslave", "bind", "rbind", "nosuid", "nodev": break
                    default:
                        throw PyxisOptionsError(
                            option: option,
                            reason: "flag \"\(flag)\" is not supported (known: ro, rw, bind, rbind, private, rprivate, slave, rslave, nosuid, nodev)")
                    }
                }
            }
            result.append(try volume(source: source, target: target, readOnly: readOnly, option: option))
        }
        return result
    }

    /// `tmpfs:DST[:FLAGS]`: a new tmpfs at DST, owned by the user; the flag `size=SIZE` (else
    /// the site's `tmpfsVolumeSizeLimit`), and `rw` and the propagation flags, which change
    /// nothing. Checked as the node will check it.
    static func tmpfsVolume(_ fields: [String], option: String) throws(PyxisOptionsError) -> String {
        guard fields.count >= 2, !fields[1].isEmpty else {
            throw PyxisOptionsError(option: option, reason: "a tmpfs mount needs its target: tmpfs:DST[:FLAGS]")
        }
        let target = fields[1].hasPrefix(".") ? "/" + fields[1] : fields[1]
        var flag = "tmpfs"
        if fields.count == 3 {
            for given in fields[2].split(separator: "+", omittingEmptySubsequences: false) {
                if given.hasPrefix("size=") {
                    flag = "tmpfs=" + given.dropFirst(5)
                } else if !["rw", "private", "rprivate", "nosuid", "nodev"].contains(given) {
                    throw PyxisOptionsError(
                        option: option, reason: "flag \"\(given)\" is not supported for a tmpfs (known: size=SIZE, rw, private, rprivate, nosuid, nodev)")
                }
            }
        }
        do {
            return try VolumeSpec.parse("\(target):\(target):\(flag)").canonical
        } catch {
            throw PyxisOptionsError(option: option, reason: error.reason)
        }
    }

    /// One volume of the host directory `source`, checked as the node will check it.
    static func volume(source: String, target: String, readOnly: Bool, option: String) throws(PyxisOptionsError) -> String {
        let text = "\(source):\(target)" + (readOnly ? ":ro" : "") + ":host"
        do {
            return try VolumeSpec.parse(text).canonical
        } catch {
            throw PyxisOptionsError(option: option, reason: error.reason)
        }
    }

    /// `NAME[,NAME...]`, each a valid variable name.
    static func environmentNames(_ text: String?) throws(PyxisOptionsError) -> [String] {
        guard let text, !text.isEmpty else { return [] }
        var names: [String] = []
        for name in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard EnvironmentAssignment.isValidName(name) else {
                throw PyxisOptionsError(option: "--container-env=\(text)", reason: "\"\(name)\" is not a variable name")
            }
            if !names.contains(String(name)) { names.append(String(name)) }
        }
        return names
    }
}

/// A Pyxis-style option that cannot be taken.
public struct PyxisOptionsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The option, as the user wrote it.
    public var option: String
    /// Why it is refused, and what to do instead.
    public var reason: String

    /// Creates an error.
    public init(option: String, reason: String) {
        self.option = option
        self.reason = reason
    }

    /// `OPTION: REASON`.
    public var description: String { "\(option): \(reason)" }
}
