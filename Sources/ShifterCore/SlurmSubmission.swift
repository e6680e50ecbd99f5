/// What the SPANK plugin does at submission (sbatch, salloc, srun), decided from the options the
/// command was given and its environment, before any image is resolved. The plugin sets the
/// variables this plan names and nothing else; docs/architecture.md lists them ("The environment
/// protocol").
public struct SlurmSubmission: Sendable, Equatable {
    /// The command that submits.
    public enum Command: Sendable, Equatable {
        /// sbatch or salloc (Slurm's allocator context): a new job.
        case allocator
        /// srun (Slurm's local context): a new job, or a step of the job it runs in.
        case srun
    }

    /// Shifter's options as the command was given them.
    public struct Options: Sendable, Equatable {
        public var image: String?
        public var volume: String?
        public var module: String?
        /// `--ccm`.
        public var ccm = false
        /// The Pyxis-style options (pyxis_compat=1).
        public var pyxis = PyxisOptions()
        /// The plugstack argument long_options: the options are --shifter-image and --shifter-volume.
        public var longOptions = false
        /// `--device`: CDI device names, comma-separated.
        public var device: String?

        /// Creates options; every field is optional.
        public init(image: String? = nil, volume: String? = nil, module: String? = nil, ccm: Bool = false,
                    pyxis: PyxisOptions = PyxisOptions(), longOptions: Bool = false, device: String? = nil) {
            self.device = device
            self.image = image
            self.volume = volume
            self.module = module
            self.ccm = ccm
            self.pyxis = pyxis
            self.longOptions = longOptions
        }

        /// Whether a Pyxis-style option was given; those that ask for the default (the `--no-`
        /// forms, `--container-readonly`, `--container-entrypoint-log`) do not count.
        public var pyxisGiven: Bool {
            pyxis.image != nil || pyxis.mounts != nil || pyxis.workdir != nil || pyxis.environment != nil
                || pyxis.mountHome == true || pyxis.remapRoot || pyxis.name != nil || pyxis.save != nil
                || pyxis.writable == true || pyxis.entrypoint == true || pyxis.unshare != nil
        }
    }

    public var command: Command
    public var options: Options
    /// The command's environment.
    public var environment: [String: String]

    public init(command: Command, options: Options, environment: [String: String]) {
        self.command = command
        self.options = options
        self.environment = environment
    }

    /// The longest value an option may have. Slurm hands each option to the job's prolog and
    /// epilog as one environment variable, and the kernel starts no program with a variable over
    /// 128 KiB: the prolog would fail and Slurm would drain the node.
    public static let optionValueLimit = 16 << 10

    /// Refuses options that cannot go together, or too long, before anything is resolved.
    public func check() throws(SlurmSubmissionError) {
        let pyxis = options.pyxis
        let values: [(String, String?)] = [
            ("--image", options.image), ("--volume", options.volume), ("--module", options.module), ("--device", options.device),
            ("--container-image", pyxis.image), ("--container-mounts", pyxis.mounts), ("--container-workdir", pyxis.workdir),
            ("--container-env", pyxis.environment), ("--container-name", pyxis.name), ("--container-save", pyxis.save),
            ("--container-unshare", pyxis.unshare),
        ]
        for case let (option, value?) in values where value.utf8.count > Self.optionValueLimit {
            throw .tooLong(option: option, length: value.utf8.count)
        }
        if options.pyxisGiven, options.image != nil || options.volume != nil { throw .pyxisCombined }
    }

    /// Refuses options that need an image when `requestedImage` (from --image or
    /// --container-image) is nil; false when there is nothing to do.
    public func needsImage(requestedImage: String?) throws(SlurmSubmissionError) -> Bool {
        if requestedImage != nil { return true }
        if options.volume != nil || options.module != nil || options.ccm || options.device != nil { throw .needsImage }
        return false
    }

    /// An srun inside a job: a step of that job, whose prolog has run.
    public var isStep: Bool { command == .srun && environment["SLURM_JOB_ID"] != nil }

