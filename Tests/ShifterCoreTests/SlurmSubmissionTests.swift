import Testing

@testable import ShifterCore

private let jobEnvironment = [
    "SLURM_JOB_ID": "7", "SLURM_SPANK_SHIFTER_IMAGE": "id:sha256:aaa", "SLURM_SPANK_SHIFTER_VOLUME": "/a:/b",
    "SLURM_SPANK__SLURM_SPANK_OPTION_shifter_image": "docker:ubuntu:22.04",
    "SLURM_SPANK__SLURM_SPANK_OPTION_shifter_volume": "/a:/b",
]

@Suite("What submission decides")
struct SlurmSubmissionTests {
    @Test("options that cannot go together, or need an image, are refused", arguments: [
        (SlurmSubmission.Options(image: "docker:a", pyxis: PyxisOptions(image: "a")), nil as String?, SlurmSubmissionError.pyxisCombined),
        (SlurmSubmission.Options(volume: "/a:/b", pyxis: PyxisOptions(mounts: "/a:/b")), nil, .pyxisCombined),
        (SlurmSubmission.Options(volume: "/a:/b"), nil, .needsImage),
        (SlurmSubmission.Options(module: "mpich"), nil, .needsImage),
        (SlurmSubmission.Options(ccm: true), nil, .needsImage),
        (SlurmSubmission.Options(device: "example.com/gpu=0"), nil, .needsImage),
        (SlurmSubmission.Options(image: "a", device: String(repeating: "a.com/b=0,", count: 2000)), nil,
         .tooLong(option: "--device", length: 20000)),
    ] as [(SlurmSubmission.Options, String?, SlurmSubmissionError)])
    func refusals(options: SlurmSubmission.Options, requested: String?, expected: SlurmSubmissionError) {
        let plan = SlurmSubmission(command: .allocator, options: options, environment: [:])
        #expect(throws: expected) {
            try plan.check()
            _ = try plan.needsImage(requestedImage: requested ?? options.image)
        }
    }

    @Test("only a registry image of --container-image missing from the store is pulled at submission", arguments: [
        (SlurmSubmission.Options(pyxis: PyxisOptions(image: "ubuntu")), "docker:ubuntu", true),
        (SlurmSubmission.Options(pyxis: PyxisOptions(image: "./rootfs")), "local:/work/rootfs", false),
        // Shifter's own --image asks the user to pull first.
        (SlurmSubmission.Options(image: "docker:ubuntu"), "docker:ubuntu", false),
        // A step carrying the job's image resolves the job's id, never a name.
        (SlurmSubmission.Options(pyxis: PyxisOptions(image: "ubuntu")), "id:sha256:aaa", false),
    ] as [(SlurmSubmission.Options, String, Bool)])
    func pullsOnDemand(options: SlurmSubmission.Options, reference: String, pulled: Bool) {
        #expect(SlurmSubmission(command: .srun, options: options, environment: [:]).pullsMissingImage(reference) == pulled)
    }

    @Test("the --no- forms of the Pyxis flags are not Pyxis options", arguments: [
        (PyxisOptions(mountHome: false), false), (PyxisOptions(mountHome: true), true),
        (PyxisOptions(remapRoot: true), true), (PyxisOptions(workdir: "/w"), true), (PyxisOptions(), false),
    ])
    func pyxisGiven(pyxis: PyxisOptions, given: Bool) {
        #expect(SlurmSubmission.Options(pyxis: pyxis).pyxisGiven == given)
        let plan = SlurmSubmission(command: .srun, options: .init(image: "docker:a", pyxis: pyxis), environment: [:])
        if given {
            #expect(throws: SlurmSubmissionError.pyxisCombined) { try plan.check() }
        } else {
            #expect(throws: Never.self) { try plan.check() }
        }
    }

    @Test("nothing is done without an image or the options that need one")
    func nothing() throws {
        let plan = SlurmSubmission(command: .srun, options: .init(), environment: jobEnvironment)
        #expect(try plan.needsImage(requestedImage: nil) == false)
    }

    @Test("which image a submission resolves, and whether its step runs its own container", arguments: [
        // sbatch: a new job resolves what it names, and its steps are not told anything.
        (SlurmSubmission.Command.allocator, "docker:ubuntu:22.04", nil, [String: String](), "docker:ubuntu:22.04", false),
        // srun outside a job: a new job.
        (.srun, "docker:ubuntu:22.04", nil, [:], "docker:ubuntu:22.04", false),
        // srun inside the job carrying the job's --image: the job's id stands.
        (.srun, "docker:ubuntu:22.04", "/a:/b", jobEnvironment, "id:sha256:aaa", false),
        // srun inside the job naming another image: resolved, and the step has its own container.
        (.srun, "docker:alpine:3", nil, jobEnvironment, "docker:alpine:3", true),
        // srun inside a job that had no image, naming one.
        (.srun, "docker:alpine:3", nil, ["SLURM_JOB_ID": "7"], "docker:alpine:3", true),
    ] as [(SlurmSubmission.Command, String, String?, [String: String], String, Bool)])
    func image(command: SlurmSubmission.Command, image: String, volume: String?, environment: [String: String],
               resolved: String, ownContainer: Bool) {
        let plan = SlurmSubmission(command: command, options: .init(image: image, volume: volume), environment: environment)
        #expect(plan.imageToResolve(requested: image) == resolved)
        let id = resolved.hasPrefix("id:") ? resolved : "id:sha256:bbb"
        let step = plan.stepVariables(imageID: id, volumes: volume ?? "")
        #expect(step.isEmpty == !ownContainer)
        if ownContainer { #expect(step.map(\.name) == ["SHIFTER_STEP_IMAGE", "SHIFTER_STEP_VOLUME"]) }
    }

    @Test("a step that names its own volumes with the job's image runs its own container")
    func ownVolumes() {
        let plan = SlurmSubmission(command: .srun, options: .init(image: "docker:ubuntu:22.04", volume: "/c:/d"),
                                   environment: jobEnvironment)
        #expect(plan.volumesGivenHere && !plan.imageGivenHere)
        #expect(plan.imageToResolve(requested: "docker:ubuntu:22.04") == "id:sha256:aaa")
        #expect(plan.stepVariables(imageID: "id:sha256:aaa", volumes: "/c:/d").map(\.value) == ["id:sha256:aaa", "/c:/d"])
        // Named again, but the same as the job's: the prepared root serves.
        #expect(plan.stepVariables(imageID: "id:sha256:aaa", volumes: "/a:/b").isEmpty)
    }

    @Test("long_options names the inherited options --shifter-image and --shifter-volume")
    func longOptions() {
        let environment = ["SLURM_JOB_ID": "7", "SLURM_SPANK__SLURM_SPANK_OPTION_shifter_shifter_image": "docker:a"]
        let inherited = SlurmSubmission(command: .srun, options: .init(image: "docker:a", longOptions: true),
                                        environment: environment)
        #expect(!inherited.imageGivenHere)
        let short = SlurmSubmission(command: .srun, options: .init(image: "docker:a"), environment: environment)
        #expect(short.imageGivenHere)
    }

    @Test("the job's variables, and its sshd keys once per job", arguments: [
        (SlurmSubmission.Command.allocator, [String: String](), true),
        (.srun, [:], true),
        (.srun, ["SLURM_JOB_ID": "7"], false),
    ] as [(SlurmSubmission.Command, [String: String], Bool)])
    func jobVariables(command: SlurmSubmission.Command, environment: [String: String], keys: Bool) {
        let plan = SlurmSubmission(command: command, options: .init(image: "local:/x", module: "mpich", ccm: true),
                                   environment: environment)
        #expect(plan.makesSSHKeys == keys)
        let variables = plan.jobVariables(imageID: "local:/x", volumes: "")
        #expect(variables.map { "\($0.name)=\($0.value)" }
            == ["SHIFTER_IMAGE=local:/x", "SHIFTER_IMAGETYPE=local", "SHIFTER_VOLUME=", "SHIFTER_MODULE=mpich"])
    }
}

