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

    /// Creates options; every field is optional.
    public init(
        image: String? = nil, mounts: String? = nil, workdir: String? = nil, environment: String? = nil,
        mountHome: Bool? = nil, remapRoot: Bool = false
    ) {
        self.image = image
        self.mounts = mounts
        self.workdir = workdir
        self.environment = environment
        self.mountHome = mountHome
        self.remapRoot = remapRoot
    }

    /// Whether any Pyxis option was given.
    public var isEmpty: Bool {
        image == nil && mounts == nil && workdir == nil && environment == nil && mountHome == nil && !remapRoot
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
        if remapRoot {
            throw PyxisOptionsError(
                option: "--container-remap-root",
                reason: "Shifter runs every container as the submitting user, never as root, remapped or not; remove the option")
        }
        guard let image, !image.isEmpty else {
            throw PyxisOptionsError(option: "--container-mounts, --container-workdir and --container-env", reason: "need --container-image")
        }
        var volumes = try Self.volumes(mounts)
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

    /// `[USER@][REGISTRY#]IMAGE[:TAG]` as `docker:REGISTRY/IMAGE[:TAG]`; a path (starting with `/`
    /// or `.`) to a directory as `local:PATH`.
    static func imageReference(_ text: String, currentDirectory: String?, isDirectory: (String) -> Bool) throws(PyxisOptionsError) -> String {
        let option = "--container-image=\(text)"
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
    /// directories (the flag `host`: SRC is the host path, as in Pyxis, not the container's). `ro`
    /// makes a volume read-only; `rw` and the propagation flags (Shifter's mounts are private)
    /// change nothing; any other flag is refused.
    static func volumes(_ text: String?) throws(PyxisOptionsError) -> [String] {
        guard let text, !text.isEmpty else { return [] }
        var result: [String] = []
        for entry in text.split(separator: ",", omittingEmptySubsequences: false) {
            let option = "--container-mounts entry \"\(entry)\""
            let fields = entry.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard (1...3).contains(fields.count), !fields[0].isEmpty else {
                throw PyxisOptionsError(option: option, reason: "expected SRC[:DST[:FLAGS]]")
            }
            let source = fields[0]
            let target = fields.count >= 2 && !fields[1].isEmpty ? fields[1] : source
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