    /// The job's resolved image and volumes, which Slurm hands to the job's environment.
    public var jobImage: String? { environment["SLURM_SPANK_SHIFTER_IMAGE"].flatMap { $0.isEmpty ? nil : $0 } }
    public var jobVolumes: String { environment["SLURM_SPANK_SHIFTER_VOLUME"] ?? "" }

    /// Whether this srun named `option` (with `value`) itself, rather than carrying the job's:
    /// Slurm hands sbatch's and salloc's options to the srun commands of the job through the
    /// environment, under names in which every character of the plugin's and the option's names
    /// that is not a letter or a digit becomes `_`.
    public func givenHere(_ option: String, _ value: String?) -> Bool {
        guard let value else { return false }
        return environment["SLURM_SPANK__SLURM_SPANK_OPTION_shifter_" + option] != value
    }

    /// Whether this srun named --image or --container-image itself.
    public var imageGivenHere: Bool {
        givenHere(options.longOptions ? "shifter_image" : "image", options.image)
            || givenHere("container_image", options.pyxis.image)
    }

    /// Whether this srun named --volume or --container-mounts itself: its volumes then differ
    /// from the job's even with the job's image.
    public var volumesGivenHere: Bool {
        givenHere(options.longOptions ? "shifter_volume" : "volume", options.volume)
            || givenHere("container_mounts", options.pyxis.mounts)
    }

    /// The image to resolve. A step carrying the job's --image keeps the job's image id, resolved
    /// once at submission: resolving the tag again would ask the gateway once per step, and fail
    /// every step while the gateway is down. Only a step that names another image resolves it.
    public func imageToResolve(requested: String) -> String {
        if isStep, !imageGivenHere, let jobImage { return jobImage }
        return requested
    }

    /// Whether `reference` (what `imageToResolve` gave), missing from the image store, is pulled
    /// at submission, as Pyxis imports an image at its first use: a registry image named by
    /// `--container-image` (or `PYXIS_CONTAINER_IMAGE`). Shifter's own `--image` asks the user to
    /// pull first, as it always has.
    public func pullsMissingImage(_ reference: String) -> Bool {
        options.pyxis.image != nil && options.image == nil && reference.hasPrefix("docker:")
    }

    /// The job control variables for the resolved `imageID` and `volumes`, and the job's CDI
    /// `devices` (canonical, comma-separated; the prolog reads them as SPANK_SHIFTER_DEVICE).
    public func jobVariables(imageID: String, volumes: String, devices: String = "") -> [(name: String, value: String)] {
        var variables = [("SHIFTER_IMAGE", imageID), ("SHIFTER_IMAGETYPE", imageID.hasPrefix("local:") ? "local" : "id"),
                         ("SHIFTER_VOLUME", volumes), ("SHIFTER_MODULE", options.module ?? "")]
        if !devices.isEmpty { variables.append(("SHIFTER_DEVICE", devices)) }
        return variables
    }

    /// The job's CDI devices, as its submission recorded them.
    public var jobDevices: String { environment["SLURM_SPANK_SHIFTER_DEVICE"] ?? "" }

    /// Refuses a step's `--device` that is not the job's: devices are put in the job's root by
    /// the prolog, once for all its steps.
    public func checkStepDevices(_ devices: String) throws(SlurmSubmissionError) {
        guard isStep, givenHere(options.longOptions ? "shifter_device" : "device", options.device), devices != jobDevices else { return }
        throw .stepDevices
    }

    /// Whether the job's sshd keys are made: once, for a new job with --ccm. A step has the job's.
    public var makesSSHKeys: Bool { options.ccm && !isStep }

    /// A step whose --image or --volume differs from the job's: the nodes hold the job's prepared
    /// root, so the step's tasks are told to run the step's own container. The variables go into
    /// srun's own environment, which srun hands to the tasks. Empty when the job's root serves.
    public func stepVariables(imageID: String, volumes: String) -> [(name: String, value: String)] {
        guard isStep, imageGivenHere || volumesGivenHere, jobImage != imageID || jobVolumes != volumes else { return [] }
        return [("SHIFTER_STEP_IMAGE", imageID), ("SHIFTER_STEP_VOLUME", volumes)]
    }