@Suite("What a step's tasks are given")
struct SlurmStepEnvironmentTests {
    private static let root = (image: "id:sha256:aaa", volumes: "/a:/b")

    @Test("the prepared root, the step's own container, or nothing", arguments: [
        (true, [String: String](), "mpich", ["SHIFTER_IMAGE=id:sha256:aaa", "SHIFTER_IMAGETYPE=id", "SHIFTER_VOLUME=/a:/b", "SHIFTER_MODULE=mpich"], false, nil),
        (true, ["SHIFTER_STEP_IMAGE": "id:sha256:aaa", "SHIFTER_STEP_VOLUME": "/a:/b"], nil,
         ["SHIFTER_IMAGE=id:sha256:aaa", "SHIFTER_IMAGETYPE=id", "SHIFTER_VOLUME=/a:/b"], false, nil),
        (true, ["SHIFTER_STEP_IMAGE": "local:/x"], "m",
         ["SHIFTER_IMAGE=local:/x", "SHIFTER_IMAGETYPE=local", "SHIFTER_VOLUME=", "SHIFTER_MODULE=m"], true, "local:/x|"),
        (true, ["SHIFTER_STEP_IMAGE": "id:sha256:aaa", "SHIFTER_STEP_VOLUME": "/c:/d"], nil,
         ["SHIFTER_IMAGE=id:sha256:aaa", "SHIFTER_IMAGETYPE=id", "SHIFTER_VOLUME=/c:/d"], true, "id:sha256:aaa|/c:/d"),
        (false, ["SHIFTER_STEP_IMAGE": "id:sha256:bbb", "SHIFTER_STEP_VOLUME": "/c:/d"], "m",
         ["SHIFTER_IMAGE=id:sha256:bbb", "SHIFTER_IMAGETYPE=id", "SHIFTER_VOLUME=/c:/d"], false, "id:sha256:bbb|/c:/d"),
        (false, ["SHIFTER_STEP_IMAGE": ""], "m", [], false, nil),
        (false, [:], nil, [], false, nil),
    ] as [(Bool, [String: String], String?, [String], Bool, String?)])
    func variables(hasRoot: Bool, step: [String: String], module: String?, expected: [String], own: Bool, container: String?) {
        let plan = SlurmStepEnvironment(root: hasRoot ? Self.root : nil, stepEnvironment: step, module: module)
        #expect(plan.variables.map { "\($0.name)=\($0.value)" } == expected)
        #expect(plan.ownImage == own)
        #expect(plan.stepContainer.map { $0.image + "|" + $0.volumes } == container)
    }

    @Test("a step's own container named by values longer than an option may be is refused", arguments: [
        ("id:sha256:bbb", "/c:/d", nil),
        ("id:sha256:bbb", String(repeating: "/c:/d;", count: 3000), "SHIFTER_STEP_VOLUME is 18000 bytes, more than the 16384 an option may have"),
        ("local:/" + String(repeating: "x", count: 16384 - 7), "", nil),
        ("local:/" + String(repeating: "x", count: 16385 - 7), "", "SHIFTER_STEP_IMAGE is 16385 bytes, more than the 16384 an option may have"),
    ] as [(String, String, String?)])
    func stepContainerLength(image: String, volumes: String, problem: String?) {
        let plan = SlurmStepEnvironment(root: nil, stepEnvironment: ["SHIFTER_STEP_IMAGE": image, "SHIFTER_STEP_VOLUME": volumes],
                                        module: nil)
        #expect(plan.stepContainerProblem == problem)
    }
}
