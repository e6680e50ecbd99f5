import Testing

@testable import ShifterCore

@Suite("Pyxis-style task plan")
struct PyxisTaskPlanTests {
    @Test("the task runs shifter with its command", arguments: [
        (nil, ["hostname"], nil, ["/usr/bin/shifter", "--workdir", "--", "hostname"]),
        ("/data", ["ls", "-l"], nil, ["/usr/bin/shifter", "--workdir=/data", "--", "ls", "-l"]),
        (nil, ["/var/spool/slurmd/job00005/slurm_script", "a"], "/proc/self/fd/7",
         ["/usr/bin/shifter", "--workdir", "--", "/proc/self/fd/7", "a"]),
        ("/w", ["--", "-x"], nil, ["/usr/bin/shifter", "--workdir=/w", "--", "--", "-x"]),
    ] as [(String?, [String], String?, [String])])
    func arguments(workdir: String?, command: [String], script: String?, expected: [String]) throws {
        let plan = try PyxisTaskPlan(shifter: "/usr/bin/shifter", workdir: workdir, environmentNames: nil,
                                     command: command, environment: ["A=1"], batchScript: script)
        #expect(plan.arguments == expected)
        #expect(plan.environment == ["A=1"])
    }

    @Test("--container-env travels as SHIFTER_KEEP_ENV, replacing the task's own", arguments: [
        (nil, ["A=1", "SHIFTER_KEEP_ENV=X"], ["A=1", "SHIFTER_KEEP_ENV=X"]),
        ("CUDA_VERSION", ["A=1"], ["A=1", "SHIFTER_KEEP_ENV=CUDA_VERSION"]),
        ("B,C", ["SHIFTER_KEEP_ENV=X", "A=1", "SHIFTER_KEEP_ENV=Y"], ["A=1", "SHIFTER_KEEP_ENV=B,C"]),
        ("B", ["SHIFTER_KEEP_ENVX=1"], ["SHIFTER_KEEP_ENVX=1", "SHIFTER_KEEP_ENV=B"]),
        ("", [], ["SHIFTER_KEEP_ENV="]),
    ] as [(String?, [String], [String])])
    func environment(names: String?, environment: [String], expected: [String]) throws {
        let plan = try PyxisTaskPlan(shifter: "/s", workdir: nil, environmentNames: names, command: ["true"],
                                     environment: environment)
        #expect(plan.environment == expected)
    }

    @Test("an empty command is refused")
    func emptyCommand() {
        #expect(throws: PyxisTaskPlanError.emptyCommand) {
            try PyxisTaskPlan(shifter: "/s", workdir: nil, environmentNames: nil, command: [], environment: [])
        }
    }

    @Test("the shifter command is configured, or lies beside the library's prefix", arguments: [
        ("/opt/bin/shifter", "/usr/lib/shifter/shifter_spank.so", "/opt/bin/shifter"),
        (nil, "/usr/lib/shifter/shifter_spank.so", "/usr/bin/shifter"),
        ("", "/var/tmp/bed/install/lib/shifter/shifter_spank.so", "/var/tmp/bed/install/bin/shifter"),
        (nil, "/lib/shifter/shifter_spank.so", nil),
        (nil, "shifter_spank.so", nil),
        (nil, nil, nil),
    ] as [(String?, String?, String?)])
    func shifterCommand(configured: String?, library: String?, expected: String?) {
        #expect(PyxisTaskPlan.shifterCommand(configured: configured, library: library) == expected)
    }

    @Test("a task's options: the step's, then its own PYXIS_CONTAINER_IMAGE, _WORKDIR and _ENV; nil for no image", arguments: [
        (PyxisOptions(), [:], nil as PyxisOptions?),
        (PyxisOptions(), ["PYXIS_CONTAINER_IMAGE": ""], nil),
        (PyxisOptions(image: "a"), [:], PyxisOptions(image: "a")),
        (PyxisOptions(), ["PYXIS_CONTAINER_IMAGE": "b", "SHIFTER_IMAGE": "id:x", "PYXIS_CONTAINER_WORKDIR": "/w", "PYXIS_CONTAINER_ENV": "A"],
         PyxisOptions(image: "b", workdir: "/w", environment: "A")),
        (PyxisOptions(image: "a", workdir: "/d"), ["PYXIS_CONTAINER_IMAGE": "b", "PYXIS_CONTAINER_WORKDIR": "/w"],
         PyxisOptions(image: "a", workdir: "/d")),
        // Submission judged the rest: a task reads no other variable.
        (PyxisOptions(image: "a"), ["PYXIS_CONTAINER_MOUNT_HOME": "maybe", "PYXIS_CONTAINER_MOUNTS": "/x"], PyxisOptions(image: "a")),
    ] as [(PyxisOptions, [String: String], PyxisOptions?)])
    func taskOptions(given: PyxisOptions, environment: [String: String], expected: PyxisOptions?) throws {
        #expect(try PyxisTaskPlan.taskOptions(given: given, environment: environment) == expected)
    }

    @Test("an image only the task's variable names, which no submission resolved, is refused")
    func unresolvedImage() {
        #expect(throws: PyxisTaskPlanError.imageNotResolved) {
            try PyxisTaskPlan.taskOptions(given: PyxisOptions(), environment: ["PYXIS_CONTAINER_IMAGE": "b"])
        }
        #expect(PyxisTaskPlanError.imageNotResolved.description.hasPrefix("PYXIS_CONTAINER_IMAGE reached the task but not srun or sbatch"))
    }
}