    /// What srun tells the user when the step runs its own container.
    public static let stepContainerNotice = "shifter: srun: this step's --image or --volume differs from the job's; each "
        + "task that runs shifter builds its own container, which starts slower than the job's prepared one"

    /// The same, where tasks enter through namespaces (`entryMode=userns`): the step's container is
    /// built once on each node before its tasks start, and removed when the step ends.
    public static let stepRootNotice = "shifter: srun: this step's --image or --volume differs from the job's; its "
        + "container is built on each node before the tasks start, which starts slower than the job's prepared one"
}

/// Options a submission refuses.
public enum SlurmSubmissionError: Error, Sendable, Equatable, CustomStringConvertible {
    case pyxisCombined
    case needsImage
    case stepDevices
    case tooLong(option: String, length: Int)

    public var description: String {
        switch self {
        case .pyxisCombined: "--image and --volume cannot be combined with the Pyxis-style --container-* options; use one kind"
        case .needsImage: "--volume, --module, --ccm and --device need --image"
        case .tooLong(let option, let length):
            "\(option): the value is \(length) bytes, more than the \(SlurmSubmission.optionValueLimit) an option may have (Slurm hands it to every node's prolog in one environment variable)"
        case .stepDevices: "--device: a job's devices are set up once for all its steps; give --device to sbatch or salloc, not to srun inside the job"
        }
    }
}

/// What a job step's tasks are given (slurmstepd): the image and volumes of the job's prepared
/// root, or of the step's own container (`SHIFTER_STEP_IMAGE`, set by its srun).
public struct SlurmStepEnvironment: Sendable, Equatable {
    /// The variables for the tasks' environment, in order.
    public var variables: [(name: String, value: String)]
    /// Whether the step runs its own image instead of the prepared root's.
    public var ownImage: Bool
    /// The image and volumes of the step's own container, where it runs one instead of the job's
    /// prepared root (another image or other volumes, or a job that has none); nil otherwise.
    public var stepContainer: (image: String, volumes: String)?

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.ownImage == rhs.ownImage && lhs.variables.map { [$0.name, $0.value] } == rhs.variables.map { [$0.name, $0.value] }
            && lhs.stepContainer.map { [$0.image, $0.volumes] } == rhs.stepContainer.map { [$0.image, $0.volumes] }
    }

    /// Why the step's own container cannot be built from what the step's environment names, or
    /// nil: a value longer than an option may be at submission (the variables can be set by hand).
    public var stepContainerProblem: String? {
        guard let container = stepContainer else { return nil }
        for (name, value) in [("SHIFTER_STEP_IMAGE", container.image), ("SHIFTER_STEP_VOLUME", container.volumes)]
        where value.utf8.count > SlurmSubmission.optionValueLimit {
            return "\(name) is \(value.utf8.count) bytes, more than the \(SlurmSubmission.optionValueLimit) an option may have"
        }
        return nil
    }

    /// Plans the tasks' variables from the prepared root (`root`, nil when this node has none),
    /// the step's environment and `module` (--module).
    public init(root: (image: String, volumes: String)?, stepEnvironment: [String: String], module: String?) {
        var step: (image: String, volumes: String)?
        if let image = stepEnvironment["SHIFTER_STEP_IMAGE"], !image.isEmpty {
            step = (image, stepEnvironment["SHIFTER_STEP_VOLUME"] ?? "")
        }
        ownImage = false
        variables = []
        let chosen: (image: String, volumes: String)
        if let root {
            if let step, step.image != root.image || step.volumes != root.volumes {
                chosen = step
                ownImage = true
            } else {
                chosen = root
            }
        } else if let step {
            // No prepared root: a step with its own image builds it in each task.
            chosen = step
        } else {
            return
        }
        variables = [("SHIFTER_IMAGE", chosen.image), ("SHIFTER_IMAGETYPE", chosen.image.hasPrefix("local:") ? "local" : "id"),
                     ("SHIFTER_VOLUME", chosen.volumes)]
        if root == nil || ownImage { stepContainer = chosen }
        if root != nil, let module { variables.append(("SHIFTER_MODULE", module)) }
    }
}
