/// The options of the `shifter` command (SPEC section 3).
///
/// Parsing follows getopt with `+` (POSIX mode): it stops at the first non-option or after `--`, so
/// the command's own options are never taken for shifter's. Short options may be bundled (`-Ev`),
/// and a short option that takes a value takes the rest of its word or the next word (`-iX`,
/// `-i X`). Long options take `--name=VALUE` or `--name VALUE`, except `--entrypoint` and
/// `--workdir`, whose value is optional and therefore only given with `=` (or attached, `-wPATH`).
/// Long options must be spelled out in full.
public struct ShifterOptions: Sendable, Equatable {
    /// The image reference as given, `TYPE:` added from `SHIFTER_IMAGETYPE` when it came from the
    /// environment; parse it with `imageReference(defaultType:)` once the site config is read.
    public var image: String?
    /// Where `image` came from, for messages: `--image`, `SHIFTER_IMAGE` or `SLURM_SPANK_SHIFTER_IMAGE`.
    public var imageOrigin: String?
    /// The volumes: from `-V` if any was given, else from `SHIFTER_VOLUME`.
    public var volumes: [VolumeSpec] = []
    /// `--entrypoint[=CMD]`.
    public var entrypoint: EntrypointRequest?
    /// `-w, --workdir[=PATH]`.
    public var workdir: WorkdirRequest?
    /// `-e, --env`, in order.
    public var environment: [EnvironmentAssignment] = []
    /// `--env-file` paths, in order.
    public var environmentFiles: [String] = []
    /// `-E, --clearenv`.
    public var clearEnvironment = false
    /// `-m, --module`, else `SHIFTER_MODULE`, else the site default.
    public var modules: ModuleRequest = .siteDefault
    /// `-v, --verbose`.
    public var verbose = false
    /// `-h, --help`.
    public var help = false
    /// `--version`.
    public var version = false
    /// `--config=PATH`: another `udiRoot.conf`.
    public var configPath: String?
    /// The command and its arguments.
    public var command: [String] = []

    /// Creates empty options.
    public init() {}

    private enum Arity {
        case flag, required, optional
    }

    // Switches rather than dictionaries: a setuid program's start should not pay for building tables.
    private static func longOption(_ name: String) -> Arity? {
        switch name {
        case "image", "volume", "env", "env-file", "module", "config": return .required
        case "entrypoint", "workdir": return .optional
        case "clearenv", "verbose", "help", "version": return .flag
        default: return nil
        }
    }

    private static func shortOption(_ letter: Character) -> (long: String, arity: Arity)? {
        switch letter {
        case "i": return ("image", .required)
        case "V": return ("volume", .required)
        case "e": return ("env", .required)
        case "m": return ("module", .required)
        case "w": return ("workdir", .optional)
        case "E": return ("clearenv", .flag)
        case "v": return ("verbose", .flag)
        case "h": return ("help", .flag)
        default: return nil
        }
    }

    /// The environment variables consulted when an option is not given, in order of preference.
    public static let environmentPrefixes = ["SHIFTER_", "SLURM_SPANK_SHIFTER_"]

