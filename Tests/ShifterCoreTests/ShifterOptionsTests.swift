import Testing

@testable import ShifterCore

/// One command line and the options it should give, described by a few observable fields.
struct OptionsCase: Sendable, CustomTestStringConvertible {
    var arguments: [String]
    var environment: [String: String] = [:]
    var image: String?
    var volumes: [String] = []
    var command: [String] = []
    var check: @Sendable (ShifterOptions) -> Bool = { _ in true }

    var testDescription: String { arguments.joined(separator: " ") + (environment.isEmpty ? "" : " with \(environment)") }
}

private let optionsCases: [OptionsCase] = [
    OptionsCase(arguments: [], command: []),
    OptionsCase(arguments: ["--image=ubuntu", "ls"], image: "ubuntu", command: ["ls"]),
    OptionsCase(arguments: ["--image", "ubuntu", "ls", "-l"], image: "ubuntu", command: ["ls", "-l"]),
    OptionsCase(arguments: ["-i", "ubuntu", "--", "-x"], image: "ubuntu", command: ["-x"]),
    OptionsCase(arguments: ["-iubuntu:14.04", "echo", "--image=other"], image: "ubuntu:14.04", command: ["echo", "--image=other"]),
    OptionsCase(arguments: ["--", "--image=x"], command: ["--image=x"]),
    OptionsCase(arguments: ["-", "x"], command: ["-", "x"]),
    OptionsCase(arguments: ["--image=a", "--image=b"], image: "b"),
    OptionsCase(arguments: ["-V", "/a:/b", "-V/c:/d:ro", "--volume=/e:/f;/g:/h", "--volume", "/i:/j"],
        volumes: ["/a:/b", "/c:/d:ro", "/e:/f", "/g:/h", "/i:/j"]),
    OptionsCase(arguments: ["-e", "A=1", "-eB=2", "--env=C=3", "--env", "D=", "true"], command: ["true"],
        check: { $0.environment.map(\.entry) == ["A=1", "B=2", "C=3", "D="] }),
    OptionsCase(arguments: ["--env-file=/a.env", "--env-file", "b.env"], check: { $0.environmentFiles == ["/a.env", "b.env"] }),
    OptionsCase(arguments: ["-E", "-v"], check: { $0.clearEnvironment && $0.verbose }),
    OptionsCase(arguments: ["-Evh"], check: { $0.clearEnvironment && $0.verbose && $0.help }),
    OptionsCase(arguments: ["--clearenv", "--verbose", "--help", "--version"],
        check: { $0.clearEnvironment && $0.verbose && $0.help && $0.version }),
    OptionsCase(arguments: ["-Eiubuntu", "sh"], image: "ubuntu", command: ["sh"], check: { $0.clearEnvironment }),
    OptionsCase(arguments: ["-Ei", "ubuntu"], image: "ubuntu", check: { $0.clearEnvironment }),
    OptionsCase(arguments: ["--entrypoint", "arg"], command: ["arg"], check: { $0.entrypoint == .image }),
    OptionsCase(arguments: ["--entrypoint=/bin/tool", "arg"], command: ["arg"], check: { $0.entrypoint == .command("/bin/tool") }),
    OptionsCase(arguments: ["--workdir", "/tmp"], command: ["/tmp"], check: { $0.workdir == .image }),
    OptionsCase(arguments: ["--workdir=/tmp", "x"], command: ["x"], check: { $0.workdir == .path("/tmp") }),
    OptionsCase(arguments: ["-w", "/tmp"], command: ["/tmp"], check: { $0.workdir == .image }),
    OptionsCase(arguments: ["-w/data"], check: { $0.workdir == .path("/data") }),
    OptionsCase(arguments: ["-m", "mpich,gpu"], check: { $0.modules == .named(["mpich", "gpu"]) }),
    OptionsCase(arguments: ["--module=none"], check: { $0.modules == ModuleRequest.none }),
    OptionsCase(arguments: [], check: { $0.modules == .siteDefault && $0.entrypoint == nil && $0.workdir == nil }),
    OptionsCase(arguments: ["--config=/etc/alt.conf"], check: { $0.configPath == "/etc/alt.conf" }),
    OptionsCase(arguments: ["--config", "/etc/alt.conf"], check: { $0.configPath == "/etc/alt.conf" }),
    // Environment fallbacks.
    OptionsCase(arguments: [], environment: ["SHIFTER_IMAGE": "ubuntu"], image: "ubuntu", check: { $0.imageOrigin == "SHIFTER_IMAGE" }),
    OptionsCase(arguments: [], environment: ["SHIFTER_IMAGE": "ubuntu", "SHIFTER_IMAGETYPE": "docker"], image: "docker:ubuntu"),
    OptionsCase(arguments: [], environment: ["SHIFTER_IMAGE": "docker:ubuntu", "SHIFTER_IMAGETYPE": "docker"], image: "docker:ubuntu"),
    OptionsCase(arguments: [], environment: ["SLURM_SPANK_SHIFTER_IMAGE": "x", "SLURM_SPANK_SHIFTER_IMAGETYPE": "custom"],
        image: "custom:x", check: { $0.imageOrigin == "SLURM_SPANK_SHIFTER_IMAGE" }),
    OptionsCase(arguments: [], environment: ["SHIFTER_IMAGE": "a", "SLURM_SPANK_SHIFTER_IMAGE": "b"], image: "a"),
    OptionsCase(arguments: [], environment: ["SHIFTER_IMAGE": "", "SLURM_SPANK_SHIFTER_IMAGE": "b"], image: "b"),
    OptionsCase(arguments: ["--image=cli"], environment: ["SHIFTER_IMAGE": "env", "SHIFTER_IMAGETYPE": "bogus"], image: "cli"),
    OptionsCase(arguments: [], environment: ["SHIFTER_VOLUME": "/a:/b;/c:/d"], volumes: ["/a:/b", "/c:/d"]),
    OptionsCase(arguments: [], environment: ["SLURM_SPANK_SHIFTER_VOLUME": "/a:/b"], volumes: ["/a:/b"]),
    OptionsCase(arguments: ["-V", "/x:/y"], environment: ["SHIFTER_VOLUME": "/a:/b"], volumes: ["/x:/y"]),
    OptionsCase(arguments: ["-V", "/x:/y"], environment: ["SHIFTER_VOLUME": "not a volume"], volumes: ["/x:/y"]),
    OptionsCase(arguments: [], environment: ["SHIFTER_MODULE": "gpu"], check: { $0.modules == .named(["gpu"]) }),
    OptionsCase(arguments: [], environment: ["SLURM_SPANK_SHIFTER_MODULE": "none"], check: { $0.modules == ModuleRequest.none }),
    OptionsCase(arguments: ["-m", "mpich"], environment: ["SHIFTER_MODULE": "gpu"], check: { $0.modules == .named(["mpich"]) }),
]

private let optionErrors: [([String], [String: String], String)] = [
    (["--bogus"], [:], "--bogus: unknown option"),
    (["-x"], [:], "-x: unknown option"),
    (["-Ex"], [:], "-x: unknown option"),
    (["--imag=x"], [:], "--imag: unknown option"),
    (["-i"], [:], "-i: needs a value"),
    (["--image"], [:], "--image: needs a value"),
    (["--image="], [:], "--image: needs a value"),
    (["--entrypoint="], [:], "--entrypoint: needs a value"),
    (["--clearenv=1"], [:], "--clearenv: takes no value"),
    (["--help=me"], [:], "--help: takes no value"),
    (["--workdir=relative"], [:], #"--workdir: "relative" is not an absolute path"#),
    (["-V", "/a:/etc/x"], [:], #"-V: volume "/a:/etc/x": target may not be under /etc"#),
    (["--volume=/a:/b", "--volume=/c:/b"], [:], "--volume: another volume already targets /b"),
    (["-e", "1A=x"], [:], #"-e: environment setting "1A=x": "1A" is not a valid variable name"#),
    (["--env=NOVALUE"], [:], "expected NAME=VALUE"),
    (["-m", "a,,b"], [:], "-m: modules \"a,,b\": empty module name"),
    ([], ["SHIFTER_VOLUME": "/a:/proc"], #"SHIFTER_VOLUME: volume "/a:/proc": target may not be /proc"#),
    ([], ["SLURM_SPANK_SHIFTER_VOLUME": "x"], "SLURM_SPANK_SHIFTER_VOLUME: volume \"x\""),
    ([], ["SHIFTER_MODULE": "none,gpu"], "SHIFTER_MODULE: modules"),
    ([], ["SHIFTER_IMAGE": "x", "SHIFTER_IMAGETYPE": "oci"], #"SHIFTER_IMAGETYPE: "oci" is not one of docker, id, custom, local"#),
    (["--\u{1}\n"], [:], "--\\u{1}\\n: unknown option"),
]

struct ShifterOptionsTests {
    @Test(arguments: optionsCases)
    func parsesCommandLine(_ example: OptionsCase) throws {
        let options = try ShifterOptions.parse(arguments: example.arguments, environment: example.environment)
        #expect(options.image == example.image)
        #expect(options.volumes.map(\.canonical) == example.volumes)
        #expect(options.command == example.command)
        #expect(example.check(options))
    }

    @Test(arguments: optionErrors)
    func rejectsCommandLine(arguments: [String], environment: [String: String], message: String) {
        #expect {
            try ShifterOptions.parse(arguments: arguments, environment: environment)
        } throws: { error in
            guard let error = error as? ShifterOptionsError else { return false }
            return error.description.hasPrefix(message) || error.description.contains(message)
        }
    }

    @Test func resolvesImageWithSiteDefaultType() throws {
        let options = try ShifterOptions.parse(arguments: ["--image=tools:v1"], environment: [:])
        #expect(try options.imageReference(defaultType: .custom)?.canonical == "custom:tools:v1")
        #expect(try options.imageReference(defaultType: .docker)?.canonical == "docker:registry-1.docker.io/library/tools:v1")
        #expect(try ShifterOptions.parse(arguments: [], environment: [:]).imageReference(defaultType: .docker) == nil)
        let bad = try ShifterOptions.parse(arguments: [], environment: ["SHIFTER_IMAGE": "Ubuntu"])
        #expect(throws: ShifterOptionsError(option: "SHIFTER_IMAGE", reason: #"image "Ubuntu": repository names must be lowercase"#)) {
            try bad.imageReference(defaultType: .docker)
        }
    }
}