    /// Parses the arguments after the program name, falling back to `environment` as SPEC section 3 says.
    ///
    /// `SHIFTER_IMAGE` (else `SLURM_SPANK_SHIFTER_IMAGE`) is used without `--image`, with the type
    /// from the `IMAGETYPE` variable of the same family. `SHIFTER_VOLUME` and `SHIFTER_MODULE`
    /// (or their `SLURM_SPANK_` forms) are used unless `-V` or `-m` is given. Empty variables count
    /// as unset.
    public static func parse(
        arguments: [String], environment: [String: String]
    ) throws(ShifterOptionsError) -> ShifterOptions {
        var options = ShifterOptions()
        var volumesGiven = false
        var modulesGiven = false
        var index = 0
        parsing: while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" { break }
            if argument.hasPrefix("--") {
                let body = argument.dropFirst(2)
                let equals = body.firstIndex(of: "=")
                let name = String(body[..<(equals ?? body.endIndex)])
                let attached = equals.map { String(body[body.index(after: $0)...]) }
                let display = "--" + name
                guard let arity = longOption(name) else {
                    throw ShifterOptionsError(option: display, reason: "unknown option")
                }
                var value = attached
                switch arity {
                case .flag:
                    if attached != nil { throw ShifterOptionsError(option: display, reason: "takes no value") }
                case .required:
                    if value == nil {
                        guard index < arguments.count else { throw ShifterOptionsError(option: display, reason: "needs a value") }
                        value = arguments[index]
                        index += 1
                    }
                case .optional:
                    break
                }
                try options.apply(name, value: value, display: display, volumesGiven: &volumesGiven, modulesGiven: &modulesGiven)
            } else if argument.hasPrefix("-") && argument.count > 1 {
                var rest = argument.dropFirst()
                while let letter = rest.first {
                    rest = rest.dropFirst()
                    let display = "-" + String(letter)
                    guard let (name, arity) = shortOption(letter) else {
                        throw ShifterOptionsError(option: display, reason: "unknown option")
                    }
                    switch arity {
                    case .flag:
                        try options.apply(name, value: nil, display: display, volumesGiven: &volumesGiven, modulesGiven: &modulesGiven)
                    case .required:
                        var value = String(rest)
                        if rest.isEmpty {
                            guard index < arguments.count else { throw ShifterOptionsError(option: display, reason: "needs a value") }
                            value = arguments[index]
                            index += 1
                        }
                        try options.apply(name, value: value, display: display, volumesGiven: &volumesGiven, modulesGiven: &modulesGiven)
                        continue parsing
                    case .optional:
                        try options.apply(
                            name, value: rest.isEmpty ? nil : String(rest), display: display, volumesGiven: &volumesGiven,
                            modulesGiven: &modulesGiven)
                        continue parsing
                    }
                }
            } else {
                index -= 1
                break
            }
        }
        options.command = Array(arguments[index...])
        try options.applyEnvironment(environment, volumesGiven: volumesGiven, modulesGiven: modulesGiven)
        return options
    }

    private mutating func apply(
        _ name: String, value: String?, display: String, volumesGiven: inout Bool, modulesGiven: inout Bool
    ) throws(ShifterOptionsError) {
        if let value, value.isEmpty { throw ShifterOptionsError(option: display, reason: "needs a value") }
        let text = value ?? ""
        switch name {
        case "image":
            image = text
            imageOrigin = "--image"
        case "volume":
            let added: [VolumeSpec]
            do {
                added = try VolumeSpec.parseList(text)
            } catch {
                throw ShifterOptionsError(option: display, reason: error.description)
            }
            let earlier = volumesGiven ? volumes : []
            if let clash = added.first(where: { volume in earlier.contains { $0.target == volume.target } }) {
                throw ShifterOptionsError(option: display, reason: "another volume already targets \(clash.target)")
            }
            volumes = earlier + added
            volumesGiven = true
        case "env":
            do {
                environment.append(try EnvironmentAssignment.parse(text))
            } catch {
                throw ShifterOptionsError(option: display, reason: error.description)
            }
        case "env-file": environmentFiles.append(text)
        case "module":
            do {
                modules = try ModuleRequest.parse(text)
            } catch {
                throw ShifterOptionsError(option: display, reason: error.description)
            }
            modulesGiven = true
        case "config": configPath = text
        case "entrypoint": entrypoint = value.map(EntrypointRequest.command) ?? .image
        case "workdir":
            if let value {
                guard value.hasPrefix("/"), !value.utf8.contains(0) else {
                    throw ShifterOptionsError(option: display, reason: "\(quoted(value)) is not an absolute path")
                }
                workdir = .path(value)
            } else {
                workdir = .image
            }
        case "clearenv": clearEnvironment = true
        case "verbose": verbose = true
        case "help": help = true
        default: version = true
        }
    }

    private mutating func applyEnvironment(
        _ variables: [String: String], volumesGiven: Bool, modulesGiven: Bool
    ) throws(ShifterOptionsError) {
        func lookup(_ suffix: String) -> (name: String, prefix: String, value: String)? {
            for prefix in Self.environmentPrefixes {
                if let value = variables[prefix + suffix], !value.isEmpty { return (prefix + suffix, prefix, value) }
            }
            return nil
        }
        if image == nil, let found = lookup("IMAGE") {
            var text = found.value
            if let type = variables[found.prefix + "IMAGETYPE"], !type.isEmpty {
                guard ImageType(rawValue: type) != nil else {
                    throw ShifterOptionsError(
                        option: found.prefix + "IMAGETYPE",
                        reason: "\(quoted(type)) is not one of \(ImageType.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                let hasTypePrefix = text.firstIndex(of: ":").map { ImageType(rawValue: String(text[..<$0])) != nil } ?? false
                if !hasTypePrefix { text = type + ":" + text }
            }
            image = text
            imageOrigin = found.name
        }
        if !volumesGiven, let found = lookup("VOLUME") {
            do {
                volumes = try VolumeSpec.parseList(found.value)
            } catch {
                throw ShifterOptionsError(option: found.name, reason: error.description)
            }
        }
        if !modulesGiven, let found = lookup("MODULE") {
            do {
                modules = try ModuleRequest.parse(found.value)
            } catch {
                throw ShifterOptionsError(option: found.name, reason: error.description)
            }
        }
    }

    /// Parses `image` with the site's default type; `nil` when no image was given.
    public func imageReference(defaultType: ImageType) throws(ShifterOptionsError) -> ImageReference? {
        guard let image else { return nil }
        do {
            return try ImageReference.parse(image, defaultType: defaultType)
        } catch {
            throw ShifterOptionsError(option: imageOrigin ?? "--image", reason: error.description)
        }
    }
}

/// A `shifter` command line or environment that cannot be used.
public struct ShifterOptionsError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The option or environment variable at fault: `--image`, `-V`, `SHIFTER_VOLUME`.
    public var option: String
    /// What is wrong with it.
    public var reason: String

    /// Creates an error for `option` that failed for `reason`.
    public init(option: String, reason: String) {
        self.option = option
        self.reason = reason
    }

    /// One line: `--volume: volume "/a:/etc": target may not be /etc`.
    public var description: String { "\(escaped(option)): \(reason)" }
}
